// Model executors: how the runner's batch reaches the model's ranks. The driver (rank 0, in the engine's
// thread) broadcasts each step's batch to the other ranks, which run the same forward on their shards in
// their own threads, processes or hosts; every collective of the forward joins them. With one rank the
// driver simply runs the forward. Dual-batch overlap, when on, applies on every rank alike.

import type { Communicator } from '../distributed/communicator.js';
import type { DeepseekForCausalLM } from '../models/deepseek.js';
import type { ForwardBatch } from '../models/forward-batch.js';
import type { MlaKvCache } from '../models/mla-kv-cache.js';
import { decodeForwardBatch, encodeForwardBatch } from './batch-codec.js';
import { TimedCommunicator } from './comm-timing.js';
import { type DboOptions, type DboStats, forwardWithDbo } from './dbo-forward.js';

/** Runs a step's batch on every rank; returns the logits rows (complete on the driver). */
export interface ModelExecutor {
  execute(batch: ForwardBatch): Promise<Float32Array>;
  /** Statistics of dual-batch overlap. */
  readonly dboStats: DboStats;
  /** Where the driver's step time went (for benchmarks). */
  readonly stepTiming: StepTimingStats;
  /** Stops the other ranks and releases the communicator. */
  close(): Promise<void>;
}

/** The driver's time in `execute` and the part of it spent waiting on collectives. */
export interface StepTimingStats {
  readonly steps: number;
  /** Wall milliseconds inside `execute` (batch broadcast and forward). */
  readonly executeMs: number;
  /** Of those, milliseconds during which the driver waited on a collective (see comm-timing.ts). */
  readonly commWaitMs: number;
}

/** Header value that tells the other ranks to stop. */
const SHUTDOWN = -1;

/** One rank's model and cache, its group, and the DBO settings. */
export interface RankState {
  readonly model: DeepseekForCausalLM;
  readonly cache: MlaKvCache;
  readonly comm: Communicator;
  readonly dbo: DboOptions;
}

/** Rank 0: drives the step loop. */
export class DriverExecutor implements ModelExecutor {
  readonly dboStats: DboStats = { steps: 0, splitSteps: 0 };
  private closed = false;
  /** The rank's communicator, timing the driver's waits. */
  private readonly comm: TimedCommunicator;
  private numSteps = 0;
  private executeMs = 0;

  constructor(
    private readonly rank: RankState,
    /** Runs after the group is told to stop (e.g. waits for follower threads to exit). */
    private readonly onClose: () => Promise<void> = async () => {},
  ) {
    this.comm = new TimedCommunicator(rank.comm);
  }

  get stepTiming(): StepTimingStats {
    return { steps: this.numSteps, executeMs: this.executeMs, commWaitMs: this.comm.stats.waitMs };
  }

  async execute(batch: ForwardBatch): Promise<Float32Array> {
    const { model, cache, dbo } = this.rank;
    const comm = this.comm;
    const started = performance.now();
    try {
      if (comm.worldSize > 1) {
        const payload = encodeForwardBatch(batch);
        await comm.broadcast(Int32Array.of(payload.length), 0).wait();
        await comm.broadcast(payload, 0).wait();
      }
      return await forwardWithDbo(model, cache, comm, batch, dbo, this.dboStats);
    } finally {
      this.numSteps++;
      this.executeMs += performance.now() - started;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const { comm } = this.rank;
    if (comm.worldSize > 1) {
      try {
        await comm.broadcast(Int32Array.of(SHUTDOWN), 0).wait();
        // Every rank has seen the stop before anyone closes its connections.
        await comm.barrier().wait();
      } catch {
        // A dead group cannot be told to stop; closing is all that is left.
      }
    }
    this.rank.dbo.tracer?.flush();
    await this.onClose();
    await comm.close();
  }
}

/**
 * A follower rank's loop: receive each step's batch from the driver and run the same forward, until the
 * driver says stop (or the group fails, which rejects).
 */
export async function runFollower(rank: RankState): Promise<DboStats> {
  const { model, cache, comm, dbo } = rank;
  const stats: DboStats = { steps: 0, splitSteps: 0 };
  const header = new Int32Array(1);
  try {
    for (;;) {
      await comm.broadcast(header, 0).wait();
      if (header[0] === SHUTDOWN) {
        await comm.barrier().wait();
        return stats;
      }
      const payload = new Int32Array(header[0]!);
      await comm.broadcast(payload, 0).wait();
      await forwardWithDbo(model, cache, comm, decodeForwardBatch(payload), dbo, stats);
    }
  } finally {
    dbo.tracer?.flush();
  }
}
