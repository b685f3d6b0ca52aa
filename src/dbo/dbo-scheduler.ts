// The dual-batch-overlap executor: two micro-batches' forwards take turns on the compute thread in a
// given order (dbo-order.ts), handing over at the hand-over points that end their stages.
//
// The operations of a split step, in order (the `alternate` order, allgather mode; `staggered` and the
// alltoall stages are listed in dbo-order.ts and docs/dbo.md):
//   1. the driver decides the split, the order and the split token (dbo-plan.ts) and sends them with the
//      step's batch, so no rank votes and every rank runs the same turns;
//   2. A computes its embedding and layer 0's attention, issues the attention all-reduce, hands over;
//   3. B computes the same, issues its all-reduce, hands over;
//   4. A waits for its all-reduce, computes the MoE (both expert halves, shared experts), issues the MoE
//      all-reduce, hands over; B does the same;
//   5. layer after layer, until A computes the final norm and LM head and issues the logits all-gather,
//      then B; each waits for its logits, which are joined in the original token order.
// A micro-batch resumes only when its collective is done and the order says it is its turn; the order is
// checked against the points the forwards reach (a mismatch is a DboOrderError). Waits are per collective
// (per micro-batch), never a drain of the whole stream.

import type { CollectiveHandle, CommBuffer, Communicator } from '../distributed/communicator.js';
import type { ForwardStage, HandOverPoints, StageEnd } from '../layers/hand-over.js';
import type { RankGroups } from '../layers/rank-groups.js';
import { DboOrderError, type Turn } from './dbo-order.js';
import type { Tracer } from './tracer.js';

const MB_NAMES = ['A', 'B'] as const;

/** Compute time of one stage of one micro-batch, as the executor measured it. */
export interface StageTiming {
  readonly mb: 0 | 1;
  readonly stage: number;
  /** Milliseconds the micro-batch held the compute thread in this stage. */
  readonly computeMs: number;
}

/** Who may compute now: the micro-batch whose turn it is in the order. */
class OrderedBaton {
  private cursor = 0;
  /** The stage each micro-batch is in (the next point it reaches ends it). */
  private readonly stage = [0, 0];
  private readonly since = [0, 0];
  private failed = false;
  private readonly waiting: (() => void)[] = [];
  readonly timings: StageTiming[] = [];
  /** Σ over collectives of the time from issue to the wait that needs them (compute ran meanwhile). */
  overlapMs = 0;

  constructor(
    private readonly stages: readonly ForwardStage[],
    /** The turns to follow; null: no order (one micro-batch). */
    private readonly turns: readonly Turn[] | null,
  ) {}

  /** Resolves when micro-batch `mb` may compute its current stage. */
  async acquire(mb: 0 | 1): Promise<void> {
    while (!this.mayRun(mb)) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.since[mb] = performance.now();
  }

  /** The name of the stage `mb` is in. */
  stageName(mb: 0 | 1): string {
    return this.stages[this.stage[mb]!]?.name ?? 'done';
  }

  /** Micro-batch `mb` reached hand-over point `name`: its stage ends and the next turn begins. */
  reach(mb: 0 | 1, name: string, end: StageEnd): void {
    const k = this.stage[mb]!;
    const want = this.stages[k];
    if (!this.failed && (want?.name !== name || want.end !== end)) {
      this.fail();
      throw new DboOrderError(
        `micro-batch ${MB_NAMES[mb]} reached ${end} "${name}" where its stage list has ${want ? `${want.end} "${want.name}"` : 'no more stages'}`,
      );
    }
    this.timings.push({ mb, stage: k, computeMs: performance.now() - this.since[mb]! });
    this.stage[mb] = k + 1;
    if (this.turns !== null && !this.failed) this.cursor++;
    this.wake();
  }

  /** A micro-batch failed: the other runs freely to its own end or error. */
  fail(): void {
    this.failed = true;
    this.wake();
  }

  private mayRun(mb: 0 | 1): boolean {
    if (this.failed || this.turns === null) return true;
    const t = this.turns[this.cursor];
    return t !== undefined && t.mb === mb && t.stage === this.stage[mb];
  }

  private wake(): void {
    for (const w of this.waiting.splice(0)) w();
  }
}

/** A micro-batch's hand-over points and communicators: every wait ends a stage and hands over. */
class MicroBatchPoints implements HandOverPoints {
  private pending: string | null = null;

  constructor(
    private readonly baton: OrderedBaton,
    private readonly mb: 0 | 1,
    private readonly tracer: Tracer | null,
  ) {}

  collective(name: string): void {
    this.pending = name;
  }

  async pause(name: string): Promise<void> {
    this.handOver(name, 'pause');
    await this.resume();
  }

  /** Wraps a collective of this micro-batch: its wait is the hand-over point named just before. */
  wrap(kind: string, handle: CollectiveHandle): CollectiveHandle {
    const span = this.tracer?.beginComm(this.mb, kind);
    const issued = performance.now();
    let done = false;
    return {
      get isDone() {
        return done || handle.isDone;
      },
      wait: async () => {
        const name = this.pending ?? `${kind} (unnamed)`;
        this.pending = null;
        this.baton.overlapMs += performance.now() - issued;
        this.handOver(name, 'collective');
        try {
          await handle.wait();
        } finally {
          span?.end(name);
          done = true;
        }
        await this.resume();
      },
    };
  }

  private handOver(name: string, end: StageEnd): void {
    this.tracer?.endCompute(this.mb);
    this.baton.reach(this.mb, name, end);
  }

  private async resume(): Promise<void> {
    await this.baton.acquire(this.mb);
    this.tracer?.beginCompute(this.mb, this.baton.stageName(this.mb));
  }
}

/** A micro-batch's view of a communicator: collectives go through its hand-over points. */
class MicroBatchCommunicator implements Communicator {
  readonly rank: number;
  readonly worldSize: number;

  constructor(
    private readonly inner: Communicator,
    private readonly points: MicroBatchPoints,
  ) {
    this.rank = inner.rank;
    this.worldSize = inner.worldSize;
  }

  allReduce(buf: Float32Array): CollectiveHandle {
    return this.points.wrap('all_reduce', this.inner.allReduce(buf));
  }
  allGather<T extends CommBuffer>(out: T, input: T, counts: readonly number[]): CollectiveHandle {
    return this.points.wrap('all_gather', this.inner.allGather(out, input, counts));
  }
  reduceScatter(out: Float32Array, input: Float32Array, counts: readonly number[]): CollectiveHandle {
    return this.points.wrap('reduce_scatter', this.inner.reduceScatter(out, input, counts));
  }
  allToAll<T extends CommBuffer>(
    out: T,
    rc: readonly number[],
    input: T,
    sc: readonly number[],
  ): CollectiveHandle {
    return this.points.wrap('all_to_all', this.inner.allToAll(out, rc, input, sc));
  }
  broadcast<T extends CommBuffer>(buf: T, root: number): CollectiveHandle {
    return this.points.wrap('broadcast', this.inner.broadcast(buf, root));
  }
  barrier(): CollectiveHandle {
    return this.points.wrap('barrier', this.inner.barrier());
  }
  async close(): Promise<void> {}
}

/** What `runMicroBatches` returns: each micro-batch's result and the stage times it measured. */
export interface MicroBatchRun<T> {
  readonly results: T[];
  readonly timings: readonly StageTiming[];
  /** Milliseconds collectives were in flight while the compute thread worked (see OrderedBaton). */
  readonly overlapMs: number;
}

/**
 * Runs one or two micro-batches' forwards with hand-over points. `stages` is the forward's stage list
 * (the same for both); `turns` the order to follow (null with one micro-batch). Each `run` receives the
 * groups to use for every collective of its forward, carrying its hand-over points.
 */
export async function runMicroBatches<T>(
  groups: RankGroups,
  stages: readonly ForwardStage[],
  turns: readonly Turn[] | null,
  runs: readonly ((groups: RankGroups) => Promise<T>)[],
  tracer: Tracer | null = null,
): Promise<MicroBatchRun<T>> {
  const baton = new OrderedBaton(stages, turns);
  const go = async (mb: 0 | 1, run: (g: RankGroups) => Promise<T>): Promise<T> => {
    await baton.acquire(mb);
    tracer?.beginCompute(mb, baton.stageName(mb));
    const points = new MicroBatchPoints(baton, mb, tracer);
    let ok = false;
    try {
      const tp = new MicroBatchCommunicator(groups.tp, points);
      const world = groups.world === groups.tp ? tp : new MicroBatchCommunicator(groups.world, points);
      const result = await run({ tp, world, points });
      ok = true;
      return result;
    } finally {
      tracer?.endCompute(mb);
      if (ok) baton.reach(mb, 'done', 'done');
      else baton.fail();
    }
  };
  const results = await Promise.all(runs.map((run, i) => go(i as 0 | 1, run)));
  return { results, timings: baton.timings, overlapMs: baton.overlapMs };
}
