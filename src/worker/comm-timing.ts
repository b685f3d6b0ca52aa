// How long a rank's compute thread waits on communication: a Communicator wrapper that times every
// `handle.wait()` and sums the wall time during which at least one wait is pending (so two micro-batches
// waiting at once count once). A collective that completed before its wait costs (almost) nothing: only
// blocking is counted, not the transfer itself. Benchmarks read the sums to report the share of step time
// spent waiting on the group.

import type { CollectiveHandle, CommBuffer, Communicator } from '../distributed/communicator.js';

/** Sums kept by a `TimedCommunicator`. */
export interface CommWaitStats {
  /** Handles waited on. */
  readonly numWaits: number;
  /** Wall milliseconds during which at least one wait was pending. */
  readonly waitMs: number;
}

/** A Communicator that forwards every call to `inner` and times the waits on its handles. */
export class TimedCommunicator implements Communicator {
  private pending = 0;
  private since = 0;
  private numWaits = 0;
  private waitMs = 0;

  constructor(
    private readonly inner: Communicator,
    /** Milliseconds clock (injectable for tests). */
    private readonly now: () => number = () => performance.now(),
  ) {}

  get rank(): number {
    return this.inner.rank;
  }

  get worldSize(): number {
    return this.inner.worldSize;
  }

  /** The sums so far (a snapshot). */
  get stats(): CommWaitStats {
    const open = this.pending > 0 ? this.now() - this.since : 0;
    return { numWaits: this.numWaits, waitMs: this.waitMs + open };
  }

  allReduce(buf: Float32Array): CollectiveHandle {
    return this.timed(this.inner.allReduce(buf));
  }

  allGather<T extends CommBuffer>(out: T, input: T, counts: readonly number[]): CollectiveHandle {
    return this.timed(this.inner.allGather(out, input, counts));
  }

  reduceScatter(out: Float32Array, input: Float32Array, counts: readonly number[]): CollectiveHandle {
    return this.timed(this.inner.reduceScatter(out, input, counts));
  }

  allToAll<T extends CommBuffer>(
    out: T,
    recvCounts: readonly number[],
    input: T,
    sendCounts: readonly number[],
  ): CollectiveHandle {
    return this.timed(this.inner.allToAll(out, recvCounts, input, sendCounts));
  }

  broadcast<T extends CommBuffer>(buf: T, root: number): CollectiveHandle {
    return this.timed(this.inner.broadcast(buf, root));
  }

  barrier(): CollectiveHandle {
    return this.timed(this.inner.barrier());
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private timed(handle: CollectiveHandle): CollectiveHandle {
    return {
      get isDone() {
        return handle.isDone;
      },
      wait: async () => {
        this.begin();
        try {
          await handle.wait();
        } finally {
          this.end();
        }
      },
    };
  }

  private begin(): void {
    this.numWaits++;
    if (this.pending++ === 0) this.since = this.now();
  }

  private end(): void {
    if (--this.pending === 0) this.waitMs += this.now() - this.since;
  }
}
