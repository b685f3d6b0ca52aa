// Loads what the engine serves: a Hugging Face model folder (or Duet's embedded default model) into a
// validated config, a DeepSeek model on the given kernels, its tokenizer and its generation defaults.

import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModelSettings } from '../config/engine-config.js';
import { EngineConfigError } from '../config/engine-config.js';
import type { DeepseekConfig } from '../config/model-config.js';
import type { Communicator } from '../distributed/communicator.js';
import type { Kernels, WeightDType } from '../kernels/kernels.js';
import {
  canCacheWeights,
  type PreparedWeightCache,
  type WeightCacheNotice,
} from '../kernels/weight-cache.js';
import type { ParallelPlan } from '../layers/parallel-plan.js';
import type { GenerationDefaults } from '../loader/generation-config.js';
import { loadGenerationDefaults } from '../loader/generation-config.js';
import { loadDeepseekConfig } from '../loader/hf-config.js';
import { openModelWeights, resolveModelFolder } from '../loader/model-folder.js';
import { MODELSLIM_DESCRIPTION_FILE } from '../loader/w8a8/checkpoint-format.js';
import { weightCacheKey } from '../loader/weight-cache-key.js';
import {
  deepseekV3TokenizerFiles,
  loadTokenizer,
  loadTokenizerFromFiles,
  type Tokenizer,
} from '../tokenizer/tokenizer.js';
import {
  deepseekCheckpointLayout,
  deepseekLinearRole,
  deepseekTensorSpecs,
  numElements,
  numParameters,
} from './deepseek-weights.js';
import { type CausalLM, type ModelArchitecture, ModelRegistry } from './model-registry.js';

/** The embedded default model's folder: a small trained model with its own tokenizer (tools/speaking-model). */
export function embeddedModelDir(): string {
  // Compiled to dist/src/models/: the assets folder sits at the package root.
  return join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'assets', 'default-model');
}

export interface LoadedModel {
  readonly model: CausalLM;
  readonly config: DeepseekConfig;
  readonly tokenizer: Tokenizer;
  /** From generation_config.json (null with `--generation-config vllm` or when absent). */
  readonly generationDefaults: GenerationDefaults | null;
  /** The model folder, or the embedded model's. */
  readonly dir: string;
  readonly isEmbedded: boolean;
  /** Whether the weights are seeded random ones. */
  readonly isDummy: boolean;
  /** Bytes the linear weights occupy as stored. */
  readonly weightBytes: number;
  readonly weightDType: WeightDType;
  /** Whether the linear weights are int8 (W8A8; the other weights keep weightDType). */
  readonly isInt8: boolean;
  /** The context length the engine allows. */
  readonly maxModelLen: number;
}

export interface LoadProgress {
  onStage?(stage: string): void;
  onLayerLoaded?(layer: number, numLayers: number): void;
  /** What the prepared-weight cache did (`--weight-cache-dir`), or why it could not. */
  onNotice?(notice: WeightCacheNotice): void;
}

/** Storage dtype of linear weights for `--dtype` on CPU: `auto` keeps a BF16 checkpoint's bf16. */
export function weightDTypeFor(dtype: ModelSettings['dtype'], config: DeepseekConfig): WeightDType {
  if (dtype === 'float32') return 'f32';
  if (dtype === 'bfloat16') return 'bf16';
  return config.torchDtype === 'float32' ? 'f32' : 'bf16';
}

/** A model resolved from the settings, before any weight is read. */
export interface ResolvedModel {
  readonly settings: ModelSettings;
  readonly dir: string;
  readonly isEmbedded: boolean;
  readonly config: DeepseekConfig;
  /** The registered architecture that builds the model. */
  readonly architecture: ModelArchitecture;
  readonly maxModelLen: number;
  readonly weightDType: WeightDType;
  /** Whether the linear weights are int8 (W8A8; the other weights keep weightDType). */
  readonly isInt8: boolean;
  /** Bytes the weights will occupy as stored. */
  readonly weightBytes: number;
}

/**
 * Finds the model folder and validates its config (and --max-model-len); reads no weights. The
 * architecture comes from `registry` (plugins may have registered theirs); an architecture of a plugin
 * reads its config.json as the built-in one it names as its `configFormat`.
 */
export function resolveModel(
  settings: ModelSettings,
  registry: ModelRegistry = new ModelRegistry(),
): ResolvedModel {
  const isEmbedded = settings.model === null;
  const dir = isEmbedded ? embeddedModelDir() : resolveModelFolder(settings.model!).dir;
  const registered = registry.forModelFolder(dir, settings.hfOverrides);
  const architecture = registered ?? registry.get('DeepseekV3ForCausalLM')!;
  const config = loadDeepseekConfig(dir, {
    ...settings.hfOverrides,
    ...(registered && registered.architecture !== registered.configFormat
      ? { architectures: [registered.configFormat] }
      : {}),
  });
  const maxModelLen = settings.maxModelLen ?? config.maxPositionEmbeddings;
  if (maxModelLen > config.maxPositionEmbeddings) {
    throw new EngineConfigError(
      `--max-model-len ${maxModelLen} exceeds the model's max_position_embeddings (${config.maxPositionEmbeddings})`,
    );
  }
  const weightDType = weightDTypeFor(settings.dtype, config);
  // Int8 linear weights: quantized while loading, or an int8 checkpoint (checked when its weights open).
  const int8 =
    settings.quantization === 'w8a8' ||
    (settings.loadFormat !== 'dummy' &&
      (config.quantization?.method === 'compressed-tensors' ||
        existsSync(join(dir, MODELSLIM_DESCRIPTION_FILE))));
  const weightBytes = storedWeightBytes(config, weightDType, int8);
  return {
    settings,
    dir,
    isEmbedded,
    config,
    architecture,
    maxModelLen,
    weightDType,
    isInt8: int8,
    weightBytes,
  };
}

/**
 * Bytes the weights take once loaded: float tensors in `weightDType`, and with W8A8 one byte per element
 * of each int8 linear weight (`deepseekLinearRole`; the per-channel scales are negligible).
 */
export function storedWeightBytes(config: DeepseekConfig, weightDType: WeightDType, int8: boolean): number {
  const floatBytes = weightDType === 'bf16' ? 2 : 4;
  if (!int8) return numParameters(config) * floatBytes;
  let bytes = 0;
  for (const s of deepseekTensorSpecs(config)) {
    bytes += numElements(s.shape) * (deepseekLinearRole(s.name) === 'int8' ? 1 : floatBytes);
  }
  return bytes;
}

/** A rank's place in its groups, for loading its shard. */
export interface RankPlacement {
  readonly plan: ParallelPlan;
  /** The tensor-parallel group. */
  readonly communicator: Communicator;
  /** With data parallelism: every replica's ranks (the MoE layers' group). */
  readonly moeCommunicator?: Communicator;
  /** Every rank keeps the whole embedding table (DBO: no embedding all-reduce). */
  readonly replicateEmbedding?: boolean;
}

/** Loads the tokenizer, generation defaults and weights (this rank's shard) of a resolved model. */
export function loadModel(
  resolved: ResolvedModel,
  kernels: Kernels,
  progress: LoadProgress = {},
  placement?: RankPlacement,
): LoadedModel {
  const { settings, dir, isEmbedded, config, weightDType } = resolved;
  progress.onStage?.('loading tokenizer');
  const tokenizer = loadModelTokenizer(settings);
  const generationDefaults = generationDefaultsFor(settings.generationConfig, dir);

  const loadFormat = settings.loadFormat;
  progress.onStage?.(loadFormat === 'dummy' ? 'generating dummy weights' : 'loading weights');
  const { source, linears } = openModelWeights(dir, config, deepseekCheckpointLayout(config), loadFormat, {
    seed: settings.seed,
    dummyDType: 'bf16',
    quantization: settings.quantization,
  });
  const weightCache = openWeightCacheFor(resolved, kernels, placement);
  if (weightCache) progress.onNotice?.(weightCache.notice);
  let model: CausalLM;
  try {
    model = resolved.architecture.create(config, {
      kernels,
      source,
      linears,
      weightDType,
      ...(weightCache ? { weightCache } : {}),
      maxPositions: resolved.maxModelLen,
      onLayerLoaded: progress.onLayerLoaded,
      ...(placement
        ? {
            plan: placement.plan,
            communicator: placement.communicator,
            moeCommunicator: placement.moeCommunicator ?? placement.communicator,
            replicateEmbedding: placement.replicateEmbedding ?? false,
          }
        : {}),
    });
    const done = weightCache?.commit();
    if (done) progress.onNotice?.(done);
  } catch (err) {
    weightCache?.abandon();
    throw err;
  } finally {
    source.close();
  }
  return {
    model,
    config,
    tokenizer,
    generationDefaults,
    dir,
    isEmbedded,
    isDummy: loadFormat === 'dummy',
    weightBytes: resolved.weightBytes,
    isInt8: resolved.isInt8,
    weightDType,
    maxModelLen: resolved.maxModelLen,
  };
}

/**
 * The kernel set's prepared-weight cache for this load, when `--weight-cache-dir` is set, the kernel set
 * keeps one and the weights come from a checkpoint (dummy weights have no files to key on).
 */
function openWeightCacheFor(
  resolved: ResolvedModel,
  kernels: Kernels,
  placement: RankPlacement | undefined,
): PreparedWeightCache | null {
  const s = resolved.settings;
  if (s.weightCacheDir === null || !canCacheWeights(kernels) || s.loadFormat === 'dummy') return null;
  const key = weightCacheKey(resolved.dir, {
    quantization: s.quantization,
    weightDType: resolved.weightDType,
    isInt8: resolved.isInt8,
    config: resolved.config,
    plan: placement?.plan ?? null,
    replicateEmbedding: placement?.replicateEmbedding ?? false,
  });
  return kernels.openWeightCache(s.weightCacheDir, key);
}

/**
 * The tokenizer for these settings: --tokenizer, else the model folder's (the embedded model's own when no
 * --model is given), else (a config-only folder) the DeepSeek-V3 tokenizer and chat template. The engine and the HTTP thread both
 * load it through here.
 */
export function loadModelTokenizer(settings: ModelSettings): Tokenizer {
  const options = settings.chatTemplate !== null ? { chatTemplate: settings.chatTemplate } : {};
  if (settings.tokenizer !== null) return loadTokenizer(settings.tokenizer, options);
  const dir = settings.model === null ? embeddedModelDir() : resolveModelFolder(settings.model).dir;
  if (existsSync(join(dir, 'tokenizer.json'))) return loadTokenizer(dir, options);
  // A config-only folder: the DeepSeek-V3 tokenizer and chat template.
  return loadTokenizerFromFiles(deepseekV3TokenizerFiles(), options);
}

function generationDefaultsFor(setting: string, modelDir: string): GenerationDefaults | null {
  if (setting === 'vllm') return null;
  if (setting === 'auto') return loadGenerationDefaults(modelDir);
  return loadGenerationDefaults(setting);
}
