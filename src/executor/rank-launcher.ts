// Starts the follower ranks (of a tensor-parallel group, or of several data-parallel replicas) as worker
// threads of this process (the `mp` executor backend on one host) and joins rank 0 — the engine's own
// thread — to its groups over shared memory. Reports a rank that fails to start or dies later, so the
// engine can fail its requests.

import { SHARE_ENV, Worker } from 'node:worker_threads';
import type { EngineConfig } from '../config/engine-config.js';
import { createSharedMemoryGroup, type GroupDescriptor } from '../distributed/group.js';
import type { ConnectedCommunicator } from '../distributed/stream-communicator.js';
import type { RankGroups } from '../layers/rank-groups.js';
import type { Logger } from '../util/logger.js';
import { connectRankGroups } from './rank-placement.js';
import type { RankWorkerData, RankWorkerMessage } from './rank-worker.js';

/** A rank failed to start or died. */
export class RankFailureError extends Error {
  constructor(
    readonly rank: number,
    message: string,
  ) {
    super(rank >= 0 ? `rank ${rank}: ${message}` : message);
    this.name = 'RankFailureError';
  }
}

export class RankWorkers {
  private readonly exited: Promise<void>[];
  private failureListeners: ((e: RankFailureError) => void)[] = [];
  private closing = false;

  constructor(
    /** Rank 0's world communicator when this process drives; null on a headless node. */
    readonly comm: ConnectedCommunicator | null,
    /** Rank 0's groups when this process drives (the world and its replica's tensor-parallel group). */
    readonly groups: RankGroups | null,
    private readonly workers: readonly Worker[],
    private readonly ranks: readonly number[],
    private readonly ready: Promise<void>,
  ) {
    comm?.onFault((e) => this.fail(new RankFailureError(e.peerRank ?? -1, e.message)));
    this.exited = workers.map((w, i) => {
      const rank = ranks[i]!;
      return new Promise<void>((resolve) => {
        w.on('message', (m: RankWorkerMessage) => {
          if (m.type === 'error') this.fail(new RankFailureError(rank, m.message));
        });
        w.on('error', (e) => this.fail(new RankFailureError(rank, e.message)));
        w.on('exit', (code) => {
          if (!this.closing && code !== 0) this.fail(new RankFailureError(rank, `exited with code ${code}`));
          resolve();
        });
      });
    });
  }

  /** Resolves when every follower has loaded its shard; rejects if one fails first. */
  waitReady(): Promise<void> {
    return this.ready;
  }

  /**
   * Calls `listener` once for the first rank failure after start-up: a local follower thread that died,
   * or (through the driver's communicator) a peer rank anywhere in the group that died or stalled.
   */
  onFailure(listener: (e: RankFailureError) => void): void {
    this.failureListeners.push(listener);
  }

  private fail(e: RankFailureError): void {
    if (this.closing) return;
    for (const l of this.failureListeners.splice(0)) l(e);
  }

  /** Test hook: kills follower `rank` as a crash would. */
  async kill(rank: number): Promise<void> {
    await this.workers[this.ranks.indexOf(rank)]?.terminate();
  }

  /** Resolves when every follower thread has exited (a headless node's lifetime). */
  async waitExit(): Promise<void> {
    await Promise.all(this.exited);
  }

  /** Waits for the followers to stop (after the driver told them to), then terminates stragglers. */
  async close(graceMs = 5000): Promise<void> {
    this.closing = true;
    const timer = new Promise<void>((resolve) => setTimeout(resolve, graceMs).unref());
    await Promise.race([Promise.all(this.exited), timer]);
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Where the ranks run: which group, which of its ranks this process hosts, whether it drives. */
export interface RankLayout {
  /** The world group: every rank. */
  readonly descriptor: GroupDescriptor;
  /** With data parallelism and tp > 1: each replica's tensor-parallel group; null otherwise. */
  readonly replicaGroups: readonly (GroupDescriptor | null)[] | null;
  /** Global ranks this process starts as worker threads (followers). */
  readonly workerRanks: readonly number[];
  /** Whether this process hosts rank 0 (the driver) in its own thread. */
  readonly hostsDriver: boolean;
}

/**
 * One host: `replicas` data-parallel replicas of `tp` tensor-parallel ranks each, as worker threads joined
 * over shared memory.
 */
export function singleHostLayout(tp: number, replicas = 1): RankLayout {
  const size = tp * replicas;
  return {
    descriptor: createSharedMemoryGroup(size),
    replicaGroups:
      replicas > 1 && tp > 1 ? Array.from({ length: replicas }, () => createSharedMemoryGroup(tp)) : null,
    workerRanks: Array.from({ length: size - 1 }, (_, i) => i + 1),
    hostsDriver: true,
  };
}

/**
 * Starts the layout's follower ranks and, when this process hosts it, connects rank 0 (the driver's
 * communicator is `comm`; a headless node has none). `numBlocks` is the KV cache size every rank
 * allocates; `numThreadsPerRank` the compute threads each rank's kernels use.
 */
export async function launchRankWorkers(
  config: EngineConfig,
  numBlocks: number,
  numThreadsPerRank: number,
  log: Logger,
  layout: RankLayout = singleHostLayout(config.parallel.tensorParallelSize, config.parallel.dataParallelSize),
  /** The platform every rank loads by name (default: `--device`, else each rank's best usable one). */
  platform: string | null = config.device,
): Promise<RankWorkers> {
  const { descriptor } = layout;
  const workers: Worker[] = [];
  const readies: Promise<void>[] = [];
  for (const rank of layout.workerRanks) {
    const data: RankWorkerData = {
      config,
      rank,
      descriptor,
      replicaGroups: layout.replicaGroups,
      numBlocks,
      numThreads: numThreadsPerRank,
      platform,
    };
    // SHARE_ENV: a platform's native code loaded in this thread must see what the platform sets in
    // process.env first (the oneDNN platform's OMP_WAIT_POLICY; see engine/async/async-engine.ts).
    const w = new Worker(new URL('./rank-worker.js', import.meta.url), { workerData: data, env: SHARE_ENV });
    workers.push(w);
    readies.push(
      new Promise<void>((resolve, reject) => {
        w.on('message', (m: RankWorkerMessage) => {
          if (m.type === 'ready') resolve();
          if (m.type === 'error') reject(new RankFailureError(rank, m.message));
        });
        w.once('error', (e) => reject(new RankFailureError(rank, e.message)));
        w.once('exit', (code) =>
          reject(new RankFailureError(rank, `exited with code ${code} before it was ready`)),
        );
      }),
    );
  }
  log.info(
    `started rank(s) ${layout.workerRanks.join(', ') || '(none)'} as worker threads; joining the ${descriptor.kind} group of ${descriptor.worldSize}`,
  );
  let driver: Awaited<ReturnType<typeof connectRankGroups>> | null = null;
  if (layout.hostsDriver) {
    try {
      driver = await connectRankGroups(config, descriptor, layout.replicaGroups, 0);
    } catch (e) {
      await Promise.all(workers.map((w) => w.terminate()));
      throw e;
    }
  }
  const ready = Promise.all(readies).then(() => undefined);
  ready.catch(() => {});
  return new RankWorkers(driver?.world ?? null, driver?.groups ?? null, workers, layout.workerRanks, ready);
}
