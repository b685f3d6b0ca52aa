// A follower rank of a tensor-parallel group, as a worker thread: builds its own kernels, joins the
// group, loads its shard of the weights and a KV cache of the driver's size, says it is ready, then runs
// each step's forward that the driver broadcasts, until told to stop.

import { parentPort, workerData } from 'node:worker_threads';
import type { EngineConfig } from '../config/engine-config.js';
import { connectCommunicator } from '../distributed/connect.js';
import type { GroupDescriptor } from '../distributed/group.js';
import { MlaKvCache } from '../models/mla-kv-cache.js';
import { loadModel, resolveModel } from '../models/model-loader.js';
import { CpuPlatform } from '../platforms/cpu/cpu-platform.js';
import { enableWasmFeatures } from '../platforms/cpu/wasm-features.js';
import { runFollower } from './executor.js';
import { Tracer } from './tracer.js';

/** What the launcher hands a rank worker. */
export interface RankWorkerData {
  readonly config: EngineConfig;
  readonly rank: number;
  readonly descriptor: GroupDescriptor;
  readonly numBlocks: number;
  readonly numThreads: number;
}

/** Messages from a rank worker to its launcher. */
export type RankWorkerMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'done'; readonly steps: number; readonly splitSteps: number }
  | { readonly type: 'error'; readonly message: string };

async function main(data: RankWorkerData): Promise<void> {
  enableWasmFeatures();
  const { config, rank, descriptor } = data;
  const kernels = await new CpuPlatform().createKernels({ numThreads: data.numThreads });
  const comm = await connectCommunicator(descriptor, rank, { timeoutMs: config.parallel.distTimeoutMs });
  try {
    const resolved = resolveModel(config.model);
    const c = resolved.config;
    const cache = new MlaKvCache(
      kernels,
      c.numHiddenLayers,
      data.numBlocks,
      config.cache.blockSize,
      c.kvLoraRank,
      c.qkRopeHeadDim,
    );
    const plan = {
      rank,
      size: descriptor.worldSize,
      expertParallel: config.parallel.enableExpertParallel,
      moeComm: config.parallel.moeComm,
    };
    const loaded = loadModel(resolved, kernels, {}, { plan, communicator: comm });
    parentPort!.postMessage({ type: 'ready' } satisfies RankWorkerMessage);
    const stats = await runFollower({
      model: loaded.model,
      cache,
      comm,
      dbo: {
        enabled: config.dbo.enabled,
        thresholds: config.dbo,
        tracer: config.dbo.traceDir !== null ? new Tracer(config.dbo.traceDir, rank) : null,
        logger: null,
      },
    });
    parentPort!.postMessage({ type: 'done', ...stats } satisfies RankWorkerMessage);
  } finally {
    await comm.close();
    await kernels.dispose();
  }
}

main(workerData as RankWorkerData).catch((e: unknown) => {
  parentPort!.postMessage({ type: 'error', message: (e as Error).message } satisfies RankWorkerMessage);
  process.exitCode = 1;
});
