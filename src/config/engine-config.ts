// The engine's configuration: one readonly interface per concern (model, cache, scheduler, parallel),
// combined into `EngineConfig`. Built once at start-up from CLI flags or the offline API's options and
// validated there (src/config/engine-args.ts).

/** How model weights are loaded. `dummy`: seeded random weights of the config's shapes. */
export type LoadFormat = 'auto' | 'safetensors' | 'dummy';
/** Compute/storage precision. On CPU: `auto` keeps the checkpoint's dtype for weights; compute is float32. */
export type ModelDType = 'auto' | 'float32' | 'bfloat16';

export interface ModelSettings {
  /** Model folder (Hugging Face layout), or null for Duet's embedded default model. */
  readonly model: string | null;
  /** Tokenizer folder (defaults to the model folder). */
  readonly tokenizer: string | null;
  readonly dtype: ModelDType;
  readonly loadFormat: LoadFormat;
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
  /** Compute threads of the CPU kernels (default: every core). */
  readonly numThreads: number | null;
}

export interface EngineConfig {
  readonly model: ModelSettings;
  readonly cache: CacheSettings;
  readonly scheduler: SchedulerSettings;
  readonly parallel: ParallelSettings;
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
    seed: 0,
    hfOverrides: {},
    maxModelLen: null,
    generationConfig: 'auto',
    chatTemplate: null,
    servedModelName: null,
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
  },
  additionalConfig: {},
  passthrough: {},
};

/** An invalid engine setting: names it and what is allowed. */
export class EngineConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineConfigError';
  }
}

/** Checks ranges and combinations; throws `EngineConfigError`. */
export function validateEngineConfig(c: EngineConfig): void {
  const bs = c.cache.blockSize;
  if (!Number.isInteger(bs) || bs < 1 || bs > 256) {
    throw new EngineConfigError(`--block-size must be an integer in 1..256 (16..256 recommended), got ${bs}`);
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
  if (
    c.parallel.tensorParallelSize !== 1 ||
    c.parallel.dataParallelSize !== 1 ||
    c.parallel.enableExpertParallel
  ) {
    throw new EngineConfigError(
      'tensor, data and expert parallelism (--tensor-parallel-size, --data-parallel-size, ' +
        '--enable-expert-parallel) are not yet supported; use 1 rank',
    );
  }
  const nt = c.parallel.numThreads;
  if (nt !== null && (!Number.isInteger(nt) || nt < 1 || nt > 256)) {
    throw new EngineConfigError(`--num-threads must be an integer in 1..256, got ${nt}`);
  }
}
