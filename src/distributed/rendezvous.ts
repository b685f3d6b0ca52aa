// Multi-host rendezvous: the head node (node rank 0) listens on --master-addr:--master-port; every other
// node dials it and says who it is, what it runs (a fingerprint of the model and engine settings), where
// its ranks will listen, and proves it knows the cluster secret when one is set. The head refuses a node
// that runs another model or configuration (with a message naming the difference) or lacks the secret;
// once every node has joined, it tells all of them the full peer table of the TCP group.
//
// Protocol: one JSON object per line (at most MAX_LINE_BYTES) over the TCP connection.
//   head → node  {type: "challenge", protocol, nonce}                     (a fresh nonce per connection)
//   node → head  {type: "join", nodeRank, fingerprint, summary, peers, nonce, auth}
//   head → node  {type: "welcome", groupId, peers, numBlocks, linkNonce, auth} | {type: "refused", reason}
// With a secret S, `auth` of the join is HMAC-SHA256(S, the head's nonce, node rank, fingerprint, peers)
// and `auth` of the welcome is HMAC-SHA256(S, the node's nonce, group id, peers, numBlocks, linkNonce):
// each side proves it knows S over a nonce the other just chose, so a recorded message cannot be replayed,
// and what a message says cannot be changed on the way. The data links of the group then authenticate
// with `linkKeyOf(S, linkNonce, groupId)` (tcp-transport.ts). Every message is parsed defensively: a
// malformed one closes that connection (reported through `onRefused`), never the head. A connection that
// does not send a valid join within JOIN_TIMEOUT_MS is closed.

import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { createConnection, createServer, type Socket } from 'node:net';
import { z } from 'zod';
import type { TcpPeerAddress } from './group.js';

/** A node was refused, or the rendezvous failed (timeout, head unreachable, malformed answer). */
export class RendezvousError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RendezvousError';
  }
}

export interface RendezvousSettings {
  readonly nnodes: number;
  readonly nodeRank: number;
  readonly masterAddr: string;
  readonly masterPort: number;
  /** Shared secret (--cluster-secret / DUET_CLUSTER_SECRET); null: none required. */
  readonly secret: string | null;
  readonly timeoutMs: number;
  /** Ranks every node hosts (the head's welcome must list nnodes × this many peers). */
  readonly ranksPerNode: number;
  /** How long a connection to the head may take to send its join (default JOIN_TIMEOUT_MS). */
  readonly joinTimeoutMs?: number;
}

/** What a node runs, in a canonical form: equal summaries mean a compatible node. */
export type NodeSummary = Readonly<Record<string, unknown>>;

export interface RendezvousResult {
  readonly groupId: string;
  /** Listening address of every global rank, in rank order. */
  readonly peers: readonly TcpPeerAddress[];
  /** KV cache blocks every rank allocates (decided by the head). */
  readonly numBlocks: number;
  /** This node's address as the head sees it (where its ranks listen). */
  readonly localHost: string;
  /** The key the group's data links authenticate with (see `linkKeyOf`). */
  readonly linkKey: string;
}

const PROTOCOL_VERSION = 2;
/** Longest line either side accepts; a join carries the model summary (a few KiB). */
export const MAX_LINE_BYTES = 1 << 20;
/** A connection that has not sent a valid join this long after connecting is closed. */
export const JOIN_TIMEOUT_MS = 10_000;
/** Connections the head keeps open at once before they have joined (more are closed at once). */
const MAX_UNJOINED_CONNECTIONS = 64;
/** Upper bound on KV cache blocks a welcome may announce (far above any real cache). */
const MAX_NUM_BLOCKS = 1 << 30;

const hexNonce = z.string().regex(/^[0-9a-f]{64}$/);
const peerAddress = z.strictObject({
  host: z.string().min(1).max(255),
  port: z.number().int().min(1).max(65535),
});
const challengeMessage = z.object({ type: z.literal('challenge'), protocol: z.number(), nonce: hexNonce });
const joinMessage = z.object({
  type: z.literal('join'),
  nodeRank: z.number().int(),
  fingerprint: z.string().max(128),
  summary: z.record(z.string(), z.unknown()),
  peers: z.array(peerAddress).max(1024),
  nonce: hexNonce,
  auth: z.string().max(128),
});
const headAnswer = z.discriminatedUnion('type', [
  z.object({ type: z.literal('refused'), reason: z.string().max(4096) }),
  z.object({
    type: z.literal('welcome'),
    groupId: z.string().min(1).max(128),
    peers: z.array(peerAddress).max(1024),
    numBlocks: z.number().int().min(1).max(MAX_NUM_BLOCKS),
    linkNonce: hexNonce,
    auth: z.string().max(128),
  }),
]);

export function fingerprintOf(summary: NodeSummary): string {
  return createHash('sha256').update(JSON.stringify(summary)).digest('hex');
}

/** HMAC-SHA256 of `parts` (joined unambiguously) under the secret; '' when there is no secret. */
function macOf(secret: string | null, parts: readonly unknown[]): string {
  return secret === null ? '' : createHmac('sha256', secret).update(JSON.stringify(parts)).digest('hex');
}

function sameMac(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * The key the data links of one start authenticate with: derived from the secret and the head's fresh
 * `linkNonce`, so it differs every start and cannot be computed from what travels in the clear. Without a
 * secret it is derived from the nonce alone (which travels in the clear: loopback or a trusted network).
 */
export function linkKeyOf(secret: string | null, linkNonce: string, groupId: string): string {
  return createHmac('sha256', secret ?? '')
    .update(`duet-link-key\n${linkNonce}\n${groupId}`)
    .digest('hex');
}

/** The first field where two summaries differ (a dotted path into nested objects), for the refusal message. */
export function describeDifference(head: unknown, other: unknown, path = ''): string {
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  if (isObject(head) && isObject(other)) {
    for (const key of new Set([...Object.keys(head), ...Object.keys(other)])) {
      if (JSON.stringify(head[key]) !== JSON.stringify(other[key])) {
        return describeDifference(head[key], other[key], path ? `${path}.${key}` : key);
      }
    }
    return 'the fingerprints differ';
  }
  return `${path || 'settings'}: head has ${JSON.stringify(head)}, this node has ${JSON.stringify(other)}`;
}

/**
 * Calls `onLine` with each line of the socket's stream, as parsed JSON (undefined when it is not JSON).
 * A line longer than MAX_LINE_BYTES calls `onTooLong` and stops reading. Scans only new bytes for the
 * newline, so a peer that never sends one costs linear time and at most MAX_LINE_BYTES of memory.
 */
function jsonLines(socket: Socket, onLine: (msg: unknown) => void, onTooLong: () => void): void {
  let parts: Buffer[] = [];
  let length = 0;
  socket.on('data', (chunk: Buffer) => {
    let at = 0;
    for (let nl = chunk.indexOf(10, at); nl >= 0; nl = chunk.indexOf(10, at)) {
      parts.push(chunk.subarray(at, nl));
      const line = Buffer.concat(parts).toString('utf8');
      parts = [];
      length = 0;
      at = nl + 1;
      if (line.length > MAX_LINE_BYTES) return onTooLong();
      let msg: unknown;
      try {
        msg = JSON.parse(line);
      } catch {
        msg = undefined;
      }
      onLine(msg);
      if (socket.destroyed) return;
    }
    length += chunk.length - at;
    if (length > MAX_LINE_BYTES) return onTooLong();
    parts.push(chunk.subarray(at));
  });
}

function send(socket: Socket, msg: unknown): void {
  if (!socket.destroyed) socket.write(`${JSON.stringify(msg)}\n`);
}

function describeSocket(socket: Socket): string {
  return `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
}

/**
 * The head's side: waits for nodes 1..nnodes-1, checks each, then sends everyone the peer table.
 * `localPeers` are the head's own ranks' addresses (ranks 0..ranksPerNode-1). `onRefused` hears about
 * every refused node and every connection closed for a malformed or late message.
 */
export function serveRendezvous(
  s: RendezvousSettings,
  summary: NodeSummary,
  localPeers: readonly TcpPeerAddress[],
  numBlocks: number,
  onRefused: (reason: string) => void = () => {},
): Promise<RendezvousResult> {
  const fingerprint = fingerprintOf(summary);
  const joined = new Map<number, { socket: Socket; peers: TcpPeerAddress[]; nonce: string }>();
  const unjoined = new Set<Socket>();
  return new Promise<RendezvousResult>((resolve, reject) => {
    let isFinished = false;
    const finish = () => {
      isFinished = true;
      clearTimeout(timer);
      const peers: TcpPeerAddress[] = [...localPeers];
      for (let n = 1; n < s.nnodes; n++) peers.push(...joined.get(n)!.peers);
      const groupId = randomUUID();
      const linkNonce = randomBytes(32).toString('hex');
      for (const { socket, nonce } of joined.values()) {
        const auth = macOf(s.secret, ['welcome', nonce, groupId, peers, numBlocks, linkNonce]);
        send(socket, { type: 'welcome', groupId, peers, numBlocks, linkNonce, auth });
        socket.end();
      }
      for (const socket of unjoined) socket.destroy();
      server.close();
      const linkKey = linkKeyOf(s.secret, linkNonce, groupId);
      resolve({ groupId, peers, numBlocks, localHost: s.masterAddr, linkKey });
    };

    /** Checks a join; returns why the node is refused, or null once it is admitted. */
    const admit = (socket: Socket, challenge: string, msg: z.infer<typeof joinMessage>): string | null => {
      const r = msg.nodeRank;
      if (r < 1 || r >= s.nnodes) return `a join must name a node rank in 1..${s.nnodes - 1}, got ${r}`;
      const expected = macOf(s.secret, ['join', challenge, r, msg.fingerprint, msg.peers]);
      if (s.secret !== null && !sameMac(msg.auth, expected))
        return `node ${r} does not know the cluster secret (--cluster-secret / DUET_CLUSTER_SECRET)`;
      if (msg.fingerprint !== fingerprint)
        return `node ${r} runs another model or configuration than the head (${describeDifference(summary, msg.summary)})`;
      if (msg.peers.length !== s.ranksPerNode)
        return `node ${r} offers ${msg.peers.length} rank addresses; each node hosts ${s.ranksPerNode}`;
      if (joined.has(r)) return `node rank ${r} has already joined`;
      joined.set(r, { socket, peers: msg.peers, nonce: msg.nonce });
      // A node that goes away before everyone joined frees its rank (it may restart and join again).
      socket.on('close', () => {
        if (!isFinished && joined.get(r)?.socket === socket) joined.delete(r);
      });
      return null;
    };

    const onJoin = (socket: Socket, challenge: string, raw: unknown): void => {
      const parsed = joinMessage.safeParse(raw);
      if (!parsed.success) {
        onRefused(`closed the connection from ${describeSocket(socket)}: not a valid join message`);
        socket.destroy();
        return;
      }
      const reason = admit(socket, challenge, parsed.data);
      if (reason !== null) {
        onRefused(reason);
        send(socket, { type: 'refused', reason });
        socket.end();
      } else if (joined.size === s.nnodes - 1) finish();
    };

    const server = createServer((socket) => {
      socket.on('error', () => {});
      if (unjoined.size >= MAX_UNJOINED_CONNECTIONS) {
        onRefused(
          `closed the connection from ${describeSocket(socket)}: too many connections waiting to join`,
        );
        socket.destroy();
        return;
      }
      unjoined.add(socket);
      socket.on('close', () => unjoined.delete(socket));
      const challenge = randomBytes(32).toString('hex');
      let answered = false;
      const joinTimeoutMs = s.joinTimeoutMs ?? JOIN_TIMEOUT_MS;
      const late = setTimeout(() => {
        onRefused(`closed the connection from ${describeSocket(socket)}: no join within ${joinTimeoutMs} ms`);
        socket.destroy();
      }, joinTimeoutMs);
      late.unref();
      socket.on('close', () => clearTimeout(late));
      jsonLines(
        socket,
        (msg) => {
          if (answered) {
            socket.destroy();
            return;
          }
          answered = true;
          clearTimeout(late);
          unjoined.delete(socket);
          try {
            onJoin(socket, challenge, msg);
          } catch (e) {
            onRefused(`closed the connection from ${describeSocket(socket)}: ${(e as Error).message}`);
            socket.destroy();
          }
        },
        () => {
          onRefused(
            `closed the connection from ${describeSocket(socket)}: a line over ${MAX_LINE_BYTES} bytes`,
          );
          socket.destroy();
        },
      );
      send(socket, { type: 'challenge', protocol: PROTOCOL_VERSION, nonce: challenge });
    });
    const timer = setTimeout(() => {
      server.close();
      for (const { socket } of joined.values()) socket.destroy();
      for (const socket of unjoined) socket.destroy();
      reject(
        new RendezvousError(
          `only ${joined.size + 1} of ${s.nnodes} nodes joined within ${s.timeoutMs / 1000} s at ${s.masterAddr}:${s.masterPort}`,
        ),
      );
    }, s.timeoutMs);
    server.on('error', (e) => {
      clearTimeout(timer);
      reject(new RendezvousError(`cannot listen on ${s.masterAddr}:${s.masterPort}: ${e.message}`));
    });
    server.listen(s.masterPort, s.masterAddr);
  });
}

/** Checks the head's welcome: types and ranges (by the schema), the peer count, and this node's own ranks. */
function checkWelcome(
  s: RendezvousSettings,
  myPeers: readonly TcpPeerAddress[],
  peers: readonly TcpPeerAddress[],
): string | null {
  const numRanks = s.nnodes * s.ranksPerNode;
  if (peers.length !== numRanks) return `it lists ${peers.length} rank addresses for a group of ${numRanks}`;
  const first = s.nodeRank * s.ranksPerNode;
  const mine = JSON.stringify(myPeers);
  if (JSON.stringify(peers.slice(first, first + s.ranksPerNode)) !== mine)
    return `it does not list this node's ranks ${first}..${first + s.ranksPerNode - 1} where this node listens`;
  return null;
}

/**
 * A non-head node's side: dials the head (retrying until the timeout), answers its challenge, and returns
 * the peer table. `makePeers(localHost)` gives this node's ranks' addresses once the local address is known.
 */
export async function joinRendezvous(
  s: RendezvousSettings,
  summary: NodeSummary,
  makePeers: (localHost: string) => Promise<TcpPeerAddress[]>,
): Promise<RendezvousResult> {
  const fingerprint = fingerprintOf(summary);
  const deadline = Date.now() + s.timeoutMs;
  for (;;) {
    const socket = await new Promise<Socket | null>((resolve) => {
      const sock = createConnection({ host: s.masterAddr, port: s.masterPort });
      sock.once('connect', () => resolve(sock));
      sock.once('error', () => resolve(null));
    });
    if (socket === null) {
      if (Date.now() > deadline) {
        throw new RendezvousError(
          `cannot reach the head node at ${s.masterAddr}:${s.masterPort} within ${s.timeoutMs / 1000} s`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    socket.on('error', () => {});
    const localHost = socket.localAddress ?? '127.0.0.1';
    const peers = await makePeers(localHost);
    const nonce = randomBytes(32).toString('hex');
    return new Promise<RendezvousResult>((resolve, reject) => {
      let settled = false;
      const fail = (message: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        reject(new RendezvousError(message));
      };
      const timer = setTimeout(
        () => fail(`the head at ${s.masterAddr}:${s.masterPort} did not complete the rendezvous in time`),
        Math.max(deadline - Date.now(), 1000),
      );
      let challenged = false;
      jsonLines(
        socket,
        (raw) => {
          if (!challenged) {
            const c = challengeMessage.safeParse(raw);
            if (!c.success || c.data.protocol !== PROTOCOL_VERSION)
              return fail(
                `${s.masterAddr}:${s.masterPort} did not open with a rendezvous challenge of protocol ${PROTOCOL_VERSION} (another program, or a head of another Duet version)`,
              );
            challenged = true;
            const auth = macOf(s.secret, ['join', c.data.nonce, s.nodeRank, fingerprint, peers]);
            send(socket, { type: 'join', nodeRank: s.nodeRank, fingerprint, summary, peers, nonce, auth });
            return;
          }
          const a = headAnswer.safeParse(raw);
          if (!a.success) return fail('the head answered with a malformed message');
          const msg = a.data;
          if (msg.type === 'refused') return fail(`the head refused this node: ${msg.reason}`);
          const expected = macOf(s.secret, [
            'welcome',
            nonce,
            msg.groupId,
            msg.peers,
            msg.numBlocks,
            msg.linkNonce,
          ]);
          if (s.secret !== null && !sameMac(msg.auth, expected))
            return fail('the head does not know the cluster secret (its welcome does not authenticate)');
          const problem = checkWelcome(s, peers, msg.peers);
          if (problem !== null) return fail(`the head's welcome is not valid: ${problem}`);
          settled = true;
          clearTimeout(timer);
          socket.end();
          resolve({
            groupId: msg.groupId,
            peers: msg.peers,
            numBlocks: msg.numBlocks,
            localHost,
            linkKey: linkKeyOf(s.secret, msg.linkNonce, msg.groupId),
          });
        },
        () => fail(`the head sent a line over ${MAX_LINE_BYTES} bytes`),
      );
      socket.on('close', () => fail('the head closed the rendezvous connection'));
    });
  }
}
