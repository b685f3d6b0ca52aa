// Builds a ready engine from an EngineConfig: platform kernels, model and tokenizer, KV cache sized
// from memory, scheduler and batch builder. Logs each stage and the resulting capacity.

import os from 'node:os';
import {
  computeDTypeFor,
  type DboSettings,
  type EngineConfig,
  maxNumBatchedTokensFor,
} from '../config/engine-config.js';
import { Scheduler } from '../core/scheduler.js';
import { WaitClock } from '../dbo/comm-timing.js';
import { dboAutoPolicyFor } from '../dbo/dbo-auto.js';
import { DboPlanner } from '../dbo/dbo-plan.js';
import { Tracer } from '../dbo/tracer.js';
import { SingleRankCommunicator } from '../distributed/communicator.js';
import { BatchBuilder } from '../executor/batch-builder.js';
import { closeGroups, DriverExecutor } from '../executor/executor.js';
import { headRankLayout, modelSummary } from '../executor/multi-node.js';
import { loadPlatform, modelRegistryFrom } from '../executor/platform-loader.js';
import { launchRankWorkers, type RankWorkers, singleHostLayout } from '../executor/rank-launcher.js';
import { planForRank } from '../executor/rank-placement.js';
import { MlaKvCache } from '../layers/mla-kv-cache.js';
import { singleGroup } from '../layers/rank-groups.js';
import { checkSharding } from '../models/deepseek.js';
import { loadModel, resolveModel } from '../models/model-loader.js';
import type { Platform } from '../platforms/platform.js';
import { type Logger, silentLogger } from '../util/logger.js';
import { sizeKvCache } from './kv-cache-sizing.js';
import { LLMEngine } from './llm-engine.js';

export interface CreateEngineOptions {
  /** A platform object to run on instead of the one `config.device` names (tests). */
  readonly platform?: Platform;
  readonly logger?: Logger;
}

export async function createEngine(config: EngineConfig, opts: CreateEngineOptions = {}): Promise<LLMEngine> {
  const log = opts.logger ?? silentLogger;
  const { platform, models } = opts.platform
    ? { platform: opts.platform, models: await modelRegistryFrom(undefined, log) }
    : await loadPlatform(config.device, log);
  if (opts.platform) platform.prepareThread();
  for (const n of platform.checkConfig(config.passthrough)) log.info(`notice: ${n.message}`);
  log.info(`device: ${platform.deviceName}`);

  const tp = config.parallel.tensorParallelSize;
  const dp = config.parallel.dataParallelSize;
  const worldSize = tp * dp;
  // The host's compute threads are shared among its ranks.
  const numThreads = config.parallel.numThreads ?? os.availableParallelism();
  const numThreadsPerRank = Math.max(1, Math.floor(numThreads / (worldSize / config.parallel.nnodes)));
  log.info('building kernels');
  const kernels = await platform.createKernels({
    numThreads: numThreadsPerRank,
    computeDType: computeDTypeFor(config.model.dtype),
  });
  log.info(`kernels: ${kernels.name}`);
  let ranks: RankWorkers | null = null;
  try {
    // The KV cache is sized and allocated before the weights load, so that it gets room in the kernels'
    // primary memory (the weights spread over as many memories as they need).
    const resolved = resolveModel(config.model, models);
    const c = resolved.config;
    const maxModelLen = resolved.maxModelLen;
    const bs = config.cache.blockSize;
    const bytesPerBlock = MlaKvCache.bytesPerToken(c.numHiddenLayers, c.kvLoraRank, c.qkRopeHeadDim) * bs;
    const sizing = sizeKvCache(
      config.cache,
      bytesPerBlock,
      platform.totalMemoryBytes(),
      process.memoryUsage().rss + resolved.weightBytes,
      worldSize / config.parallel.nnodes,
    );
    const cache = MlaKvCache.forModel(kernels, c, sizing.numBlocks, bs);
    log.info(
      `KV cache: ${sizing.numBlocks} blocks of ${bs} tokens (${(sizing.bytes / 2 ** 20).toFixed(1)} MiB, ${sizing.reason}); ` +
        `maximum concurrency for ${maxModelLen} tokens per request: ${((sizing.numBlocks * bs) / maxModelLen).toFixed(2)}x`,
    );

    if (worldSize > 1) {
      // A shape that cannot be split fails here, in one line, before any rank thread starts.
      checkSharding(c, planForRank(config, 0));
      const layout =
        config.parallel.nnodes > 1
          ? await headRankLayout(config, modelSummary(config, resolved), sizing.numBlocks, log)
          : singleHostLayout(tp, dp);
      ranks = await launchRankWorkers(
        config,
        sizing.numBlocks,
        numThreadsPerRank,
        log,
        layout,
        platform.name,
      );
    }
    const groups = ranks?.groups ?? singleGroup(new SingleRankCommunicator());

    const started = performance.now();
    const loaded = loadModel(
      resolved,
      kernels,
      {
        onStage: (s) => log.info(s),
        onLayerLoaded: (i, n) => log.debug(`loaded layer ${i + 1}/${n}`),
        onNotice: (n) => (n.level === 'warn' ? log.warn(n.message) : log.info(n.message)),
      },
      {
        plan: planForRank(config, 0),
        communicator: groups.tp,
        moeCommunicator: groups.world,
        replicateEmbedding: config.dbo.enabled,
      },
    );
    if (ranks) {
      await ranks.waitReady();
      log.info(
        `${dp > 1 ? `${dp} data-parallel replicas of ` : ''}${tp} tensor-parallel rank(s) ready ` +
          `(${numThreadsPerRank} compute thread(s) each` +
          `${config.parallel.enableExpertParallel ? `, expert parallel over ${worldSize} ranks, moe_comm ${config.parallel.moeComm}` : ''})`,
      );
    }
    log.info(
      `model ${loaded.isEmbedded ? 'embedded default (DeepSeek-V3 architecture, toy size)' : loaded.dir}: ` +
        `${c.architecture}, ${c.numHiddenLayers} layers, weights ${loaded.isInt8 ? `w8a8 (int8 linears, ${loaded.weightDType} others)` : loaded.weightDType} ` +
        `${(loaded.weightBytes / 2 ** 30).toFixed(2)} GiB, loaded in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    if (loaded.isDummy) log.warn('the weights are random (dummy): outputs are meaningless text');

    const maxNumBatchedTokens = maxNumBatchedTokensFor(config.scheduler, maxModelLen);
    // One scheduler per data-parallel replica, each over its own KV cache (on its own ranks).
    const replicas = Array.from({ length: dp }, () => ({
      scheduler: new Scheduler({
        maxNumSeqs: config.scheduler.maxNumSeqs,
        maxNumBatchedTokens,
        maxModelLen,
        blockSize: bs,
        numBlocks: sizing.numBlocks,
        enableChunkedPrefill: config.scheduler.enableChunkedPrefill,
        enablePrefixCaching: config.cache.enablePrefixCaching,
      }),
      batches: new BatchBuilder(c.vocabSize, bs),
    }));
    if (config.dbo.enabled && worldSize === 1) {
      log.info('notice: dual-batch overlap has nothing to overlap with one rank; it is off');
    } else if (config.dbo.enabled) {
      // Each rank holds the whole embedding instead of its 1/tp share of it.
      const tp = config.parallel.tensorParallelSize;
      const tableBytes = c.vocabSize * c.hiddenSize * (resolved.weightDType === 'bf16' ? 2 : 4);
      log.info(dboStartupLine(config.dbo, (tableBytes * (tp - 1)) / tp));
    }
    const waits = new WaitClock();
    const auto = config.dbo.autoOff ? { policy: dboAutoPolicyFor(config.dbo), waits } : null;
    const executor = new DriverExecutor(
      {
        model: loaded.model,
        cache,
        groups,
        dbo: {
          enabled: config.dbo.enabled,
          thresholds: config.dbo,
          tracer: config.dbo.traceDir !== null ? new Tracer(config.dbo.traceDir, 0) : null,
          logger: log,
          auto,
          planner: new DboPlanner(config.dbo, config.dbo.order, auto),
        },
      },
      async () => {
        await ranks?.close();
      },
      waits,
    );
    const engine = new LLMEngine({
      loaded,
      kernels,
      replicas,
      executor,
      maxModelLen,
      seed: config.model.seed,
      rankWorkers: ranks,
    });
    ranks?.onFailure((e) => engine.markDead(e.message));
    return engine;
  } catch (e) {
    if (ranks) {
      if (ranks.groups) await closeGroups(ranks.groups).catch(() => {});
      // A moment for followers to end on their own (most fail the same way) before the rest are
      // terminated: terminating a thread in the middle of loading native code or WebAssembly is the
      // riskiest moment to do it.
      await ranks.close(2000);
    }
    await kernels.dispose();
    throw e;
  }
}

/** The start-up line with DBO on: its settings, what it costs, and how to turn it (or its parts) off. */
export function dboStartupLine(dbo: DboSettings, embeddingBytes: number): string {
  return (
    `dual-batch overlap on: split steps of >= ${dbo.prefillTokenThreshold} tokens with a prefill, ` +
    `>= ${dbo.decodeTokenThreshold} decode-only; order ${dbo.order}; automatic off-switch ${dbo.autoOff ? 'on' : 'off'}; ` +
    `embedding replicated on every rank (+${(embeddingBytes / 2 ** 20).toFixed(1)} MiB a rank, no embedding all-reduce). ` +
    'Off: drop --enable-dbo (or the DBO environment variable); keep one batch where it does not pay: --dbo-auto-off true; ' +
    `thresholds: --dbo-prefill-token-threshold / --dbo-decode-token-threshold; order: --additional-config '{"dbo_order": "alternate"}'`
  );
}
