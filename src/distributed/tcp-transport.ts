// TCP collectives, run on a rank's communication thread. The group is a full mesh: each rank listens on
// its address while the group forms, dials every lower rank, and the handshake (below) checks group id,
// world size and the group's link key. Algorithms: large all-reduce is a ring reduce-scatter followed by
// a ring all-gather, split into chunks that are pipelined (a chunk moves to the next step as soon as it
// has been received and summed); reduce-scatter is the ring's first half; small all-reduce and
// reduce-scatter exchange directly and sum in rank order; all-gather, all-to-all and barrier exchange
// directly; large broadcast is a pipelined chain from the root. A peer whose connection closes fails the group at once; a peer that
// sends nothing (or reads nothing) while this rank waits on it fails it after `timeoutMs`.

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { CollectiveError } from './communicator.js';
import type { TcpGroupDescriptor, TcpPeerAddress } from './group.js';
import { OpKind, type OpMessage, offsetsOf, opName, splitEven } from './op.js';
import { addInto, sumInOrder } from './reduce.js';
import type { TransportTimeouts } from './shm-transport.js';
import { type FrameHeader, FrameType, type LinkEvents, PeerLink, type RecvRequest } from './tcp-link.js';

/** All-reduce and reduce-scatter of at most this many bytes exchange directly (one hop, rank-order sum). */
const SMALL_MESSAGE_BYTES = 64 * 1024;
const PROTOCOL_VERSION = 2;
/** Connections accepted at once that have not finished the handshake (more are closed at once). */
const MAX_UNAUTHENTICATED = 64;

// The handshake, in order (rank r dials the lower rank q; q accepts):
//   1. q → r  challenge {nonce: Nq}                               (fresh random bytes per connection)
//   2. r → q  hello {protocol, groupId, worldSize, rank, nonce: Nr, mac: HMAC(linkKey, hello, Nq, ...)}
//   3. q checks protocol and group id, then the mac, then world size and rank; on success it marks the
//      link authenticated and answers welcome {ok, mac: HMAC(linkKey, welcome, Nr, q)}, else {error}
//   4. r checks the welcome's mac and marks its link authenticated.
// Until step 3 (4 for r) the link accepts only small control frames: nothing is allocated for a peer that
// has not proved it holds the link key, and a recorded hello or welcome does not answer a new nonce.

function macOf(key: string, parts: readonly unknown[]): string {
  return createHmac('sha256', key).update(JSON.stringify(parts)).digest('hex');
}

function sameMac(given: unknown, expected: string): boolean {
  if (typeof given !== 'string') return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function describe(a: TcpPeerAddress): string {
  return 'path' in a ? `unix:${a.path}` : `${a.host}:${a.port}`;
}

const mod = (a: number, n: number) => ((a % n) + n) % n;

/** Bookkeeping of one collective: it completes when all its receives arrived and its writes flushed. */
class OpRun {
  private outstanding = 0;
  private sealed = false;
  readonly finished: Promise<void>;
  private resolve!: () => void;
  reject!: (e: Error) => void;

  constructor(readonly op: OpMessage) {
    this.finished = new Promise<void>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }
  add(): void {
    this.outstanding++;
  }
  one(): void {
    if (--this.outstanding === 0 && this.sealed) this.resolve();
  }
  seal(): void {
    this.sealed = true;
    if (this.outstanding === 0) this.resolve();
  }
}

interface Hello {
  readonly protocol: number;
  readonly groupId: string;
  readonly worldSize: number;
  readonly rank: number;
  readonly nonce: string;
  readonly mac: string;
}

interface Welcome {
  readonly ok?: boolean;
  readonly error?: string;
  readonly mac?: string;
}

export class TcpTransport {
  private readonly n: number;
  private readonly links: (PeerLink | undefined)[];
  private readonly chunkBytes: number;
  private server: Server | undefined;
  private run: OpRun | undefined;
  private failure: CollectiveError | undefined;
  private closing = false;
  private watchdog: ReturnType<typeof setInterval> | undefined;
  private readonly faultListeners: ((e: CollectiveError) => void)[] = [];
  private readonly byeFrom = new Set<number>();
  private readonly departed = new Map<number, string>();
  private what = 'forming the group';
  /** Reused receive buffers of the small-reduction path, one per rank. */
  private readonly partScratch: (Float32Array | undefined)[] = [];

  constructor(
    private readonly desc: TcpGroupDescriptor,
    private readonly rank: number,
    private readonly timeouts: TransportTimeouts,
  ) {
    this.n = desc.worldSize;
    this.links = Array.from({ length: this.n }, () => undefined);
    this.chunkBytes = desc.chunkBytes;
  }

  onFault(listener: (e: CollectiveError) => void): void {
    this.faultListeners.push(listener);
  }

  // ---- forming the mesh ----

  /** Listens, dials the lower ranks, accepts the higher ones; resolves when every peer is connected. */
  async connect(isCancelled: () => boolean): Promise<void> {
    const deadline = performance.now() + this.timeouts.connectTimeoutMs;
    const lastErrors = new Map<number, string>();
    let allAccepted!: () => void;
    let refuse!: (e: CollectiveError) => void;
    const accepted = new Promise<void>((resolve, reject) => {
      allAccepted = resolve;
      refuse = reject;
    });
    const checkAccepted = () => {
      for (let q = this.rank + 1; q < this.n; q++) if (!this.links[q]) return;
      allAccepted();
    };
    await this.listen((socket) => this.accept(socket, deadline, checkAccepted, refuse));
    checkAccepted();
    const dials = Array.from({ length: this.rank }, (_, q) =>
      this.dial(q, deadline, lastErrors, isCancelled),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const missing = [];
        for (let q = 0; q < this.n; q++) if (q !== this.rank && !this.links[q]) missing.push(q);
        const detail = missing
          .map((q) => (lastErrors.has(q) ? ` (rank ${q}: ${lastErrors.get(q)})` : ''))
          .join('');
        reject(
          new CollectiveError(
            `rank ${this.rank}: ranks [${missing.join(', ')}] did not connect within ${this.timeouts.connectTimeoutMs} ms${detail}`,
            { peerRank: missing[0] },
          ),
        );
      }, this.timeouts.connectTimeoutMs);
    });
    try {
      await Promise.race([Promise.all([...dials, accepted]), timeout]);
    } finally {
      clearTimeout(timer);
      this.server?.close();
      this.server = undefined;
    }
    this.what = 'idle';
    const period = Math.max(20, Math.min(1000, this.timeouts.timeoutMs / 4));
    this.watchdog = setInterval(() => this.checkStalls(), period);
    this.watchdog.unref();
  }

  private listen(onSocket: (s: Socket) => void): Promise<void> {
    const address = this.desc.peers[this.rank]!;
    const server = createServer({ noDelay: true }, onSocket);
    this.server = server;
    return new Promise<void>((resolve, reject) => {
      server.once('error', (e) =>
        reject(new CollectiveError(`rank ${this.rank} cannot listen on ${describe(address)}: ${e.message}`)),
      );
      if ('path' in address) {
        if (existsSync(address.path)) unlinkSync(address.path);
        server.listen(address.path, () => resolve());
      } else server.listen(address.port, address.host, () => resolve());
    });
  }

  private accept(
    socket: Socket,
    deadline: number,
    check: () => void,
    refuse: (e: CollectiveError) => void,
  ): void {
    if (this.pendingHello.size >= MAX_UNAUTHENTICATED) {
      socket.destroy();
      return;
    }
    const link = new PeerLink(socket, this.linkEvents());
    const timer = setTimeout(() => socket.destroy(), Math.max(0, deadline - performance.now()));
    timer.unref();
    const challenge = randomBytes(32).toString('hex');
    this.pendingHello.set(link, (hello) => {
      clearTimeout(timer);
      const problem = this.checkHello(hello, challenge, true);
      if (problem) {
        link.sendControl(FrameType.welcome, { error: problem });
        socket.end();
        // A rank of this very group (it holds the key) with another world size is a broken group;
        // strangers are just refused.
        if (this.isAuthentic(hello, challenge) && hello.worldSize !== this.n)
          refuse(new CollectiveError(`rank ${this.rank}: ${problem}`, { peerRank: hello.rank }));
        return;
      }
      link.peerRank = hello.rank;
      link.authenticate(this.chunkBytes);
      this.links[hello.rank] = link;
      const welcome: Welcome = {
        ok: true,
        mac: macOf(this.desc.linkKey, ['welcome', hello.nonce, this.rank]),
      };
      link.sendControl(FrameType.welcome, welcome);
      check();
    });
    link.sendControl(FrameType.challenge, { nonce: challenge });
  }

  private isAuthentic(hello: Hello, challenge: string): boolean {
    const expected = macOf(this.desc.linkKey, [
      'hello',
      challenge,
      hello.groupId,
      hello.worldSize,
      hello.rank,
      hello.nonce,
    ]);
    return sameMac(hello.mac, expected);
  }

  private checkHello(hello: Hello, challenge: string, asAcceptor: boolean): string | undefined {
    if (hello.protocol !== PROTOCOL_VERSION)
      return `protocol version ${String(hello.protocol)} is not supported (this rank speaks ${PROTOCOL_VERSION})`;
    if (hello.groupId !== this.desc.groupId)
      return `group id ${String(hello.groupId)} does not match this group (${this.desc.groupId})`;
    if (!this.isAuthentic(hello, challenge))
      return 'the hello does not authenticate: this group uses another link key (another start, or another cluster secret)';
    if (hello.worldSize !== this.n)
      return `rank ${hello.rank} has world size ${hello.worldSize}, but rank ${this.rank} has ${this.n}`;
    if (!Number.isInteger(hello.rank) || hello.rank < 0 || hello.rank >= this.n || hello.rank === this.rank)
      return `rank ${hello.rank} is not a peer rank of this group`;
    if (asAcceptor && hello.rank < this.rank)
      return `rank ${hello.rank} should be dialed by rank ${this.rank}, not dial it`;
    if (this.links[hello.rank]) return `rank ${hello.rank} is already connected`;
    return undefined;
  }

  private readonly pendingHello = new Map<PeerLink, (hello: Hello) => void>();
  private readonly pendingChallenge = new Map<PeerLink, (nonce: unknown) => void>();
  private readonly pendingWelcome = new Map<PeerLink, (body: Welcome) => void>();

  private async dial(
    q: number,
    deadline: number,
    lastErrors: Map<number, string>,
    isCancelled: () => boolean,
  ): Promise<void> {
    const address = this.desc.peers[q]!;
    let backoff = 20;
    while (!isCancelled() && !this.closing && performance.now() < deadline && !this.links[q]) {
      const result = await this.tryDial(q, address);
      if (result === 'ok') return;
      if (result.fatal)
        throw new CollectiveError(`rank ${this.rank}: rank ${q} refused to connect: ${result.error}`, {
          peerRank: q,
        });
      lastErrors.set(q, result.error);
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(250, backoff * 2);
    }
    if (isCancelled()) throw new CollectiveError(`rank ${this.rank}: closed while forming the group`);
  }

  private tryDial(q: number, address: TcpPeerAddress): Promise<'ok' | { error: string; fatal: boolean }> {
    return new Promise((resolve) => {
      const socket = 'path' in address ? connect(address.path) : connect(address.port, address.host);
      let settled = false;
      const settle = (r: 'ok' | { error: string; fatal: boolean }) => {
        if (settled) return;
        settled = true;
        if (r !== 'ok') socket.destroy();
        resolve(r);
      };
      socket.once('error', (e) => settle({ error: `${e.message}`, fatal: false }));
      socket.once('close', () => settle({ error: 'connection closed during the handshake', fatal: false }));
      socket.once('connect', () => {
        const link = new PeerLink(socket, this.linkEvents());
        link.peerRank = q;
        const nonce = randomBytes(32).toString('hex');
        this.pendingWelcome.set(link, (body) => {
          if (body.ok && sameMac(body.mac, macOf(this.desc.linkKey, ['welcome', nonce, q]))) {
            link.authenticate(this.chunkBytes);
            this.links[q] = link;
            settle('ok');
          } else if (body.ok)
            settle({ error: 'its welcome does not authenticate (another link key)', fatal: true });
          else settle({ error: typeof body.error === 'string' ? body.error : 'refused', fatal: true });
        });
        this.pendingChallenge.set(link, (challenge) => {
          if (typeof challenge !== 'string' || !/^[0-9a-f]{64}$/.test(challenge)) {
            settle({ error: 'it did not open with a valid challenge', fatal: false });
            return;
          }
          const fields = { groupId: this.desc.groupId, worldSize: this.n, rank: this.rank, nonce };
          const mac = macOf(this.desc.linkKey, [
            'hello',
            challenge,
            fields.groupId,
            fields.worldSize,
            fields.rank,
            nonce,
          ]);
          const hello: Hello = { protocol: PROTOCOL_VERSION, ...fields, mac };
          link.sendControl(FrameType.hello, hello);
        });
      });
    });
  }

  private linkEvents(): LinkEvents {
    return {
      control: (link, header, payload) => this.onControl(link, header, payload),
      protocolError: (link, message) => {
        if (link.peerRank < 0 || this.links[link.peerRank] !== link) {
          link.socket.destroy();
          return;
        }
        this.fail(
          link.peerRank,
          `rank ${this.rank}: connection to peer rank ${link.peerRank} broke: ${message}`,
        );
      },
      mismatch: (link, got, expected) => this.onMismatch(link, got, expected),
      closed: (link, error) => this.onClosed(link, error),
    };
  }

  private onControl(link: PeerLink, header: FrameHeader, payload: Uint8Array): void {
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.from(payload).toString('utf8'));
    } catch {
      link.socket.destroy();
      return;
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      link.socket.destroy();
      return;
    }
    if (header.type === FrameType.challenge) {
      const handler = this.pendingChallenge.get(link);
      this.pendingChallenge.delete(link);
      if (handler) handler(body.nonce);
      else link.socket.destroy();
    } else if (header.type === FrameType.hello) {
      const handler = this.pendingHello.get(link);
      this.pendingHello.delete(link);
      if (handler) handler(body as unknown as Hello);
      else link.socket.destroy();
    } else if (header.type === FrameType.welcome) {
      const handler = this.pendingWelcome.get(link);
      this.pendingWelcome.delete(link);
      if (handler && this.pendingChallenge.has(link) === false) handler(body as Welcome);
      else link.socket.destroy();
    } else if (!link.isAuthenticated) {
      link.socket.destroy();
    } else if (header.type === FrameType.abort && this.links[link.peerRank] === link) {
      const culprit = typeof body.peerRank === 'number' ? body.peerRank : link.peerRank;
      this.fail(culprit, `rank ${link.peerRank} reported: ${String(body.message)}`);
    } else if (header.type === FrameType.bye) {
      this.byeFrom.add(link.peerRank);
    }
  }

  private onMismatch(link: PeerLink, got: FrameHeader, expected: RecvRequest): void {
    const q = link.peerRank;
    const mine = `${opName(expected.kind)} #${expected.seq} (step ${expected.step}, chunk ${expected.chunk}, ${expected.into.length} bytes)`;
    const theirs = `${opName(got.kind)} #${got.seq} (step ${got.step}, chunk ${got.chunk}, ${got.length} bytes)`;
    const sameOp = got.seq === (expected.seq | 0) && got.kind === expected.kind;
    this.fail(
      q,
      sameOp
        ? `collective mismatch: rank ${q} sent ${theirs} where rank ${this.rank} expected ${mine}; all ranks must pass the same sizes and counts`
        : `collective mismatch: rank ${q} sent ${theirs} where rank ${this.rank} expected ${mine}; every rank must issue the same collectives in the same order`,
    );
  }

  private onClosed(link: PeerLink, error: Error | undefined): void {
    this.pendingHello.delete(link);
    this.pendingChallenge.delete(link);
    const welcome = this.pendingWelcome.get(link);
    this.pendingWelcome.delete(link);
    welcome?.({ error: 'connection closed during the handshake' });
    const q = link.peerRank;
    if (q < 0 || this.links[q] !== link || this.closing) return;
    if (this.byeFrom.has(q)) {
      // A peer that said goodbye may have finished its part of everything; only what still needs it fails.
      this.departed.set(q, `peer rank ${q} closed its communicator`);
      if (link.numPending > 0) this.fail(q, `${this.departed.get(q)} (rank ${this.rank} was ${this.what})`);
    } else
      this.fail(
        q,
        `connection to peer rank ${q} lost (${error ? error.message : 'closed without goodbye'}): its process died or the network failed (rank ${this.rank} was ${this.what})`,
      );
  }

  /** Fails the group: rejects the running op, tells the peers why, and drops the connections. */
  private fail(peer: number, message: string): void {
    if (this.failure) return;
    const error = new CollectiveError(message, { peerRank: peer });
    this.failure = error;
    this.run?.reject(error);
    for (const link of this.links) {
      if (!link) continue;
      link.reset();
      if (!link.socket.destroyed) {
        link.sendControl(FrameType.abort, { message, peerRank: peer });
        link.socket.end();
      }
    }
    for (const listener of this.faultListeners) listener(error);
  }

  private checkStalls(): void {
    if (this.failure || this.closing) return;
    const now = performance.now();
    const limit = this.timeouts.timeoutMs;
    for (const link of this.links) {
      if (!link) continue;
      const q = link.peerRank;
      if (link.numPending > 0) {
        const silent = now - Math.max(link.lastReceiveAt, link.waitingSince);
        if (silent > limit)
          this.fail(
            q,
            `peer rank ${q} sent nothing for ${Math.round(silent)} ms while rank ${this.rank} waited for it in ${this.what} (timeout ${limit} ms: the peer stalled, died, or issued a different sequence of collectives)`,
          );
      }
      if (link.pendingWrites > 0 && now - link.lastFlushAt > limit)
        this.fail(
          q,
          `peer rank ${q} read nothing for ${Math.round(now - link.lastFlushAt)} ms while rank ${this.rank} sent to it in ${this.what} (timeout ${limit} ms: the peer stalled or the network is down)`,
        );
    }
  }

  /** Rejects the collective in flight because this rank is closing (the peers learn it from the goodbye). */
  interrupt(): void {
    this.run?.reject(
      new CollectiveError(`rank ${this.rank}: communicator closed while ${this.what} was in flight`),
    );
  }

  /** Says goodbye to the peers and closes every connection. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.watchdog) clearInterval(this.watchdog);
    this.server?.close();
    const closed: Promise<void>[] = [];
    for (const link of this.links) {
      if (!link || link.socket.destroyed) continue;
      closed.push(new Promise<void>((resolve) => link.socket.once('close', () => resolve())));
      if (!this.failure) link.sendControl(FrameType.bye, {});
      link.socket.end();
    }
    await Promise.race([Promise.all(closed), new Promise((resolve) => setTimeout(resolve, 500))]);
    for (const link of this.links) link?.socket.destroy();
  }

  // ---- collectives ----

  /** Runs one collective; resolves once its results are in the staging buffer. */
  async execute(op: OpMessage): Promise<void> {
    if (this.failure) throw this.failure;
    this.what = `${opName(op.kind)} #${op.seq}`;
    const run = new OpRun(op);
    this.run = run;
    const bytes = new Uint8Array(op.staging ?? new SharedArrayBuffer(0));
    const f32 = new Float32Array(bytes.buffer, 0, bytes.length >> 2);
    let after: (() => void) | undefined;
    switch (op.kind) {
      case OpKind.allReduce: {
        const n = op.numElements;
        if (n * 4 <= SMALL_MESSAGE_BYTES || this.n === 1) after = this.directReduce(run, f32.subarray(0, n));
        else this.ring(run, f32, splitEven(n, this.n), true);
        break;
      }
      case OpKind.reduceScatter: {
        const counts = op.counts;
        const total = counts.reduce((a, b) => a + b, 0);
        const offs = offsetsOf(counts);
        if (total * 4 <= SMALL_MESSAGE_BYTES || this.n === 1)
          after = this.directReduceScatter(run, f32, counts, offs);
        else this.ring(run, f32, [...counts], false);
        break;
      }
      case OpKind.allGather: {
        const offs = offsetsOf(op.counts);
        const piece = (q: number) => bytes.subarray(offs[q]! * 4, (offs[q]! + op.counts[q]!) * 4);
        for (let q = 0; q < this.n; q++) {
          if (q === this.rank) continue;
          this.sendRegion(run, q, 0, piece(this.rank));
          this.recvRegion(run, q, 0, piece(q));
        }
        break;
      }
      case OpKind.allToAll: {
        const sendOffs = offsetsOf(op.counts);
        const recvOffs = offsetsOf(op.recvCounts);
        const sendTotal = op.counts.reduce((a, b) => a + b, 0);
        const out = (q: number) =>
          bytes.subarray((sendTotal + recvOffs[q]!) * 4, (sendTotal + recvOffs[q]! + op.recvCounts[q]!) * 4);
        const inp = (q: number) => bytes.subarray(sendOffs[q]! * 4, (sendOffs[q]! + op.counts[q]!) * 4);
        out(this.rank).set(inp(this.rank));
        for (let q = 0; q < this.n; q++) {
          if (q === this.rank) continue;
          this.sendRegion(run, q, 0, inp(q));
          this.recvRegion(run, q, 0, out(q));
        }
        break;
      }
      case OpKind.broadcast:
        this.broadcast(run, bytes.subarray(0, op.numElements * 4), op.root);
        break;
      case OpKind.barrier:
        for (let q = 0; q < this.n; q++) {
          if (q === this.rank) continue;
          this.sendRegion(run, q, 0, bytes.subarray(0, 0));
          this.recvRegion(run, q, 0, bytes.subarray(0, 0));
        }
        break;
    }
    run.seal();
    try {
      await run.finished;
    } finally {
      this.run = undefined;
      this.what = 'idle';
    }
    after?.();
  }

  private send(run: OpRun, q: number, step: number, chunk: number, payload: Uint8Array): void {
    this.checkDeparted(q);
    const link = this.links[q]!;
    run.add();
    link.send({ type: FrameType.data, kind: run.op.kind, step, seq: run.op.seq, chunk }, payload, (e) => {
      if (e)
        this.fail(
          q,
          `connection to peer rank ${q} lost (${e.message}): its process died or the network failed (rank ${this.rank} was ${this.what})`,
        );
      else run.one();
    });
  }

  private recv(
    run: OpRun,
    q: number,
    step: number,
    chunk: number,
    into: Uint8Array,
    reduce: Float32Array | null,
    then?: () => void,
  ): void {
    // A peer that sent its last frames and left is not a failure while those frames are still buffered.
    if (this.links[q]!.numEarly === 0) this.checkDeparted(q);
    run.add();
    this.links[q]!.post({
      seq: run.op.seq,
      kind: run.op.kind,
      step,
      chunk,
      into,
      reduce,
      done: () => {
        then?.();
        run.one();
      },
    });
  }

  private checkDeparted(q: number): void {
    const reason = this.departed.get(q);
    if (reason !== undefined) this.fail(q, `${reason} (rank ${this.rank} was ${this.what})`);
    if (this.failure) throw this.failure;
  }

  /** Frames of a region: at least one (so empty parts still travel and are checked). */
  private frames(region: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (let at = 0; at < region.length || out.length === 0; at += this.chunkBytes)
      out.push(region.subarray(at, Math.min(region.length, at + this.chunkBytes)));
    return out;
  }

  private sendRegion(run: OpRun, q: number, step: number, region: Uint8Array): void {
    for (const [c, f] of this.frames(region).entries()) this.send(run, q, step, c, f);
  }

  private recvRegion(run: OpRun, q: number, step: number, region: Uint8Array): void {
    for (const [c, f] of this.frames(region).entries()) this.recv(run, q, step, c, f, null);
  }

  /**
   * Ring over `segLens.length` = N segments of `data`. Step k < N-1 (reduce-scatter): send segment
   * (r-k-1), receive segment (r-k-2) and add it in; after N-1 steps rank r holds the sum of segment r.
   * With `gather`, steps N-1 .. 2N-3 (all-gather) pass the summed segments on. Every chunk moves on to the
   * next step as soon as it arrived, so the steps overlap.
   */
  private ring(run: OpRun, data: Float32Array, segLens: number[], gather: boolean): void {
    const N = this.n;
    const r = this.rank;
    const next = mod(r + 1, N);
    const prev = mod(r - 1, N);
    const offs = offsetsOf(segLens);
    const chunkElems = this.chunkBytes / 4;
    const steps = (N - 1) * (gather ? 2 : 1);
    const sentAt = (k: number) => (k < N - 1 ? mod(r - k - 1, N) : mod(r - (k - (N - 1)), N));
    const piece = (seg: number, c: number) => {
      const lo = offs[seg]! + c * chunkElems;
      return data.subarray(lo, Math.min(offs[seg]! + segLens[seg]!, lo + chunkElems));
    };
    const bytesOf = (v: Float32Array) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    const numChunks = (seg: number) => Math.ceil(segLens[seg]! / chunkElems);
    // Step 0's frames go out first: a receive posted below may complete at once (its frame arrived
    // early) and forward step 1's frame, which must follow every step-0 frame on the connection.
    const first = sentAt(0);
    for (let c = 0; c < numChunks(first); c++) this.send(run, next, 0, c, bytesOf(piece(first, c)));
    for (let k = 0; k < steps; k++) {
      const seg = sentAt(k + 1); // what step k receives is what step k + 1 sends on
      for (let c = 0; c < numChunks(seg); c++) {
        const v = piece(seg, c);
        const forward = k + 1 < steps ? () => this.send(run, next, k + 1, c, bytesOf(v)) : undefined;
        this.recv(run, prev, k, c, bytesOf(v), k < N - 1 ? v : null, forward);
      }
    }
  }

  /**
   * Small all-reduce: every rank sends its whole buffer to every other and sums in rank order, once every
   * part arrived and this rank's own frames are flushed (`mine` is still being sent until then: a part
   * may arrive before this rank's write has left the socket's queue). The parts land in scratch buffers
   * reused from op to op. With two ranks `mine` is summed in place (a + b and b + a are the same float,
   * so both ranks still end bitwise equal); with more, in rank order from a copy.
   */
  private directReduce(run: OpRun, mine: Float32Array): () => void {
    const bytes = new Uint8Array(mine.buffer, mine.byteOffset, mine.byteLength);
    const parts = this.partsFor(mine);
    for (let q = 0; q < this.n; q++) {
      if (q === this.rank) continue;
      const p = parts[q]!;
      this.sendRegion(run, q, 0, bytes);
      this.recvRegion(run, q, 0, new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
    }
    if (this.n === 2) return () => addInto(mine, parts[1 - this.rank]!);
    return () => sumInOrder(mine, parts);
  }

  /** Small reduce-scatter: rank q receives segment q from everyone and sums in rank order. */
  private directReduceScatter(
    run: OpRun,
    data: Float32Array,
    counts: readonly number[],
    offs: number[],
  ): (() => void) | undefined {
    const seg = (q: number) => data.subarray(offs[q]!, offs[q]! + counts[q]!);
    const mine = seg(this.rank);
    if (this.n === 2) {
      // The peer's segment is added into `mine` as it arrives: `mine` is not what this rank sends.
      const q = 1 - this.rank;
      const s = seg(q);
      this.sendRegion(run, q, 0, new Uint8Array(s.buffer, s.byteOffset, s.byteLength));
      this.recvReduceRegion(run, q, mine);
      return undefined;
    }
    const parts = this.partsFor(mine);
    for (let q = 0; q < this.n; q++) {
      if (q === this.rank) continue;
      const s = seg(q);
      const p = parts[q]!;
      this.sendRegion(run, q, 0, new Uint8Array(s.buffer, s.byteOffset, s.byteLength));
      this.recvRegion(run, q, 0, new Uint8Array(p.buffer, p.byteOffset, p.byteLength));
    }
    return () => sumInOrder(mine, parts);
  }

  /** Receives `acc`'s size from peer q frame by frame, adding each frame into its part of `acc`. */
  private recvReduceRegion(run: OpRun, q: number, acc: Float32Array): void {
    const chunkElems = this.chunkBytes / 4;
    for (let c = 0, at = 0; at < acc.length || c === 0; c++, at += chunkElems) {
      const v = acc.subarray(at, Math.min(acc.length, at + chunkElems));
      this.recv(run, q, 0, c, new Uint8Array(v.buffer, v.byteOffset, v.byteLength), v);
    }
  }

  /**
   * The parts of a small reduction: scratch buffers reused from op to op, one per peer; this rank's own
   * part (more than two ranks only) is a copy of `mine`, which is summed into `mine` in rank order.
   */
  private partsFor(mine: Float32Array): Float32Array[] {
    const n = mine.length;
    return Array.from({ length: this.n }, (_, q) => {
      if (q === this.rank && this.n === 2) return mine;
      let buf = this.partScratch[q];
      if (buf === undefined || buf.length < n) {
        buf = new Float32Array(Math.max(n, SMALL_MESSAGE_BYTES / 4));
        this.partScratch[q] = buf;
      }
      const part = buf.subarray(0, n);
      if (q === this.rank) part.set(mine);
      return part;
    });
  }

  /** Small or two-rank broadcast: the root sends to all; larger: a pipelined chain root → root+1 → ... */
  private broadcast(run: OpRun, region: Uint8Array, root: number): void {
    if (region.length <= SMALL_MESSAGE_BYTES || this.n <= 2) {
      if (this.rank === root) {
        for (let q = 0; q < this.n; q++) if (q !== root) this.sendRegion(run, q, 0, region);
      } else this.recvRegion(run, root, 0, region);
      return;
    }
    const position = mod(this.rank - root, this.n);
    const next = position < this.n - 1 ? mod(this.rank + 1, this.n) : -1;
    if (this.rank === root) {
      this.sendRegion(run, next, 0, region);
      return;
    }
    const prev = mod(this.rank - 1, this.n);
    for (const [c, f] of this.frames(region).entries())
      this.recv(run, prev, 0, c, f, null, next >= 0 ? () => this.send(run, next, 0, c, f) : undefined);
  }
}
