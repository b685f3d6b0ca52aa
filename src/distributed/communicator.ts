// The collective-communication contract a model's forward calls at its explicit communication points
// (after row-parallel projections, around MoE dispatch and combine). Every collective is asynchronous: it
// returns a handle at once and moves data on the rank's communication stream (its own thread), so the
// compute thread keeps computing — and, with dual-batch overlap, the other micro-batch runs — until the
// handle is waited on. Buffers are the caller's; they must not be touched between the call and the wait.

/** Element buffers a collective moves. Reductions (sum) take float32 only. */
export type CommBuffer = Float32Array | Int32Array;

/** An in-flight collective. `wait()` resolves when its output buffers hold the result. */
export interface CollectiveHandle {
  readonly isDone: boolean;
  wait(): Promise<void>;
}

/**
 * A process group's view from one rank. Ordering rule: every rank of the group must issue the same
 * collectives, with matching sizes, in the same order; a communicator runs them one after another in
 * issue order. Two collectives may be in flight at once (e.g. one per micro-batch) — each has its own
 * buffers — but they complete in issue order.
 */
export interface Communicator {
  /** This rank's index in the group, 0..worldSize-1. */
  readonly rank: number;
  /** Number of ranks in the group. */
  readonly worldSize: number;

  /** Sums `buf` element-wise across the group, in place. */
  allReduce(buf: Float32Array): CollectiveHandle;

  /**
   * Gathers every rank's `input` into `out`, in rank order: out = concat(input_0, input_1, ...).
   * `counts[r]` is rank r's element count (all ranks pass the same `counts`); `out.length` = Σ counts.
   */
  allGather<T extends CommBuffer>(out: T, input: T, counts: readonly number[]): CollectiveHandle;

  /**
   * Sums the ranks' `input`s and leaves rank r with slice r of the sum: `input` is the concatenation of
   * worldSize slices of `counts[0..]` elements; `out.length` = counts[rank].
   */
  reduceScatter(out: Float32Array, input: Float32Array, counts: readonly number[]): CollectiveHandle;

  /**
   * Variable-size all-to-all (MoE dispatch / combine): `input` is the concatenation of the slices this rank
   * sends to ranks 0..worldSize-1 (`sendCounts[r]` elements each); `out` receives, in rank order, the
   * slices every rank sent to this one (`recvCounts[r]` elements from rank r). Counts are exchanged by the
   * caller beforehand (e.g. with a small allGather).
   */
  allToAll<T extends CommBuffer>(
    out: T,
    recvCounts: readonly number[],
    input: T,
    sendCounts: readonly number[],
  ): CollectiveHandle;

  /** Copies `buf` of rank `root` into every rank's `buf`. */
  broadcast<T extends CommBuffer>(buf: T, root: number): CollectiveHandle;

  /** Completes when every rank has called it. */
  barrier(): CollectiveHandle;

  /** Stops the communication thread and releases transports. */
  close(): Promise<void>;
}

/**
 * A collective did not complete: a peer died or stalled beyond the timeout, the ranks issued different
 * collectives, or the group was closed. Once a group has failed, every pending and later collective of
 * that communicator rejects with the same error: the group must be rebuilt.
 */
export class CollectiveError extends Error {
  /** The rank held responsible (the dead, stalled or mismatched peer), when known. */
  readonly peerRank: number | undefined;
  constructor(message: string, options: { peerRank?: number } = {}) {
    super(message);
    this.name = 'CollectiveError';
    this.peerRank = options.peerRank;
  }
}

/** A collective was called with arguments that cannot work (wrong lengths, counts, types, root). */
export class InvalidCollectiveError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvalidCollectiveError';
  }
}

const DONE: CollectiveHandle = { isDone: true, wait: async () => {} };

/** The group of one: every collective is a local copy or nothing. */
export class SingleRankCommunicator implements Communicator {
  readonly rank = 0;
  readonly worldSize = 1;
  allReduce(_buf: Float32Array): CollectiveHandle {
    return DONE;
  }
  allGather<T extends CommBuffer>(out: T, input: T, _counts: readonly number[]): CollectiveHandle {
    if (out !== input) out.set(input as never);
    return DONE;
  }
  reduceScatter(out: Float32Array, input: Float32Array, _counts: readonly number[]): CollectiveHandle {
    if (out !== input) out.set(input.subarray(0, out.length));
    return DONE;
  }
  allToAll<T extends CommBuffer>(
    out: T,
    _rc: readonly number[],
    input: T,
    _sc: readonly number[],
  ): CollectiveHandle {
    if (out !== input) out.set(input as never);
    return DONE;
  }
  broadcast<T extends CommBuffer>(_buf: T, _root: number): CollectiveHandle {
    return DONE;
  }
  barrier(): CollectiveHandle {
    return DONE;
  }
  async close(): Promise<void> {}
}
