// A follower rank (of a tensor-parallel group, or of a data-parallel replica), as a worker thread: builds
// its own kernels, joins its groups, loads its shard of the weights and a KV cache of the driver's size,
// says it is ready, then runs each step's forward that the driver broadcasts, until told to stop.

import { parentPort, workerData } from 'node:worker_threads';
import { computeDTypeFor, type EngineConfig } from '../config/engine-config.js';
import { Tracer } from '../dbo/tracer.js';
import type { GroupDescriptor } from '../distributed/group.js';
import { MlaKvCache } from '../layers/mla-kv-cache.js';
import { loadModel, resolveModel } from '../models/model-loader.js';
import { closeGroups, runFollower } from './executor.js';
import { loadPlatform } from './platform-loader.js';
import { connectRankGroups, planForRank } from './rank-placement.js';

/** What the launcher hands a rank worker. */
export interface RankWorkerData {
  readonly config: EngineConfig;
  /** Global rank. */
  readonly rank: number;
  /** The world group. */
  readonly descriptor: GroupDescriptor;
  /** Each data-parallel replica's tensor-parallel group (data parallelism with tp > 1), else null. */
  readonly replicaGroups: readonly (GroupDescriptor | null)[] | null;
  readonly numBlocks: number;
  readonly numThreads: number;
  /** The platform to load by name (the head's choice); null: this host's best usable one. */
  readonly platform: string | null;
}

/** Messages from a rank worker to its launcher. */
export type RankWorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'done'; readonly steps: number; readonly splitSteps: number }
  | { readonly type: 'error'; readonly message: string };

async function main(data: RankWorkerData): Promise<void> {
  const { config, rank, descriptor } = data;
  // Through the registry, as the engine's thread does: a plugin's platform loads here too.
  const { platform, models } = await loadPlatform(data.platform);
  const kernels = await platform.createKernels({
    numThreads: data.numThreads,
    computeDType: computeDTypeFor(config.model.dtype),
  });
  const { groups } = await connectRankGroups(config, descriptor, data.replicaGroups, rank);
  try {
    const resolved = resolveModel(config.model, models);
    const c = resolved.config;
    const cache = MlaKvCache.forModel(kernels, c, data.numBlocks, config.cache.blockSize);
    const loaded = loadModel(
      resolved,
      kernels,
      {},
      {
        plan: planForRank(config, rank),
        communicator: groups.tp,
        moeCommunicator: groups.world,
        replicateEmbedding: config.dbo.enabled,
      },
    );
    parentPort!.postMessage({ type: 'ready' } satisfies RankWorkerMessage);
    const stats = await runFollower({
      model: loaded.model,
      cache,
      groups,
      dbo: {
        enabled: config.dbo.enabled,
        thresholds: config.dbo,
        tracer: config.dbo.traceDir !== null ? new Tracer(config.dbo.traceDir, rank) : null,
        logger: null,
      },
    });
    parentPort!.postMessage({ type: 'done', ...stats } satisfies RankWorkerMessage);
  } finally {
    await closeGroups(groups);
    await kernels.dispose();
  }
}

main(workerData as RankWorkerData).catch((e: unknown) => {
  parentPort!.postMessage({ type: 'error', message: (e as Error).message } satisfies RankWorkerMessage);
  process.exitCode = 1;
});
