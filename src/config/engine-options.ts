// The one engine-config builder: `EngineOptions` holds every engine setting as an optional flat field
// (the camelCase of `duet serve`'s flags, which is also how `new LLM({...})` spells them), and
// `buildEngineConfig` fills what is missing from DEFAULT_ENGINE_CONFIG (and the environment variables
// the flags document), then validates. The CLI (cli/engine-args.ts) and the offline `LLM` both call it.

import {
  type DboOrderSetting,
  DEFAULT_ENGINE_CONFIG,
  dboEnabledByEnv,
  type EngineConfig,
  EngineConfigError,
  type LoadFormat,
  type ModelDType,
  type MoeComm,
  type QuantizationMethod,
  validateEngineConfig,
} from './engine-config.js';

/** Every engine setting, optional; names as commander gives `duet serve`'s flags. */
export interface EngineOptions {
  /** Model folder; omitted: the embedded default model. */
  readonly model?: string;
  readonly tokenizer?: string;
  readonly dtype?: ModelDType;
  readonly loadFormat?: LoadFormat;
  /** `'w8a8'`: int8 weights and activations, quantized while loading (docs/int8.md). */
  readonly quantization?: QuantizationMethod;
  readonly seed?: number;
  readonly hfOverrides?: Readonly<Record<string, unknown>>;
  readonly maxModelLen?: number;
  readonly generationConfig?: string;
  readonly chatTemplate?: string;
  readonly servedModelName?: string;
  /** Keep prepared weights in this folder for fast reloads (default: DUET_WEIGHT_CACHE_DIR; none). */
  readonly weightCacheDir?: string;
  readonly blockSize?: number;
  readonly gpuMemoryUtilization?: number;
  readonly kvCacheMemory?: number;
  readonly numGpuBlocksOverride?: number;
  readonly enablePrefixCaching?: boolean;
  readonly enableChunkedPrefill?: boolean;
  readonly maxNumSeqs?: number;
  readonly maxNumBatchedTokens?: number;
  /** Tensor-parallel ranks (worker threads of this process, or spread over --nnodes hosts). */
  readonly tensorParallelSize?: number;
  /** Data-parallel engine replicas sharing the MoE layers (each with tensorParallelSize ranks). */
  readonly dataParallelSize?: number;
  readonly enableExpertParallel?: boolean;
  readonly distributedExecutorBackend?: 'uni' | 'mp';
  readonly numThreads?: number;
  /** MoE communication; also `additionalConfig.moe_comm`. Default: alltoall with expert parallelism. */
  readonly moeComm?: MoeComm;
  /** Seconds a silent peer rank is given before it is declared dead. */
  readonly distTimeout?: number;
  readonly nnodes?: number;
  readonly nodeRank?: number;
  readonly masterAddr?: string;
  readonly masterPort?: number;
  readonly headless?: boolean;
  /** Default: DUET_CLUSTER_SECRET. */
  readonly clusterSecret?: string;
  /** Default: DUET_ALLOW_INSECURE_CLUSTER=1. */
  readonly allowInsecureCluster?: boolean;
  /** Dual-batch overlap (default: from VLLM_ASCEND_ENABLE_DBO / VLLM_ENABLE_DBO / DUET_ENABLE_DBO). */
  readonly enableDbo?: boolean;
  /** DBO: steps with a prefill and fewer tokens run as one batch. */
  readonly dboPrefillTokenThreshold?: number;
  /** DBO: decode-only steps split only at or above this many tokens. */
  readonly dboDecodeTokenThreshold?: number;
  /** DBO: stop splitting steps where it does not pay (dbo/dbo-auto.ts). */
  readonly dboAutoOff?: boolean;
  /** DBO: the order of split steps (default `auto`; dbo/dbo-order.ts); also additional-config dbo_order. */
  readonly dboOrder?: DboOrderSetting;
  /** Write a Chrome trace per rank here (default: DUET_TRACE_DIR). */
  readonly traceDir?: string;
  /** Free-form JSON for the platform: moe_comm, the DBO thresholds and the off-switch's tuning. */
  readonly additionalConfig?: Readonly<Record<string, unknown>>;
  /** The platform to run on (`duet env` lists them); default: the best available, the CPU platform last. */
  readonly device?: string;
  /** Accepted for compatibility (reported as notices). */
  readonly compilationConfig?: unknown;
  readonly trustRemoteCode?: unknown;
}

/** Builds and validates the engine config: each setting from `o`, else its one default. */
export function buildEngineConfig(
  o: EngineOptions,
  env: Readonly<Record<string, string | undefined>> = process.env,
): EngineConfig {
  const d = DEFAULT_ENGINE_CONFIG;
  const extra = o.additionalConfig ?? d.additionalConfig;
  const config: EngineConfig = {
    model: {
      model: o.model ?? d.model.model,
      tokenizer: o.tokenizer ?? d.model.tokenizer,
      dtype: o.dtype ?? d.model.dtype,
      loadFormat: o.loadFormat ?? d.model.loadFormat,
      quantization: o.quantization ?? d.model.quantization,
      seed: o.seed ?? d.model.seed,
      hfOverrides: o.hfOverrides ?? d.model.hfOverrides,
      maxModelLen: o.maxModelLen ?? d.model.maxModelLen,
      generationConfig: o.generationConfig ?? d.model.generationConfig,
      chatTemplate: o.chatTemplate ?? d.model.chatTemplate,
      servedModelName: o.servedModelName ?? d.model.servedModelName,
      weightCacheDir: o.weightCacheDir ?? env.DUET_WEIGHT_CACHE_DIR ?? d.model.weightCacheDir,
    },
    cache: {
      blockSize: o.blockSize ?? d.cache.blockSize,
      gpuMemoryUtilization: o.gpuMemoryUtilization ?? d.cache.gpuMemoryUtilization,
      kvCacheMemory: o.kvCacheMemory ?? d.cache.kvCacheMemory,
      numGpuBlocksOverride: o.numGpuBlocksOverride ?? d.cache.numGpuBlocksOverride,
      enablePrefixCaching: o.enablePrefixCaching ?? d.cache.enablePrefixCaching,
    },
    scheduler: {
      maxNumSeqs: o.maxNumSeqs ?? d.scheduler.maxNumSeqs,
      maxNumBatchedTokens: o.maxNumBatchedTokens ?? d.scheduler.maxNumBatchedTokens,
      enableChunkedPrefill: o.enableChunkedPrefill ?? d.scheduler.enableChunkedPrefill,
    },
    parallel: {
      tensorParallelSize: o.tensorParallelSize ?? d.parallel.tensorParallelSize,
      dataParallelSize: o.dataParallelSize ?? d.parallel.dataParallelSize,
      enableExpertParallel: o.enableExpertParallel ?? d.parallel.enableExpertParallel,
      distributedExecutorBackend: o.distributedExecutorBackend ?? d.parallel.distributedExecutorBackend,
      numThreads: o.numThreads ?? d.parallel.numThreads,
      moeComm: o.moeComm ?? moeCommFrom(extra, o.enableExpertParallel ?? d.parallel.enableExpertParallel),
      distTimeoutMs: o.distTimeout !== undefined ? o.distTimeout * 1000 : d.parallel.distTimeoutMs,
      nnodes: o.nnodes ?? d.parallel.nnodes,
      nodeRank: o.nodeRank ?? d.parallel.nodeRank,
      masterAddr: o.masterAddr ?? d.parallel.masterAddr,
      masterPort: o.masterPort ?? d.parallel.masterPort,
      headless: o.headless ?? d.parallel.headless,
      clusterSecret: (o.clusterSecret ?? env.DUET_CLUSTER_SECRET) || d.parallel.clusterSecret,
      allowInsecureCluster:
        o.allowInsecureCluster ??
        (env.DUET_ALLOW_INSECURE_CLUSTER === '1' || d.parallel.allowInsecureCluster),
    },
    dbo: {
      enabled: o.enableDbo ?? (dboEnabledByEnv(env) || d.dbo.enabled),
      prefillTokenThreshold:
        o.dboPrefillTokenThreshold ??
        intFrom(extra, 'dbo_prefill_token_threshold') ??
        d.dbo.prefillTokenThreshold,
      decodeTokenThreshold:
        o.dboDecodeTokenThreshold ??
        intFrom(extra, 'dbo_decode_token_threshold') ??
        d.dbo.decodeTokenThreshold,
      autoOff: o.dboAutoOff ?? boolFrom(extra, 'dbo_auto_off') ?? d.dbo.autoOff,
      autoOffMinGain: numberFrom(extra, 'dbo_auto_off_min_gain') ?? d.dbo.autoOffMinGain,
      autoOffMaxLoss: numberFrom(extra, 'dbo_auto_off_max_loss') ?? d.dbo.autoOffMaxLoss,
      autoOffMinCommShare: numberFrom(extra, 'dbo_auto_off_min_comm_share') ?? d.dbo.autoOffMinCommShare,
      autoOffProbeInterval: intFrom(extra, 'dbo_auto_off_probe_interval') ?? d.dbo.autoOffProbeInterval,
      order: o.dboOrder ?? (extra.dbo_order as DboOrderSetting | undefined) ?? d.dbo.order,
      traceDir: o.traceDir ?? env.DUET_TRACE_DIR ?? d.dbo.traceDir,
    },
    device: o.device ?? d.device,
    additionalConfig: extra,
    passthrough: {
      ...(o.compilationConfig !== undefined ? { compilationConfig: o.compilationConfig } : {}),
      ...(o.trustRemoteCode !== undefined ? { trustRemoteCode: o.trustRemoteCode } : {}),
    },
  };
  validateEngineConfig(config);
  return config;
}

/** `moe_comm` of --additional-config: allgather or alltoall; alltoall by default with expert parallelism. */
export function moeCommFrom(extra: Readonly<Record<string, unknown>>, expertParallel: boolean): MoeComm {
  const v = extra.moe_comm;
  if (v === undefined) return expertParallel ? 'alltoall' : 'allgather';
  if (v !== 'allgather' && v !== 'alltoall') {
    throw new EngineConfigError(
      `--additional-config moe_comm must be "allgather" or "alltoall", got ${JSON.stringify(v)}`,
    );
  }
  return v;
}

/** `key` of --additional-config when present, checked by `is` (else an error saying it must be `what`). */
function valueFrom<T>(
  extra: Readonly<Record<string, unknown>>,
  key: string,
  is: (v: unknown) => v is T,
  what: string,
): T | undefined {
  const v = extra[key];
  if (v === undefined) return undefined;
  if (!is(v))
    throw new EngineConfigError(`--additional-config ${key} must be ${what}, got ${JSON.stringify(v)}`);
  return v;
}

const intFrom = (extra: Readonly<Record<string, unknown>>, key: string) =>
  valueFrom(extra, key, (v): v is number => typeof v === 'number' && Number.isInteger(v), 'an integer');
const numberFrom = (extra: Readonly<Record<string, unknown>>, key: string) =>
  valueFrom(extra, key, (v): v is number => typeof v === 'number' && Number.isFinite(v), 'a number');
const boolFrom = (extra: Readonly<Record<string, unknown>>, key: string) =>
  valueFrom(extra, key, (v): v is boolean => typeof v === 'boolean', 'true or false');
