// Multi-host rendezvous: the head node (node rank 0) listens on --master-addr:--master-port; every other
// node dials it and says who it is, what it runs (a fingerprint of the model and engine settings), where
// its ranks will listen, and proves it knows the cluster secret when one is set. The head refuses a node
// that runs another model or configuration (with a message naming the difference) or lacks the secret;
// once every node has joined, it tells all of them the full peer table of the TCP group.
//
// Protocol: one JSON object per line over the TCP connection.
//   node → head  {type: "join", nodeRank, fingerprint, summary, peers: [{host, port}...], auth}
//   head → node  {type: "welcome", groupId, peers: [...all ranks...], numBlocks} | {type: "refused", reason}

import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { createConnection, createServer, type Socket } from 'node:net';
import type { TcpPeerAddress } from './group.js';

/** A node was refused, or the rendezvous failed (timeout, head unreachable). */
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
}

export function fingerprintOf(summary: NodeSummary): string {
  return createHash('sha256').update(JSON.stringify(summary)).digest('hex');
}

function authOf(secret: string | null, fingerprint: string, nodeRank: number): string {
  return secret === null
    ? ''
    : createHmac('sha256', secret).update(`${fingerprint}:${nodeRank}`).digest('hex');
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

function lines(socket: Socket, onLine: (line: string) => void): void {
  let buf = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buf += chunk;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

function send(socket: Socket, msg: unknown): void {
  socket.write(`${JSON.stringify(msg)}\n`);
}

/**
 * The head's side: waits for nodes 1..nnodes-1, checks each, then sends everyone the peer table.
 * `localPeers` are the head's own ranks' addresses (ranks 0..ranksPerNode-1).
 */
export function serveRendezvous(
  s: RendezvousSettings,
  summary: NodeSummary,
  localPeers: readonly TcpPeerAddress[],
  numBlocks: number,
  onRefused: (reason: string) => void = () => {},
): Promise<RendezvousResult> {
  const fingerprint = fingerprintOf(summary);
  const joined = new Map<number, { socket: Socket; peers: TcpPeerAddress[] }>();
  return new Promise<RendezvousResult>((resolve, reject) => {
    const server = createServer((socket) => {
      lines(socket, (line) => {
        let msg: {
          type?: string;
          nodeRank?: number;
          fingerprint?: string;
          summary?: NodeSummary;
          peers?: TcpPeerAddress[];
          auth?: string;
        };
        try {
          msg = JSON.parse(line);
        } catch {
          socket.destroy();
          return;
        }
        const refuse = (reason: string) => {
          onRefused(reason);
          send(socket, { type: 'refused', reason });
          socket.end();
        };
        const r = msg.nodeRank;
        if (msg.type !== 'join' || typeof r !== 'number' || !Number.isInteger(r) || r < 1 || r >= s.nnodes) {
          return refuse(`a join must name a node rank in 1..${s.nnodes - 1}`);
        }
        const expected = authOf(s.secret, msg.fingerprint ?? '', r);
        const given = Buffer.from(msg.auth ?? '');
        if (
          s.secret !== null &&
          (given.length !== expected.length || !timingSafeEqual(given, Buffer.from(expected)))
        ) {
          return refuse(
            `node ${r} does not know the cluster secret (--cluster-secret / DUET_CLUSTER_SECRET)`,
          );
        }
        if (msg.fingerprint !== fingerprint) {
          return refuse(
            `node ${r} runs another model or configuration than the head (${describeDifference(summary, msg.summary ?? {})})`,
          );
        }
        if (joined.has(r)) return refuse(`node rank ${r} has already joined`);
        joined.set(r, { socket, peers: msg.peers ?? [] });
        if (joined.size === s.nnodes - 1) {
          clearTimeout(timer);
          const peers: TcpPeerAddress[] = [...localPeers];
          for (let n = 1; n < s.nnodes; n++) peers.push(...joined.get(n)!.peers);
          const groupId = randomUUID();
          for (const { socket: sock } of joined.values()) {
            send(sock, { type: 'welcome', groupId, peers, numBlocks });
            sock.end();
          }
          server.close();
          resolve({ groupId, peers, numBlocks, localHost: s.masterAddr });
        }
      });
      socket.on('error', () => {});
    });
    const timer = setTimeout(() => {
      server.close();
      for (const { socket } of joined.values()) socket.destroy();
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

/**
 * A non-head node's side: dials the head (retrying until the timeout), joins, and returns the peer
 * table. `makePeers(localHost)` gives this node's ranks' addresses once the local address is known.
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
    const localHost = socket.localAddress ?? '127.0.0.1';
    const peers = await makePeers(localHost);
    return new Promise<RendezvousResult>((resolve, reject) => {
      const timer = setTimeout(
        () => {
          socket.destroy();
          reject(
            new RendezvousError(
              `the head at ${s.masterAddr}:${s.masterPort} did not complete the rendezvous in time`,
            ),
          );
        },
        Math.max(deadline - Date.now(), 1000),
      );
      lines(socket, (line) => {
        clearTimeout(timer);
        const msg = JSON.parse(line) as {
          type: string;
          reason?: string;
          groupId?: string;
          peers?: TcpPeerAddress[];
          numBlocks?: number;
        };
        if (msg.type === 'refused') reject(new RendezvousError(`the head refused this node: ${msg.reason}`));
        else resolve({ groupId: msg.groupId!, peers: msg.peers!, numBlocks: msg.numBlocks!, localHost });
        socket.end();
      });
      socket.on('close', () => {
        clearTimeout(timer);
        reject(new RendezvousError('the head closed the rendezvous connection'));
      });
      send(socket, {
        type: 'join',
        nodeRank: s.nodeRank,
        fingerprint,
        summary,
        peers,
        auth: authOf(s.secret, fingerprint, s.nodeRank),
      });
    });
  }
}
