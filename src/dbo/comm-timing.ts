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

/** The wait sums of one rank: shared by the TimedCommunicators of its groups, so overlaps count once. */
export class WaitClock {
  private pending = 0;
  private since = 0;
  private numWaits = 0;
  private waitMs = 0;

  constructor(
    /** Milliseconds clock (injectable for tests). */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** The sums so far (a snapshot). */
  get stats(): CommWaitStats {
    const open = this.pending > 0 ? this.now() - this.since : 0;
    return { numWaits: this.numWaits, waitMs: this.waitMs + open };
  }

  begin(): void {
    this.numWaits++;
    if (this.pending++ === 0) this.since = this.now();
  }

  end(): void {
    if (--this.pending === 0) this.waitMs += this.now() - this.since;
  }
}

/** A Communicator that forwards every call to `inner` and times the waits on its handles. */
export class TimedCommunicator implements Communicator {
  constructor(
    private readonly inner: Communicator,
    /** Where the waits are summed (a rank's groups share one). */
    readonly clock: WaitClock = new WaitClock(),
  ) {}

  get rank(): number {
    return this.inner.rank;
  }

  get worldSize(): number {
    return this.inner.worldSize;
  }

  /** The clock's sums so far (a snapshot). */
  get stats(): CommWaitStats {
    return this.clock.stats;
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
        this.clock.begin();
        try {
          await handle.wait();
        } finally {
          this.clock.end();
        }
      },
    };
  }
}
