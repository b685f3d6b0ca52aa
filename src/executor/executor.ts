// Model executors: how the runner's batches reach the model's ranks. The driver (rank 0, in the engine's
// thread) broadcasts each step's batches to the other ranks, which run the same forward on their shards in
// their own threads, processes or hosts; every collective of the forward joins them. With one rank the
// driver simply runs the forward. Dual-batch overlap, when on, applies on every rank alike.
//
// With data parallelism there is one batch per engine replica: every rank runs its replica's batch (an
// empty one when its replica has no work this step, so that the MoE layers' collectives still meet), and
// the first rank of each replica sends its logits back to the driver.

import { TimedCommunicator, WaitClock } from '../dbo/comm-timing.js';
import {
  type DboOptions,
  type DboStats,
  type DboStep,
  forwardWithDbo,
  planDboStep,
} from '../dbo/dbo-forward.js';
import { decodeDboPlan, encodeDboPlan, encodedPlanLength } from '../dbo/dbo-plan.js';
import type { Communicator } from '../distributed/communicator.js';
import type { ForwardBatch } from '../layers/forward-batch.js';
import type { MlaKvCache } from '../layers/mla-kv-cache.js';
import type { RankGroups } from '../layers/rank-groups.js';
import type { CausalLM } from '../models/model-registry.js';
import { decodeReplicaBatches, encodeReplicaBatches } from './batch-codec.js';

/** Runs a step's batches (one per data-parallel replica) on every rank; returns each one's logits rows. */
export interface ModelExecutor {
  /** Engine replicas (data-parallel size): `execute` takes one batch for each. */
  readonly numReplicas: number;
  execute(batches: readonly ForwardBatch[]): Promise<Float32Array[]>;
  /** Statistics of dual-batch overlap. */
  readonly dboStats: DboStats;
  /** Where the driver's step time went (for benchmarks). */
  readonly stepTiming: StepTimingStats;
  /** Stops the other ranks and releases the communicators. */
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

/** One rank's model and cache, its groups, and the DBO settings. */
export interface RankState {
  readonly model: CausalLM;
  readonly cache: MlaKvCache;
  /**
   * `tp`: the replica's tensor-parallel group; `moe`: every rank of every replica (the same group without
   * data parallelism), which also carries the step's batches and the logits back to the driver.
   */
  readonly groups: RankGroups;
  readonly dbo: DboOptions;
}

/** The replica layout a rank's groups imply. */
function replicaLayout(groups: RankGroups): { replicas: number; replica: number; tp: number } {
  const tp = groups.tp.worldSize;
  return { replicas: groups.world.worldSize / tp, replica: Math.floor(groups.world.rank / tp), tp };
}

/**
 * Moves every replica's logits to the driver (rank 0 of the world group): the first rank of each other
 * replica sends, the driver receives; `rows[r]` is replica r's row count. Every rank of the world calls it.
 */
async function gatherReplicaLogits(
  world: Communicator,
  tp: number,
  rows: readonly number[],
  vocabSize: number,
  mine: Float32Array,
): Promise<Float32Array[]> {
  const P = world.worldSize;
  const sendCounts = new Array<number>(P).fill(0);
  const recvCounts = new Array<number>(P).fill(0);
  const leads = (w: number) => w > 0 && w % tp === 0;
  if (world.rank === 0) {
    for (let w = 0; w < P; w++) if (leads(w)) recvCounts[w] = rows[w / tp]! * vocabSize;
  } else if (leads(world.rank)) {
    sendCounts[0] = mine.length;
  }
  const out = new Float32Array(recvCounts.reduce((a, b) => a + b, 0));
  // Communication point: the replicas' logits to the driver.
  await world.allToAll(out, recvCounts, sendCounts[0]! > 0 ? mine : new Float32Array(0), sendCounts).wait();
  if (world.rank !== 0) return [];
  const result = [mine];
  let at = 0;
  for (let r = 1; r < rows.length; r++) {
    const n = rows[r]! * vocabSize;
    result.push(out.subarray(at, at + n));
    at += n;
  }
  return result;
}

/** Rank 0: drives the step loop. */
export class DriverExecutor implements ModelExecutor {
  readonly dboStats: DboStats = { steps: 0, splitSteps: 0, overlapMs: 0 };
  readonly numReplicas: number;
  /** Ranks per replica (its tensor-parallel group). */
  private readonly tpSize: number;
  private closed = false;
  /** The rank's groups, timing the driver's waits on one clock. */
  private readonly groups: RankGroups;
  private numSteps = 0;
  private executeMs = 0;

  constructor(
    private readonly rank: RankState,
    /** Runs after the group is told to stop (e.g. waits for follower threads to exit). */
    private readonly onClose: () => Promise<void> = async () => {},
    /** Where the driver's waits on collectives are summed (DBO's off-switch reads it too). */
    private readonly clock: WaitClock = new WaitClock(),
  ) {
    const { tp, world } = rank.groups;
    const timedTp = new TimedCommunicator(tp, this.clock);
    this.groups = { tp: timedTp, world: world === tp ? timedTp : new TimedCommunicator(world, this.clock) };
    ({ replicas: this.numReplicas, tp: this.tpSize } = replicaLayout(rank.groups));
  }

  get stepTiming(): StepTimingStats {
    return { steps: this.numSteps, executeMs: this.executeMs, commWaitMs: this.clock.stats.waitMs };
  }

  async execute(batches: readonly ForwardBatch[]): Promise<Float32Array[]> {
    const { model, cache, dbo } = this.rank;
    if (batches.length !== this.numReplicas)
      throw new RangeError(`${batches.length} batches for ${this.numReplicas} engine replica(s)`);
    const world = this.groups.world;
    const started = performance.now();
    try {
      // Under DBO the driver plans the step and the plan travels in front of the batches (no vote).
      const step = planDboStep(dbo, batches, world.worldSize);
      if (world.worldSize > 1) {
        const encoded = encodeReplicaBatches(batches);
        const payload = step ? concatWords(encodeDboPlan(step.plan), encoded) : encoded;
        await world.broadcast(Int32Array.of(payload.length), 0).wait();
        await world.broadcast(payload, 0).wait();
      }
      const logits = await forwardWithDbo(model, cache, this.groups, batches[0]!, dbo, this.dboStats, step);
      if (this.numReplicas === 1) return [logits];
      const rows = batches.map((b) => b.logitsIndices.length);
      return await gatherReplicaLogits(world, this.tpSize, rows, model.config.vocabSize, logits);
    } finally {
      this.numSteps++;
      this.executeMs += performance.now() - started;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const world = this.rank.groups.world;
    if (world.worldSize > 1) {
      try {
        await world.broadcast(Int32Array.of(SHUTDOWN), 0).wait();
        // Every rank has seen the stop before anyone closes its connections.
        await world.barrier().wait();
      } catch {
        // A dead group cannot be told to stop; closing is all that is left.
      }
    }
    this.rank.dbo.tracer?.flush();
    await this.onClose();
    await closeGroups(this.rank.groups);
  }
}

/** `a` then `b` in one array. */
function concatWords(a: Int32Array, b: Int32Array): Int32Array {
  const out = new Int32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Closes a rank's communicators (its tensor-parallel group once when it is also the world). */
export async function closeGroups(groups: RankGroups): Promise<void> {
  await groups.world.close();
  if (groups.tp !== groups.world) await groups.tp.close();
}

/**
 * A follower rank's loop: receive each step's batches from the driver and run its replica's forward, until
 * the driver says stop (or the group fails, which rejects).
 */
export async function runFollower(rank: RankState): Promise<DboStats> {
  const { model, cache, groups, dbo } = rank;
  const world = groups.world;
  const { replicas, replica, tp } = replicaLayout(groups);
  const stats: DboStats = { steps: 0, splitSteps: 0, overlapMs: 0 };
  const header = new Int32Array(1);
  try {
    for (;;) {
      await world.broadcast(header, 0).wait();
      if (header[0] === SHUTDOWN) {
        await world.barrier().wait();
        return stats;
      }
      const payload = new Int32Array(header[0]!);
      await world.broadcast(payload, 0).wait();
      // Under DBO the driver's plan comes first (planDboStep): every rank runs it.
      const planWords = dbo.enabled ? encodedPlanLength(replicas) : 0;
      const batches = decodeReplicaBatches(payload.subarray(planWords));
      const step: DboStep | null = dbo.enabled
        ? { plan: decodeDboPlan(payload.subarray(0, planWords), batches), timer: null }
        : null;
      const logits = await forwardWithDbo(model, cache, groups, batches[replica]!, dbo, stats, step, replica);
      if (replicas > 1) {
        const rows = batches.map((b) => b.logitsIndices.length);
        await gatherReplicaLogits(world, tp, rows, model.config.vocabSize, logits);
      }
    }
  } finally {
    dbo.tracer?.flush();
  }
}
