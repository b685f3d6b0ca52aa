// A Hugging Face model folder as Duet uses it: check that it exists and holds a config.json, read its
// optional generation defaults, and open its weights in the requested load format (vLLM's
// `--load-format auto | safetensors | dummy`).

import { statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { LoadFormat } from '../config/engine-config.js';
import type { DeepseekConfig } from '../config/model-config.js';
import { checkWeights } from './check-weights.js';
import { CheckpointNotFoundError, UnsupportedQuantizationError } from './checkpoint-errors.js';
import { DummyWeightSource, dummyInit } from './dummy-weights.js';
import { type GenerationDefaults, loadGenerationDefaults } from './generation-config.js';
import { hasSafetensors, openSafetensors } from './safetensors.js';
import type { CheckpointLayout } from './tensor-specs.js';
import { checkW8A8Weights } from './w8a8/check-w8a8-weights.js';
import { detectW8A8Format, type W8A8Format } from './w8a8/checkpoint-format.js';
import {
  checkpointLinearSource,
  dummyInt8LinearSource,
  floatLinearSource,
  type LinearSource,
  quantizingLinearSource,
} from './w8a8/linear-source.js';
import type { WeightSource } from './weight-source.js';

/** Every `LoadFormat`; `auto` reads safetensors when the folder has them and fails otherwise. */
export const LOAD_FORMATS: readonly LoadFormat[] = ['auto', 'safetensors', 'dummy'];

/** The model folder is missing, not a folder, or has no config.json. */
export class ModelFolderError extends Error {
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`model folder "${path}" ${detail}`);
    this.name = 'ModelFolderError';
  }
}

/** A checked model folder. */
export interface ModelFolder {
  /** Absolute path of the folder. */
  readonly dir: string;
  /** Absolute path of its config.json (load it with `loadDeepseekConfig(dir, overrides)`). */
  readonly configPath: string;
  /** From generation_config.json; null when the folder has none. */
  readonly generationDefaults: GenerationDefaults | null;
  /** Whether the folder holds `model.safetensors` or `model.safetensors.index.json`. */
  readonly hasSafetensors: boolean;
}

/**
 * Checks that `path` is a folder with a config.json and reads its generation_config.json when present.
 * Throws `ModelFolderError` naming the path, or `ModelConfigError` for a malformed generation_config.json.
 */
export function resolveModelFolder(path: string): ModelFolder {
  const dir = resolve(path);
  const stat = statSync(dir, { throwIfNoEntry: false });
  if (stat === undefined) throw new ModelFolderError(dir, 'does not exist');
  if (!stat.isDirectory())
    throw new ModelFolderError(dir, 'is not a folder; give the folder holding config.json');
  const configPath = join(dir, 'config.json');
  if (statSync(configPath, { throwIfNoEntry: false })?.isFile() !== true) {
    throw new ModelFolderError(dir, 'has no config.json; a Hugging Face model folder needs one');
  }
  return {
    dir,
    configPath,
    generationDefaults: loadGenerationDefaults(dir),
    hasSafetensors: hasSafetensors(dir),
  };
}

/** Options of `openWeights`. */
export interface OpenWeightsOptions {
  /** Seed of dummy weights (default 0). */
  readonly seed?: number;
  /** The dtype dummy weights are generated in (default bf16). */
  readonly dummyDType?: 'bf16' | 'f32';
}

/** A model's weights, opened: every tensor, and the linear weights as the kernels will hold them. */
export interface ModelWeights {
  readonly source: WeightSource;
  readonly linears: LinearSource;
  /** The int8 checkpoint format, or null for float weights (quantized while loading or not at all). */
  readonly format: W8A8Format | null;
}

/**
 * Opens the weights of a model folder (see `openWeights`), with its linear weights as int8 where the
 * checkpoint stores them so (compressed-tensors or ModelSlim W8A8, detected from the folder) or where
 * `opts.quantization` asks to quantize them while loading (`layout.linearRole` says which). An int8
 * checkpoint is checked as a whole (`checkW8A8Weights`) before any weight is read.
 */
export function openModelWeights(
  dir: string,
  config: DeepseekConfig,
  layout: CheckpointLayout,
  loadFormat: LoadFormat,
  opts: OpenWeightsOptions & { readonly quantization?: 'w8a8' | null } = {},
): ModelWeights {
  const quantize = opts.quantization === 'w8a8';
  const role = (name: string) => layout.linearRole(name);
  if (loadFormat === 'dummy') {
    const source = openWeights(dir, config, layout, loadFormat, opts);
    const linears = quantize
      ? dummyInt8LinearSource(
          source,
          role,
          opts.seed ?? 0,
          (name, shape) => dummyInit({ name, shape }).amplitude,
        )
      : floatLinearSource(source);
    return { source, linears, format: null };
  }
  const format = hasSafetensors(dir) ? detectW8A8Format(dir, config.quantization) : null;
  if (format === null) {
    const source = openWeights(dir, config, layout, loadFormat, opts);
    const linears = quantize ? quantizingLinearSource(source, role) : floatLinearSource(source);
    return { source, linears, format: null };
  }
  const isIgnored = (name: string): boolean => layout.isIgnored(name);
  const source = openSafetensors(dir, { skip: isIgnored });
  try {
    checkW8A8Weights(source, layout.tensors, format, role, isIgnored, dir);
  } catch (err) {
    source.close();
    throw err;
  }
  return { source, linears: checkpointLinearSource(source, format, role), format };
}

/**
 * Opens the weights of a model folder. `safetensors` (and `auto` when the folder has safetensors) opens
 * the checkpoint, skipping the tensors the model ignores (`layout.isIgnored`), and checks it against the
 * model's tensor list (`checkWeights`); `dummy` generates seeded weights of those shapes. Throws
 * `CheckpointNotFoundError` (suggesting `--load-format dummy`) when there is no checkpoint,
 * `UnsupportedQuantizationError` for a quantized (e.g. FP8) config, and the checkpoint errors of
 * `openSafetensors` and `checkWeights`.
 */
export function openWeights(
  dir: string,
  config: DeepseekConfig,
  layout: CheckpointLayout,
  loadFormat: LoadFormat,
  opts: OpenWeightsOptions = {},
): WeightSource {
  if (!LOAD_FORMATS.includes(loadFormat)) {
    throw new RangeError(
      `load format "${String(loadFormat)}" is not supported; supported: ${LOAD_FORMATS.join(', ')}`,
    );
  }
  if (loadFormat === 'dummy') {
    return new DummyWeightSource(layout.tensors, { seed: opts.seed ?? 0, dtype: opts.dummyDType ?? 'bf16' });
  }
  if (!hasSafetensors(dir)) {
    throw new CheckpointNotFoundError(
      dir,
      `; to run with seeded random weights of the config's shapes, pass --load-format dummy`,
    );
  }
  if (config.quantization !== null) throw new UnsupportedQuantizationError(dir, config.quantization.method);
  const source = openSafetensors(dir, { skip: (name) => layout.isIgnored(name) });
  try {
    checkWeights(source, layout, dir);
  } catch (err) {
    source.close();
    throw err;
  }
  return source;
}
