// The engine's configuration: one readonly interface per concern (model, cache, scheduler, parallel),
// combined into `EngineConfig`, with its one set of defaults. Built once at start-up from CLI flags or the
// offline API's options by `buildEngineConfig` (engine-options.ts) and validated here.

/** How model weights are loaded. `dummy`: seeded random weights of the config's shapes. */
export type LoadFormat = 'auto' | 'safetensors' | 'dummy';
/** How MoE layers communicate with expert parallelism (see `ParallelSettings.moeComm`). */
export type MoeComm = 'allgather' | 'alltoall';
/**
 * Weight and compute precision, as vLLM's `--dtype`: `auto` keeps the checkpoint's dtype for weights;
 * `bfloat16` also computes in bf16 where the platform can (see `computeDTypeFor`).
 */
export type ModelDType = 'auto' | 'float32' | 'bfloat16';

/**
 * The activations' precision into matrix products for `dtype` (the platforms' `KernelOptions.computeDType`):
 * `bfloat16` for `--dtype bfloat16`, float32 for `auto` and `float32` (float32-grade results).
 */
export function computeDTypeFor(dtype: ModelDType): 'float32' | 'bfloat16' {
  return dtype === 'bfloat16' ? 'bfloat16' : 'float32';
}
/** vLLM's `--quantization`: `w8a8` quantizes a float checkpoint's linear weights to int8 while loading. */
export type QuantizationMethod = 'w8a8';
export const QUANTIZATION_METHODS: readonly QuantizationMethod[] = ['w8a8'];

export interface ModelSettings {
  /** Model folder (Hugging Face layout), or null for Duet's embedded default model. */
  readonly model: string | null;
  /** Tokenizer folder (defaults to the model folder). */
  readonly tokenizer: string | null;
  readonly dtype: ModelDType;
  readonly loadFormat: LoadFormat;
  /**
   * Quantize while loading (null: as the checkpoint is; an int8 checkpoint is detected without it). See
   * docs/int8.md for which weights become int8.
   */
  readonly quantization: QuantizationMethod | null;
  /** Seed of dummy weights and of unseeded sampling. */
  readonly seed: number;
  /** Keys merged into config.json before validation (vLLM's --hf-overrides). */
  readonly hfOverrides: Readonly<Record<string, unknown>>;
  /** Longest sequence (prompt + output); null: the model's max_position_embeddings. */
  readonly maxModelLen: number | null;
  /** `auto`: read generation_config.json; `vllm`: ignore it; a folder: read it from there. */
  readonly generationConfig: string;
  /** A chat template (file path or inline Jinja) replacing the tokenizer's. */
  readonly chatTemplate: string | null;
  /** Name served in the API (defaults to the model path). */
  readonly servedModelName: string | null;
  /**
   * `--weight-cache-dir` / DUET_WEIGHT_CACHE_DIR: where a kernel set that lays weights out its own way
   * keeps them prepared, to map them on the next load of the same checkpoint (docs/platforms.md); null: off.
   */
  readonly weightCacheDir: string | null;
}

export interface CacheSettings {
  /** Tokens per KV block. */
  readonly blockSize: number;
  /** Fraction of the memory left after the weights that the KV cache may take. */
  readonly gpuMemoryUtilization: number;
  /** Exact KV cache size in bytes (overrides gpuMemoryUtilization). */
  readonly kvCacheMemory: number | null;
  /** Exact number of KV blocks (overrides both of the above). */
  readonly numGpuBlocksOverride: number | null;
  readonly enablePrefixCaching: boolean;
}

export interface SchedulerSettings {
  readonly maxNumSeqs: number;
  /** Token budget of one step; null: chosen from maxModelLen and chunked prefill. */
  readonly maxNumBatchedTokens: number | null;
  readonly enableChunkedPrefill: boolean;
}

export interface ParallelSettings {
  readonly tensorParallelSize: number;
  readonly dataParallelSize: number;
  readonly enableExpertParallel: boolean;
  readonly distributedExecutorBackend: 'uni' | 'mp' | null;
  /** Compute threads of the CPU kernels over all ranks of this host (default: every core). */
  readonly numThreads: number | null;
  /**
   * MoE communication with expert parallelism (`--additional-config '{"moe_comm": ...}'`): `allgather`
   * (every rank runs its experts on all tokens, partial sums all-reduced) or `alltoall` (tokens dispatched
   * to the ranks holding their experts and combined back). Default: alltoall with expert parallelism.
   */
  readonly moeComm: MoeComm;
  /** --dist-timeout: a peer silent this long (ms) is declared dead. */
  readonly distTimeoutMs: number;
  /** Hosts the ranks (tensor × data parallel) are spread over (--nnodes); ranks split evenly. */
  readonly nnodes: number;
  /** This host's index (--node-rank); node 0 is the head that serves. */
  readonly nodeRank: number;
  /** The head's address and rendezvous port (--master-addr, --master-port). */
  readonly masterAddr: string;
  readonly masterPort: number;
  /** Run only this node's ranks, no API server (--headless; every node but the head). */
  readonly headless: boolean;
  /** Secret a node must know to join (--cluster-secret / DUET_CLUSTER_SECRET). */
  readonly clusterSecret: string | null;
  /**
   * --allow-insecure-cluster (or DUET_ALLOW_INSECURE_CLUSTER=1): start a multi-host group on a
   * non-loopback --master-addr without a cluster secret (anyone who reaches the ports can join).
   */
  readonly allowInsecureCluster: boolean;
}

/** DBO orders of split steps (dbo/dbo-order.ts), `auto` choosing per step. */
export const DBO_ORDER_SETTINGS = ['auto', 'alternate', 'staggered'] as const;
export type DboOrderSetting = (typeof DBO_ORDER_SETTINGS)[number];

/** Dual-batch overlap (DBO): split steps into two micro-batches so communication hides behind compute. */
export interface DboSettings {
  /** --enable-dbo, or VLLM_ASCEND_ENABLE_DBO / VLLM_ENABLE_DBO / DUET_ENABLE_DBO = 1. */
  readonly enabled: boolean;
  /** Steps with a prefill and fewer tokens run as one batch. */
  readonly prefillTokenThreshold: number;
  /** Decode-only steps split only at or above this many tokens. */
  readonly decodeTokenThreshold: number;
  /**
   * --dbo-auto-off (default true): the driver times one-batch and split steps and stops splitting where
   * it does not pay (dbo/dbo-auto.ts), probing now and then.
   */
  readonly autoOff: boolean;
  /** The off-switch's tuning (--additional-config dbo_auto_off_min_gain, ..._max_loss, ..._min_comm_share, ..._probe_interval). */
  readonly autoOffMinGain: number;
  readonly autoOffMaxLoss: number;
  readonly autoOffMinCommShare: number;
  readonly autoOffProbeInterval: number;
  /**
   * The order of split steps (--additional-config dbo_order): `auto` (default: chosen per step from
   * measured stage times), `alternate` or `staggered` (dbo/dbo-order.ts).
   */
  readonly order: DboOrderSetting;
  /** --trace-dir / DUET_TRACE_DIR: write a Chrome / Perfetto trace per rank there. */
  readonly traceDir: string | null;
}

export interface EngineConfig {
  readonly model: ModelSettings;
  readonly cache: CacheSettings;
  readonly scheduler: SchedulerSettings;
  readonly parallel: ParallelSettings;
  readonly dbo: DboSettings;
  /** `--device`: the platform to run on (docs/platforms.md); null: the best available. */
  readonly device: string | null;
  /** `--additional-config`: free-form JSON handed to the platform. */
  readonly additionalConfig: Readonly<Record<string, unknown>>;
  /** Settings accepted for compatibility that the platform may ignore (reported as notices). */
  readonly passthrough: Readonly<Record<string, unknown>>;
}

/** vLLM's defaults (block size as on the Ascend plugin). */
export const DEFAULT_ENGINE_CONFIG: EngineConfig = {
  model: {
    model: null,
    tokenizer: null,
    dtype: 'auto',
    loadFormat: 'auto',
    quantization: null,
    seed: 0,
    hfOverrides: {},
    maxModelLen: null,
    generationConfig: 'auto',
    chatTemplate: null,
    servedModelName: null,
    weightCacheDir: null,
  },
  cache: {
    blockSize: 128,
    gpuMemoryUtilization: 0.9,
    kvCacheMemory: null,
    numGpuBlocksOverride: null,
    enablePrefixCaching: true,
  },
  scheduler: { maxNumSeqs: 256, maxNumBatchedTokens: null, enableChunkedPrefill: true },
  parallel: {
    tensorParallelSize: 1,
    dataParallelSize: 1,
    enableExpertParallel: false,
    distributedExecutorBackend: null,
    numThreads: null,
    moeComm: 'allgather',
    distTimeoutMs: 60_000,
    nnodes: 1,
    nodeRank: 0,
    masterAddr: '127.0.0.1',
    masterPort: 29500,
    headless: false,
    clusterSecret: null,
    allowInsecureCluster: false,
  },
  dbo: {
    enabled: false,
    prefillTokenThreshold: 256,
    decodeTokenThreshold: 32,
    autoOff: true,
    autoOffMinGain: 0.02,
    autoOffMaxLoss: 0.02,
    autoOffMinCommShare: 0.05,
    autoOffProbeInterval: 64,
    order: 'auto',
    traceDir: null,
  },
  device: null,
  additionalConfig: {},
  passthrough: {},
};

/** Token budget of a step when --max-num-batched-tokens is not given (chunked prefill on). */
export const DEFAULT_MAX_NUM_BATCHED_TOKENS = 2048;

/**
 * The token budget of one step: --max-num-batched-tokens, else DEFAULT_MAX_NUM_BATCHED_TOKENS, raised to
 * the longest sequence without chunked prefill (a prompt must then fit one step).
 */
export function maxNumBatchedTokensFor(s: SchedulerSettings, maxModelLen: number): number {
  if (s.maxNumBatchedTokens !== null) return s.maxNumBatchedTokens;
  return s.enableChunkedPrefill
    ? DEFAULT_MAX_NUM_BATCHED_TOKENS
    : Math.max(maxModelLen, DEFAULT_MAX_NUM_BATCHED_TOKENS);
}

/** Allowed --block-size values (tokens per KV block), and the smallest that performs well. */
export const BLOCK_SIZE_LIMITS = { min: 1, max: 256, recommendedMin: 16 } as const;

/** The environment variables that switch DBO on (any of them set to 1 or true). */
export const DBO_ENV_VARS = ['VLLM_ASCEND_ENABLE_DBO', 'VLLM_ENABLE_DBO', 'DUET_ENABLE_DBO'] as const;

/** Whether the environment switches DBO on. */
export function dboEnabledByEnv(env: Readonly<Record<string, string | undefined>> = process.env): boolean {
  return DBO_ENV_VARS.some((k) => env[k] === '1' || env[k]?.toLowerCase() === 'true');
}

/** An invalid engine setting: names it and what is allowed. */
export class EngineConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineConfigError';
  }
}

/** Checks ranges and combinations; throws `EngineConfigError`. */
export function validateEngineConfig(c: EngineConfig): void {
  if (c.device !== null && !/^[a-z][a-z0-9_-]{0,31}$/.test(c.device)) {
    throw new EngineConfigError(
      `--device must be a platform name (lower-case letters, digits, - and _; see \`duet env\`), got ${JSON.stringify(c.device)}`,
    );
  }
  const bs = c.cache.blockSize;
  const { min, max, recommendedMin } = BLOCK_SIZE_LIMITS;
  if (!Number.isInteger(bs) || bs < min || bs > max) {
    throw new EngineConfigError(
      `--block-size must be an integer in ${min}..${max} (${recommendedMin}..${max} recommended), got ${bs}`,
    );
  }
  const u = c.cache.gpuMemoryUtilization;
  if (!(u > 0 && u <= 1)) throw new EngineConfigError(`--gpu-memory-utilization must be in (0, 1], got ${u}`);
  if (c.cache.kvCacheMemory !== null && !(c.cache.kvCacheMemory > 0)) {
    throw new EngineConfigError(
      `--kv-cache-memory must be a positive number of bytes, got ${c.cache.kvCacheMemory}`,
    );
  }
  const nb = c.cache.numGpuBlocksOverride;
  if (nb !== null && (!Number.isInteger(nb) || nb < 1)) {
    throw new EngineConfigError(`--num-gpu-blocks-override must be a positive integer, got ${nb}`);
  }
  if (!Number.isInteger(c.scheduler.maxNumSeqs) || c.scheduler.maxNumSeqs < 1) {
    throw new EngineConfigError(`--max-num-seqs must be a positive integer, got ${c.scheduler.maxNumSeqs}`);
  }
  const mbt = c.scheduler.maxNumBatchedTokens;
  if (mbt !== null && (!Number.isInteger(mbt) || mbt < 1)) {
    throw new EngineConfigError(`--max-num-batched-tokens must be a positive integer, got ${mbt}`);
  }
  const ml = c.model.maxModelLen;
  if (ml !== null && (!Number.isInteger(ml) || ml < 1)) {
    throw new EngineConfigError(`--max-model-len must be a positive integer, got ${ml}`);
  }
  const tp = c.parallel.tensorParallelSize;
  if (!Number.isInteger(tp) || tp < 1 || tp > 64) {
    throw new EngineConfigError(`--tensor-parallel-size must be an integer in 1..64, got ${tp}`);
  }
  const dp = c.parallel.dataParallelSize;
  if (!Number.isInteger(dp) || dp < 1 || dp * tp > 64) {
    throw new EngineConfigError(
      `--data-parallel-size must be a positive integer with --data-parallel-size × --tensor-parallel-size ≤ 64, got ${dp} (× ${tp})`,
    );
  }
  if (c.parallel.distributedExecutorBackend === 'uni' && tp * dp > 1) {
    throw new EngineConfigError(
      '--distributed-executor-backend uni runs one rank; use mp with --tensor-parallel-size or --data-parallel-size > 1',
    );
  }
  const { nnodes, nodeRank } = c.parallel;
  const world = tp * dp;
  if (!Number.isInteger(nnodes) || nnodes < 1 || world % nnodes !== 0) {
    throw new EngineConfigError(
      `--nnodes must be a positive integer dividing the number of ranks (${dp > 1 ? `${dp} × ${tp}` : tp}), got ${nnodes}`,
    );
  }
  if (dp > 1 && nnodes > 1 && (world / nnodes) % tp !== 0) {
    throw new EngineConfigError(
      `each host must hold whole data-parallel replicas: ${world / nnodes} ranks per host is not a multiple of ` +
        `--tensor-parallel-size ${tp}; use --nnodes dividing --data-parallel-size (${dp})`,
    );
  }
  if (!Number.isInteger(nodeRank) || nodeRank < 0 || nodeRank >= nnodes) {
    throw new EngineConfigError(`--node-rank must be an integer in 0..${nnodes - 1}, got ${nodeRank}`);
  }
  if (nnodes > 1 && (nodeRank === 0) === c.parallel.headless) {
    throw new EngineConfigError(
      nodeRank === 0
        ? 'the head node (--node-rank 0) serves; do not pass --headless'
        : `node ${nodeRank} must run with --headless`,
    );
  }
  if (
    nnodes > 1 &&
    c.parallel.clusterSecret === null &&
    !c.parallel.allowInsecureCluster &&
    !isLoopbackHost(c.parallel.masterAddr)
  ) {
    throw new EngineConfigError(
      `--nnodes ${nnodes} on --master-addr ${c.parallel.masterAddr} (not loopback) needs a cluster secret: pass ` +
        '--cluster-secret S or set DUET_CLUSTER_SECRET=S on every node (the environment keeps it out of ps); ' +
        'to run without one on a network you trust, pass --allow-insecure-cluster',
    );
  }
  if (!(c.parallel.distTimeoutMs > 0)) {
    throw new EngineConfigError(
      `--dist-timeout must be a positive number of seconds, got ${c.parallel.distTimeoutMs / 1000}`,
    );
  }
  for (const [flag, v] of [
    ['--dbo-prefill-token-threshold', c.dbo.prefillTokenThreshold],
    ['--dbo-decode-token-threshold', c.dbo.decodeTokenThreshold],
  ] as const) {
    if (!Number.isInteger(v) || v < 1)
      throw new EngineConfigError(`${flag} must be a positive integer, got ${v}`);
  }
  const {
    autoOffMinGain: g,
    autoOffMaxLoss: loss,
    autoOffMinCommShare: cs,
    autoOffProbeInterval: pi,
  } = c.dbo;
  if (!(g >= 0 && g < 1))
    throw new EngineConfigError(`--additional-config dbo_auto_off_min_gain must be in [0, 1), got ${g}`);
  if (!(loss >= 0 && loss < 1))
    throw new EngineConfigError(`--additional-config dbo_auto_off_max_loss must be in [0, 1), got ${loss}`);
  if (!(cs >= 0 && cs < 1))
    throw new EngineConfigError(
      `--additional-config dbo_auto_off_min_comm_share must be in [0, 1), got ${cs}`,
    );
  if (!Number.isInteger(pi) || pi < 1)
    throw new EngineConfigError(
      `--additional-config dbo_auto_off_probe_interval must be a positive integer, got ${pi}`,
    );
  const mc = c.parallel.moeComm;
  if (mc !== 'allgather' && mc !== 'alltoall') {
    throw new EngineConfigError(`moe_comm must be "allgather" or "alltoall", got ${JSON.stringify(mc)}`);
  }
  if (!(DBO_ORDER_SETTINGS as readonly unknown[]).includes(c.dbo.order))
    throw new EngineConfigError(
      `--additional-config dbo_order must be one of ${DBO_ORDER_SETTINGS.join(', ')}, got ${JSON.stringify(c.dbo.order)}`,
    );
  const nt = c.parallel.numThreads;
  if (nt !== null && (!Number.isInteger(nt) || nt < 1 || nt > 256)) {
    throw new EngineConfigError(`--num-threads must be an integer in 1..256, got ${nt}`);
  }
}

/** Whether `host` names the loopback interface (127.0.0.0/8, ::1, localhost): reachable from this host only. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return (
    h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h) || h === '::ffff:127.0.0.1'
  );
}
