// The dual-batch-overlap schedule: two micro-batches' forwards take turns on the compute thread, handing
// over at every collective. Micro-batch A computes up to its collective, issues it on the communication
// stream and hands the compute thread to B; B computes while A's data moves, issues its own collective and
// hands back; A resumes once its collective is done and the compute thread is free; and so on, layer after
// layer. The turn-taking makes every rank issue collectives in the same order (A0, B0, A1, B1, ...),
// which the collectives require, whatever the timing.

import type { CollectiveHandle, CommBuffer, Communicator } from '../distributed/communicator.js';
import type { RankGroups } from '../layers/rank-groups.js';
import type { Tracer } from './tracer.js';

/** Who may compute now. A micro-batch that finished no longer takes turns. */
class ComputeBaton {
  private holder: 0 | 1 = 0;
  private readonly finished = [false, false];
  private readonly waiting: (() => void)[] = [];

  /** Resolves when micro-batch `mb` may compute. */
  async acquire(mb: 0 | 1): Promise<void> {
    while (this.holder !== mb && !this.finished[1 - mb]) {
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    }
    this.holder = mb;
  }

  /** Micro-batch `mb` waits on communication: the other one may compute. */
  handOver(mb: 0 | 1): void {
    if (this.holder === mb && !this.finished[1 - mb]) this.holder = (1 - mb) as 0 | 1;
    this.wake();
  }

  finish(mb: 0 | 1): void {
    this.finished[mb] = true;
    this.holder = (1 - mb) as 0 | 1;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiting.splice(0)) w();
  }
}

/** A micro-batch's view of the communicator: every wait hands the compute thread over. */
class MicroBatchCommunicator implements Communicator {
  readonly rank: number;
  readonly worldSize: number;
  private seq = 0;

  constructor(
    private readonly inner: Communicator,
    private readonly baton: ComputeBaton,
    private readonly mb: 0 | 1,
    private readonly tracer: Tracer | null,
  ) {
    this.rank = inner.rank;
    this.worldSize = inner.worldSize;
  }

  private wrap(name: string, issue: () => CollectiveHandle): CollectiveHandle {
    const k = this.seq++;
    this.tracer?.endCompute(this.mb);
    const span = this.tracer?.beginComm(this.mb, `${name} #${k}`);
    const handle = issue();
    let done = false;
    return {
      get isDone() {
        return done || handle.isDone;
      },
      wait: async () => {
        this.baton.handOver(this.mb);
        try {
          await handle.wait();
        } finally {
          span?.end();
          done = true;
        }
        await this.baton.acquire(this.mb);
        this.tracer?.beginCompute(this.mb);
      },
    };
  }

  allReduce(buf: Float32Array): CollectiveHandle {
    return this.wrap('all_reduce', () => this.inner.allReduce(buf));
  }
  allGather<T extends CommBuffer>(out: T, input: T, counts: readonly number[]): CollectiveHandle {
    return this.wrap('all_gather', () => this.inner.allGather(out, input, counts));
  }
  reduceScatter(out: Float32Array, input: Float32Array, counts: readonly number[]): CollectiveHandle {
    return this.wrap('reduce_scatter', () => this.inner.reduceScatter(out, input, counts));
  }
  allToAll<T extends CommBuffer>(
    out: T,
    rc: readonly number[],
    input: T,
    sc: readonly number[],
  ): CollectiveHandle {
    return this.wrap('all_to_all', () => this.inner.allToAll(out, rc, input, sc));
  }
  broadcast<T extends CommBuffer>(buf: T, root: number): CollectiveHandle {
    return this.wrap('broadcast', () => this.inner.broadcast(buf, root));
  }
  barrier(): CollectiveHandle {
    return this.wrap('barrier', () => this.inner.barrier());
  }
  async close(): Promise<void> {}
}

/**
 * Runs two micro-batches' forwards interleaved at their collectives. Each `run` receives the groups it
 * must use for every collective of its forward (both groups hand over alike).
 */
export async function runTwoMicroBatches<T>(
  groups: RankGroups,
  runA: (groups: RankGroups) => Promise<T>,
  runB: (groups: RankGroups) => Promise<T>,
  tracer: Tracer | null = null,
): Promise<[T, T]> {
  const baton = new ComputeBaton();
  const go = async (mb: 0 | 1, run: (g: RankGroups) => Promise<T>): Promise<T> => {
    await baton.acquire(mb);
    tracer?.beginCompute(mb);
    try {
      const tp = new MicroBatchCommunicator(groups.tp, baton, mb, tracer);
      const world =
        groups.world === groups.tp ? tp : new MicroBatchCommunicator(groups.world, baton, mb, tracer);
      return await run({ tp, world });
    } finally {
      tracer?.endCompute(mb);
      baton.finish(mb);
    }
  };
  return Promise.all([go(0, runA), go(1, runB)]);
}
