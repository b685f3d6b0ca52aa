// Shared-memory collectives, run on a rank's communication thread. Data moves in rounds: in round t each
// rank fills its mailbox slot (t mod 2) with up to one chunk, announces it, waits until every rank did,
// then reads what it needs from the others' slots. Large all-reduces use two phases per round (each rank
// sums its 1/N sub-slice from all slots — a reduce-scatter — then everyone copies the N reduced
// sub-slices — an all-gather); small ones sum the whole chunk directly. Sums run in rank order, so every
// rank gets bitwise-identical results equal to a rank-order float32 sum. Waiting blocks this thread on
// Atomics.wait in short slices, checking between slices for peers that died, stalled or left.

import { CollectiveError } from './communicator.js';
import type { SharedMemoryGroupDescriptor } from './group.js';
import {
  CH_CLOSE,
  hasPassed,
  OpKind,
  type OpMessage,
  offsetsOf,
  opName,
  readSharedText,
  sizeChecksum,
  splitEven,
  writeSharedText,
} from './op.js';
import { sumInOrder } from './reduce.js';
import {
  FAULT_MESSAGE_CAPACITY_BYTES,
  faultMessageOffset,
  GROUP_FAULT,
  GROUP_FAULT_MSG_BYTES,
  GROUP_FAULT_PEER,
  HEARTBEAT_PERIOD_MS,
  type MailboxSlot,
  mailboxSlots,
  RANK_ARRIVE,
  RANK_CLOSED,
  RANK_DEPART,
  RANK_HEARTBEAT,
  RANK_JOINED,
  rankBase,
  SLOT_CHECK,
  SLOT_KIND,
  SLOT_ROUNDS,
  SLOT_SEQ,
} from './shm-layout.js';

/** Rounds whose chunk is at least this many bytes use the two-phase (reduce-scatter + all-gather) sum. */
const TWO_PHASE_MIN_BYTES = 32 * 1024;
/** Polls of a counter before sleeping on it (~10-25 µs: halves small-op latency; short, as ranks may outnumber cores). */
const SPIN_POLLS = 5000;
const EMPTY = new SharedArrayBuffer(0);

export interface TransportTimeouts {
  /** A wait on one peer longer than this fails the group. */
  readonly timeoutMs: number;
  /** Joining (all ranks present) must finish within this. */
  readonly connectTimeoutMs: number;
  /** A peer whose communication thread shows no sign of life for this long is declared dead. */
  readonly heartbeatTimeoutMs: number;
}

interface PeerLife {
  beat: number;
  seenAt: number;
}

export class ShmTransport {
  private readonly ctrl: Int32Array;
  private readonly slots: MailboxSlot[][]; // [rank][slot]
  private readonly chunkElems: number;
  private readonly subElems: number; // per-destination area of a slot (reduce-scatter, all-to-all)
  private readonly n: number;
  private round = 0;
  private lastBeatAt = 0;
  private readonly peers: PeerLife[];
  private what = 'joining the group';

  constructor(
    private readonly desc: SharedMemoryGroupDescriptor,
    private readonly rank: number,
    private readonly timeouts: TransportTimeouts,
    private readonly channel: Int32Array,
  ) {
    this.ctrl = new Int32Array(desc.control);
    this.n = desc.worldSize;
    this.slots = desc.mailboxes.map((m) => mailboxSlots(m, desc.chunkBytes));
    this.chunkElems = desc.chunkBytes / 4;
    this.subElems = Math.floor(this.chunkElems / this.n / 16) * 16;
    this.peers = Array.from({ length: this.n }, () => ({ beat: 0, seenAt: 0 }));
  }

  /** Announces this rank and waits (blocking) until every rank joined. */
  join(): void {
    const base = rankBase(this.rank);
    if (Atomics.compareExchange(this.ctrl, base + RANK_JOINED, 0, 1) !== 0)
      throw new CollectiveError(
        `rank ${this.rank} already joined this shared-memory group; a group descriptor serves one group lifetime`,
      );
    Atomics.notify(this.ctrl, base + RANK_JOINED);
    this.beat(true);
    const start = performance.now();
    for (let q = 0; q < this.n; q++) {
      const idx = rankBase(q) + RANK_JOINED;
      while (Atomics.load(this.ctrl, idx) === 0) {
        Atomics.wait(this.ctrl, idx, 0, HEARTBEAT_PERIOD_MS);
        this.beat(false);
        this.checkClosedLocally();
        if (performance.now() - start > this.timeouts.connectTimeoutMs) {
          const missing = [];
          for (let p = 0; p < this.n; p++)
            if (Atomics.load(this.ctrl, rankBase(p) + RANK_JOINED) === 0) missing.push(p);
          throw new CollectiveError(
            `rank ${this.rank}: ranks [${missing.join(', ')}] did not join the shared-memory group within ${this.timeouts.connectTimeoutMs} ms`,
            { peerRank: missing[0] },
          );
        }
      }
    }
    const now = performance.now();
    for (let q = 0; q < this.n; q++)
      this.peers[q] = { beat: Atomics.load(this.ctrl, rankBase(q) + RANK_HEARTBEAT), seenAt: now };
    this.what = 'idle';
  }

  /** Runs one collective to completion (blocking this thread); throws CollectiveError if the group fails. */
  execute(op: OpMessage): void {
    this.what = `${opName(op.kind)} #${op.seq}`;
    switch (op.kind) {
      case OpKind.allReduce:
        this.allReduce(op);
        break;
      case OpKind.allGather:
        this.allGather(op);
        break;
      case OpKind.reduceScatter:
        this.reduceScatter(op);
        break;
      case OpKind.allToAll:
        this.allToAll(op);
        break;
      case OpKind.broadcast:
        this.broadcast(op);
        break;
      case OpKind.barrier:
        this.barrier(op);
        break;
    }
    this.what = 'idle';
  }

  /**
   * Called while idle: keeps the heartbeat going and detects a failed group or a dead peer. A peer that
   * closed its communicator is not a failure yet (it may have finished everything); the next collective
   * that waits on it fails.
   */
  idleCheck(): void {
    this.beat(false);
    this.checkGroupFault();
    for (let q = 0; q < this.n; q++) if (q !== this.rank) this.checkPeer(q);
  }

  /** Marks this rank as gone, waking peers that wait on it. */
  leave(): void {
    const base = rankBase(this.rank);
    Atomics.store(this.ctrl, base + RANK_CLOSED, 1);
    for (const w of [RANK_JOINED, RANK_ARRIVE, RANK_DEPART]) Atomics.notify(this.ctrl, base + w);
  }

  // ---- collectives ----
  // Each round: claim the slot, fill it, announce, wait for everyone, (first round: check that all ranks
  // run the same op), read, leave.

  private allReduce(op: OpMessage): void {
    const total = op.numElements;
    const data = new Float32Array(op.staging ?? EMPTY, 0, total);
    const rounds = Math.max(1, Math.ceil(total / this.chunkElems));
    const check = sizeChecksum([total]);
    for (let j = 0; j < rounds; j++) {
      const lo = j * this.chunkElems;
      const m = Math.min(this.chunkElems, total - lo);
      const mine = j === 0 ? this.beginRound(op, check, rounds) : this.nextRound();
      const s = this.round & 1;
      mine.dataF32.set(data.subarray(lo, lo + m));
      this.arrive(1);
      this.awaitAll(1);
      if (j === 0) this.checkHeaders(op, check);
      const srcs = (a: number, b: number) => this.slots.map((box) => box[s]!.dataF32.subarray(a, b));
      if (m * 4 < TWO_PHASE_MIN_BYTES || this.n === 1) {
        sumInOrder(data.subarray(lo, lo + m), srcs(0, m));
      } else {
        const parts = splitEven(m, this.n);
        const offs = offsetsOf(parts);
        const a = offs[this.rank]!;
        sumInOrder(mine.reduced.subarray(a, a + parts[this.rank]!), srcs(a, a + parts[this.rank]!));
        this.arrive(2);
        this.awaitAll(2);
        for (let q = 0; q < this.n; q++) {
          const qa = offs[q]!;
          data.set(this.slots[q]![s]!.reduced.subarray(qa, qa + parts[q]!), lo + qa);
        }
      }
      this.depart();
    }
  }

  private allGather(op: OpMessage): void {
    const counts = op.counts;
    const offs = offsetsOf(counts);
    const bytes = new Uint8Array(op.staging ?? EMPTY);
    const chunkBytes = this.chunkElems * 4;
    const rounds = Math.max(1, Math.ceil(Math.max(...counts) / this.chunkElems));
    const check = sizeChecksum(counts);
    for (let j = 0; j < rounds; j++) {
      // Piece j of rank q's part: bytes [at, at + len) of the staging buffer.
      const pieceOf = (q: number) => {
        const lo = Math.min(j * chunkBytes, counts[q]! * 4);
        return { at: offs[q]! * 4 + lo, len: Math.min(chunkBytes, counts[q]! * 4 - lo) };
      };
      const mine = j === 0 ? this.beginRound(op, check, rounds) : this.nextRound();
      const s = this.round & 1;
      const me = pieceOf(this.rank);
      mine.data.set(bytes.subarray(me.at, me.at + me.len));
      this.arrive(1);
      this.awaitAll(1);
      if (j === 0) this.checkHeaders(op, check);
      for (let q = 0; q < this.n; q++) {
        if (q === this.rank) continue;
        const p = pieceOf(q);
        bytes.set(this.slots[q]![s]!.data.subarray(0, p.len), p.at);
      }
      this.depart();
    }
  }

  private reduceScatter(op: OpMessage): void {
    const counts = op.counts;
    const offs = offsetsOf(counts);
    const data = new Float32Array(op.staging ?? EMPTY);
    const sub = this.subElems;
    const rounds = Math.max(1, Math.ceil(Math.max(...counts) / sub));
    const check = sizeChecksum(counts);
    for (let j = 0; j < rounds; j++) {
      const pieceLen = (q: number) => Math.max(0, Math.min(sub, counts[q]! - j * sub));
      const mine = j === 0 ? this.beginRound(op, check, rounds) : this.nextRound();
      const s = this.round & 1;
      // Slot area q holds piece j of segment q, which rank q sums.
      for (let q = 0; q < this.n; q++) {
        const at = offs[q]! + j * sub;
        mine.dataF32.set(data.subarray(at, at + pieceLen(q)), q * sub);
      }
      this.arrive(1);
      this.awaitAll(1);
      if (j === 0) this.checkHeaders(op, check);
      const len = pieceLen(this.rank);
      const a = this.rank * sub;
      const at = offs[this.rank]! + j * sub;
      sumInOrder(
        data.subarray(at, at + len),
        this.slots.map((box) => box[s]!.dataF32.subarray(a, a + len)),
      );
      this.depart();
    }
  }

  private allToAll(op: OpMessage): void {
    const send = op.counts;
    const recv = op.recvCounts;
    const sendOffs = offsetsOf(send);
    const recvOffs = offsetsOf(recv);
    const sendTotal = sendOffs[this.n - 1]! + send[this.n - 1]!;
    const data = new Float32Array(op.staging ?? EMPTY);
    const sub = this.subElems;
    // This rank's own slice moves locally.
    const own = sendOffs[this.rank]!;
    data.copyWithin(sendTotal + recvOffs[this.rank]!, own, own + send[this.rank]!);
    // The group runs as many rounds as its busiest rank needs (learned from the first round's headers).
    let rounds = Math.max(1, Math.ceil(Math.max(...send, ...recv) / sub));
    for (let j = 0; j < rounds; j++) {
      const piece = (count: number) => Math.max(0, Math.min(sub, count - j * sub));
      const mine = j === 0 ? this.beginRound(op, 0, rounds) : this.nextRound();
      const s = this.round & 1;
      for (let q = 0; q < this.n; q++) {
        if (q === this.rank) continue;
        const at = sendOffs[q]! + j * sub;
        mine.dataF32.set(data.subarray(at, at + piece(send[q]!)), q * sub);
      }
      // In the first round the reduced area carries this rank's send counts, so receivers check theirs.
      if (j === 0) new Int32Array(mine.reduced.buffer, mine.reduced.byteOffset, this.n).set(send);
      this.arrive(1);
      this.awaitAll(1);
      if (j === 0) {
        this.checkHeaders(op, 0);
        for (let q = 0; q < this.n; q++) {
          const theirs = this.slots[q]![s]!;
          rounds = Math.max(rounds, theirs.header[SLOT_ROUNDS]!);
          const sent = new Int32Array(theirs.reduced.buffer, theirs.reduced.byteOffset, this.n)[this.rank]!;
          if (q !== this.rank && sent !== recv[q])
            this.fail(
              q,
              `${this.what}: rank ${q} sends ${sent} elements to rank ${this.rank}, but rank ${this.rank} expects recvCounts[${q}] = ${recv[q]}`,
            );
        }
      }
      const a = this.rank * sub;
      for (let q = 0; q < this.n; q++) {
        if (q === this.rank) continue;
        const len = piece(recv[q]!);
        if (len > 0)
          data.set(this.slots[q]![s]!.dataF32.subarray(a, a + len), sendTotal + recvOffs[q]! + j * sub);
      }
      this.depart();
    }
  }

  private broadcast(op: OpMessage): void {
    const total = op.numElements;
    const bytes = new Uint8Array(op.staging ?? EMPTY, 0, total * 4);
    const chunkBytes = this.chunkElems * 4;
    const rounds = Math.max(1, Math.ceil(total / this.chunkElems));
    const isRoot = op.root === this.rank;
    const check = sizeChecksum([total, op.root]);
    for (let j = 0; j < rounds; j++) {
      const lo = j * chunkBytes;
      const len = Math.min(chunkBytes, total * 4 - lo);
      const mine = j === 0 ? this.beginRound(op, check, rounds) : this.nextRound();
      const s = this.round & 1;
      if (isRoot) mine.data.set(bytes.subarray(lo, lo + len));
      this.arrive(1);
      this.awaitAll(1);
      if (j === 0) this.checkHeaders(op, check);
      if (!isRoot) bytes.set(this.slots[op.root]![s]!.data.subarray(0, len), lo);
      this.depart();
    }
  }

  private barrier(op: OpMessage): void {
    this.beginRound(op, 0, 1);
    this.arrive(1);
    this.awaitAll(1);
    this.checkHeaders(op, 0);
    this.depart();
  }

  // ---- rounds ----

  /** Begins a new round and writes the op header into this rank's slot. */
  private beginRound(op: OpMessage, check: number, rounds: number): MailboxSlot {
    const mine = this.nextRound();
    mine.header[SLOT_SEQ] = op.seq | 0;
    mine.header[SLOT_KIND] = op.kind;
    mine.header[SLOT_CHECK] = check;
    mine.header[SLOT_ROUNDS] = rounds;
    return mine;
  }

  /** Advances to the next round once every rank left the round that last used the same slot. */
  private nextRound(): MailboxSlot {
    this.round = (this.round + 1) | 0;
    const free = (this.round - 2) | 0;
    for (let q = 0; q < this.n; q++) if (q !== this.rank) this.waitFor(q, RANK_DEPART, free);
    return this.slots[this.rank]![this.round & 1]!;
  }

  private arrive(phase: 1 | 2): void {
    const idx = rankBase(this.rank) + RANK_ARRIVE;
    Atomics.store(this.ctrl, idx, (2 * this.round - (phase === 1 ? 1 : 0)) | 0);
    Atomics.notify(this.ctrl, idx);
  }

  /** Waits until every rank arrived at `phase` of the current round. */
  private awaitAll(phase: 1 | 2): void {
    const target = (2 * this.round - (phase === 1 ? 1 : 0)) | 0;
    for (let q = 0; q < this.n; q++) if (q !== this.rank) this.waitFor(q, RANK_ARRIVE, target);
  }

  private depart(): void {
    const idx = rankBase(this.rank) + RANK_DEPART;
    Atomics.store(this.ctrl, idx, this.round);
    Atomics.notify(this.ctrl, idx);
  }

  /** Every rank must be running the same collective with the same sizes. */
  private checkHeaders(op: OpMessage, check: number): void {
    const s = this.round & 1;
    for (let q = 0; q < this.n; q++) {
      if (q === this.rank) continue;
      const h = this.slots[q]![s]!.header;
      if (h[SLOT_SEQ] !== (op.seq | 0) || h[SLOT_KIND] !== op.kind || h[SLOT_CHECK] !== check) {
        const sameOp = h[SLOT_SEQ] === (op.seq | 0) && h[SLOT_KIND] === op.kind;
        this.fail(
          q,
          sameOp
            ? `collective mismatch: rank ${q} issued ${opName(op.kind)} #${op.seq} with different sizes than rank ${this.rank}; all ranks must pass the same counts`
            : `collective mismatch: rank ${q} issued ${opName(h[SLOT_KIND]!)} #${h[SLOT_SEQ]} where rank ${this.rank} issued ${this.what}; every rank must issue the same collectives in the same order`,
        );
      }
    }
  }

  // ---- waiting and failure ----

  /** Blocks until rank q's counter `word` reaches `target` (wrap-safe), or fails the group. */
  private waitFor(q: number, word: number, target: number): void {
    const idx = rankBase(q) + word;
    let v = Atomics.load(this.ctrl, idx);
    if (!hasPassed(v, (target - 1) | 0)) {
      for (let i = 0; i < SPIN_POLLS; i++) {
        v = Atomics.load(this.ctrl, idx);
        if (hasPassed(v, (target - 1) | 0)) return;
      }
      const start = performance.now();
      while (!hasPassed(v, (target - 1) | 0)) {
        this.beat(false);
        this.checkGroupFault();
        this.checkClosedLocally();
        if (Atomics.load(this.ctrl, rankBase(q) + RANK_CLOSED) === 1) {
          // It closed; it may still have reached the target just before (it writes counters first).
          if (hasPassed(Atomics.load(this.ctrl, idx), (target - 1) | 0)) return;
          this.fail(q, `peer rank ${q} closed its communicator (rank ${this.rank} was ${this.what})`);
        }
        this.checkPeer(q);
        Atomics.wait(this.ctrl, idx, v, HEARTBEAT_PERIOD_MS);
        v = Atomics.load(this.ctrl, idx);
        if (hasPassed(v, (target - 1) | 0)) return;
        const waited = performance.now() - start;
        if (waited > this.timeouts.timeoutMs)
          this.fail(
            q,
            `peer rank ${q} did not reach ${this.what} within ${this.timeouts.timeoutMs} ms (rank ${this.rank} waited ${Math.round(waited)} ms; the peer stalled, died, or issued a different sequence of collectives)`,
          );
      }
    }
  }

  /** Fails the group if peer q's communication thread stopped beating (a closed peer is not checked). */
  private checkPeer(q: number): void {
    const base = rankBase(q);
    if (Atomics.load(this.ctrl, base + RANK_CLOSED) === 1) return;
    const beat = Atomics.load(this.ctrl, base + RANK_HEARTBEAT);
    const life = this.peers[q]!;
    const now = performance.now();
    if (beat !== life.beat) {
      life.beat = beat;
      life.seenAt = now;
    } else if (now - life.seenAt > this.timeouts.heartbeatTimeoutMs) {
      this.fail(
        q,
        `peer rank ${q} is dead: its communication thread showed no sign of life for ${Math.round(now - life.seenAt)} ms (rank ${this.rank} was ${this.what})`,
      );
    }
  }

  private checkClosedLocally(): void {
    if (Atomics.load(this.channel, CH_CLOSE) === 1)
      throw new CollectiveError(`rank ${this.rank}: communicator closed while ${this.what} was in flight`);
  }

  private checkGroupFault(): void {
    if (Atomics.load(this.ctrl, GROUP_FAULT) !== 0) throw this.groupFault();
  }

  private groupFault(): CollectiveError {
    // 2 means another rank is still writing the message.
    while (Atomics.load(this.ctrl, GROUP_FAULT) === 2) Atomics.wait(this.ctrl, GROUP_FAULT, 2, 1);
    const peer = Atomics.load(this.ctrl, GROUP_FAULT_PEER);
    const length = Atomics.load(this.ctrl, GROUP_FAULT_MSG_BYTES);
    const area = new Uint8Array(this.desc.control, faultMessageOffset(this.n), FAULT_MESSAGE_CAPACITY_BYTES);
    return new CollectiveError(readSharedText(area, length), { peerRank: peer >= 0 ? peer : undefined });
  }

  /** Declares the group failed (first declaration wins) and throws the group's error. */
  private fail(peer: number, message: string): never {
    if (Atomics.load(this.ctrl, GROUP_FAULT) === 0) {
      const area = new Uint8Array(
        this.desc.control,
        faultMessageOffset(this.n),
        FAULT_MESSAGE_CAPACITY_BYTES,
      );
      // A lock word: 2 while the message is written, 1 once it is readable.
      if (Atomics.compareExchange(this.ctrl, GROUP_FAULT, 0, 2) === 0) {
        Atomics.store(this.ctrl, GROUP_FAULT_MSG_BYTES, writeSharedText(area, message));
        Atomics.store(this.ctrl, GROUP_FAULT_PEER, peer);
        Atomics.store(this.ctrl, GROUP_FAULT, 1);
        for (let q = 0; q < this.n; q++)
          for (const w of [RANK_ARRIVE, RANK_DEPART]) Atomics.notify(this.ctrl, rankBase(q) + w);
        throw new CollectiveError(message, { peerRank: peer });
      }
    }
    throw this.groupFault();
  }

  private beat(force: boolean): void {
    const now = performance.now();
    if (force || now - this.lastBeatAt >= HEARTBEAT_PERIOD_MS / 2) {
      this.lastBeatAt = now;
      Atomics.add(this.ctrl, rankBase(this.rank) + RANK_HEARTBEAT, 1);
    }
  }
}
