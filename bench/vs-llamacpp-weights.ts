// The weights of the llama.cpp comparison, written once into a cache folder: a model's seeded dummy
// weights (Duet's `--load-format dummy`, bf16 values) as a Hugging Face folder (config.json and one
// safetensors file, BF16), as a pre-quantized W8A8 folder (compressed-tensors, int8 where Q8_0 has 8 bits)
// and as llama.cpp GGUF files (F32, BF16, Q8_0) holding exactly the same values. The W8A8 folder's int8
// weights are rounded to nearest per channel, optionally after SmoothQuant smoothing (`W8A8Recipe`); its
// recipe.yaml says which. Its config.json declares the activations per token, or per token and group of
// k (`W8A8ActGroup`).
// Each file is written to a temporary name and renamed when complete, so an interrupted run never leaves
// a half-written file that a later run would trust.

import {
  closeSync,
  copyFileSync,
  existsSync,
  linkSync,
  mkdirSync,
  openSync,
  renameSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { DeepseekConfig } from '../src/config/model-config.js';
import { quantizeWeightPerChannel } from '../src/kernels/int8-quant.js';
import type { Int8LinearData } from '../src/kernels/kernels.js';
import { DummyWeightSource } from '../src/loader/dummy-weights.js';
import { compressedTensorsW8A8Config } from '../src/loader/w8a8/checkpoint-format.js';
import {
  groupWeightMaxima,
  type SmoothQuantRecipe,
  smoothedWeightSource,
  smoothingFactors,
  w8a8RecipeYaml,
} from '../src/loader/w8a8/quantize-smoothquant.js';
import type { WeightSource } from '../src/loader/weight-source.js';
import { deepseekSmoothingGroups } from '../src/models/deepseek-smoothing.js';
import { deepseekLinearRole, deepseekTensorSpecs, numElements } from '../src/models/deepseek-weights.js';
import { type Deepseek2FileType, writeDeepseek2Gguf } from './gguf/deepseek2-gguf.js';

/** Writes `write(tmp)` to `path` through a temporary name, unless `path` exists already. */
export function writeOnce(path: string, write: (tmp: string) => void): void {
  if (existsSync(path)) return;
  const tmp = `${path}.partial`;
  write(tmp);
  renameSync(tmp, path);
}

/** One tensor of a safetensors file being written: its header entry and how to produce its bytes. */
interface OutTensor {
  readonly name: string;
  readonly dtype: 'BF16' | 'F32' | 'I8';
  readonly shape: readonly number[];
  readonly bytes: number;
}

/**
 * Writes a safetensors file at `path` (through `writeOnce`): the header of `tensors`, then each tensor's
 * bytes from `produce`, called in header order, one tensor at a time (nothing else is held).
 */
function writeSafetensors(
  path: string,
  tensors: readonly OutTensor[],
  produce: (t: OutTensor) => ArrayBufferView,
): void {
  writeOnce(path, (tmp) => {
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    let offset = 0;
    for (const t of tensors) {
      header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes] };
      offset += t.bytes;
    }
    // The header is padded with spaces to 8 bytes, as safetensors writers do.
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
    const fd = openSync(tmp, 'w');
    try {
      const write = (b: Uint8Array) => {
        for (let done = 0; done < b.length; ) done += writeSync(fd, b, done, b.length - done);
      };
      write(len);
      write(Buffer.from(json, 'utf8'));
      for (const t of tensors) {
        const v = produce(t);
        if (v.byteLength !== t.bytes) throw new Error(`${t.name}: ${v.byteLength} bytes, not ${t.bytes}`);
        write(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
      }
    } finally {
      closeSync(fd);
    }
  });
}

/**
 * A Hugging Face model folder of the dummy weights of `config`: `configJson` as config.json and every
 * tensor in BF16 in model.safetensors, streamed one tensor at a time.
 */
export function writeHfFolder(
  dir: string,
  configJson: Record<string, unknown>,
  config: DeepseekConfig,
  seed: number,
): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(configJson, null, 2));
  const specs = deepseekTensorSpecs(config);
  const source = new DummyWeightSource(specs, { seed, dtype: 'bf16' });
  writeSafetensors(
    join(dir, 'model.safetensors'),
    specs.map((s) => ({ name: s.name, dtype: 'BF16', shape: s.shape, bytes: numElements(s.shape) * 2 })),
    (t) => source.read(t.name).data,
  );
}

/**
 * How the W8A8 folder's int8 weights are made: rounded to nearest per output channel (`rtn`, what
 * `--quantization w8a8` does), or the same after SmoothQuant smoothing with the activation maxima of each
 * smoothing group's norm (`deepseekSmoothingGroups`, from `calibrateNormMaxima`).
 */
export type W8A8Recipe =
  | { readonly kind: 'rtn' }
  | (SmoothQuantRecipe & { readonly normMaxima: ReadonlyMap<string, Float32Array> });

/** The recipe in a few words, for the bench's row label. */
export function describeW8A8Recipe(recipe: W8A8Recipe): string {
  return recipe.kind === 'rtn' ? 'round to nearest' : `SmoothQuant α ${recipe.alpha}`;
}

/**
 * How the W8A8 folder declares its activations: per token (null, vLLM's W8A8) or per token and group of
 * that many k values (compressed-tensors `strategy: "group"`), with the same int8 weights either way.
 */
export type W8A8ActGroup = number | null;

/** The activation scheme in a few words, for the bench's row label. */
export function describeActGroup(actGroup: W8A8ActGroup): string {
  return actGroup === null ? 'activations per token' : `activations per token and group of ${actGroup}`;
}

/**
 * The same dummy weights as `writeHfFolder`, as a compressed-tensors W8A8 checkpoint (what Duet loads
 * without quantizing): every matrix that llama.cpp's Q8_0 stores in 8 bits and Duet can take as int8
 * (`deepseekLinearRole` 'int8', the LM head, and kv_b_proj, which Duet dequantizes at load as vLLM does)
 * as I8 with a per-channel F32 `weight_scale` [n, 1], quantized from the bf16 values exactly as
 * `--quantization w8a8` does (`quantizeWeightPerChannel`); the rest in BF16: the token embeddings (a
 * lookup table in Duet; Q8_0 has them in 8 bits), the norms and the router (F32 in Q8_0 too). With
 * SmoothQuant the int8 weights are quantized from the smoothed values, and the smoothed norms and routers
 * are stored in F32 (rounding them to BF16 would break the fold's identity). recipe.yaml records the recipe.
 */
export function writeW8A8Folder(
  dir: string,
  configJson: Record<string, unknown>,
  config: DeepseekConfig,
  seed: number,
  recipe: W8A8Recipe = { kind: 'rtn' },
  actGroup: W8A8ActGroup = null,
  /** A folder written by this function with the same recipe: its weights file is linked, not rewritten. */
  sameWeightsAs?: string,
): void {
  // Written already (the weights file is renamed into place last): nothing to redo.
  if (existsSync(join(dir, 'model.safetensors'))) return;
  mkdirSync(dir, { recursive: true });
  const quantizationConfig = compressedTensorsW8A8Config([], actGroup);
  const writeConfig = (): void =>
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ ...configJson, quantization_config: quantizationConfig }, null, 2),
    );
  if (sameWeightsAs !== undefined && existsSync(join(sameWeightsAs, 'model.safetensors'))) {
    // The activation scheme lives in config.json only: the int8 weights and scales are the same bytes.
    const recipeYaml = join(sameWeightsAs, 'recipe.yaml');
    if (existsSync(recipeYaml)) copyFileSync(recipeYaml, join(dir, 'recipe.yaml'));
    writeConfig();
    linkSync(join(sameWeightsAs, 'model.safetensors'), join(dir, 'model.safetensors'));
    return;
  }
  const specs = deepseekTensorSpecs(config);
  const source = new DummyWeightSource(specs, { seed, dtype: 'bf16' });
  const groups = deepseekSmoothingGroups(config);
  let smoothed: WeightSource = source;
  const smoothedFloat = new Set<string>();
  if (recipe.kind === 'smoothquant') {
    const weightMax = groupWeightMaxima(source, groups);
    const factors = new Map(
      groups.map((g) => {
        const act = recipe.normMaxima.get(g.norm);
        if (act === undefined) throw new Error(`writeW8A8Folder: no calibrated maxima for ${g.norm}`);
        return [g.norm, smoothingFactors(act, weightMax.get(g.norm)!, recipe.alpha)];
      }),
    );
    smoothed = smoothedWeightSource(source, groups, factors);
    for (const g of groups) for (const name of [g.norm, ...g.float]) smoothedFloat.add(name);
  }
  writeFileSync(
    join(dir, 'recipe.yaml'),
    w8a8RecipeYaml(recipe.kind === 'smoothquant' ? recipe : null, groups),
  );
  // Modules Duet runs in float are stored in BF16: compressed-tensors reads their dtype, not `ignore`.
  writeConfig();
  const isInt8 = (name: string) => {
    const role = deepseekLinearRole(name);
    return role === 'int8' || role === 'int8-from-checkpoint' || role === 'dequantize';
  };
  const tensors: OutTensor[] = [];
  for (const s of specs) {
    const n = numElements(s.shape);
    if (smoothedFloat.has(s.name)) {
      tensors.push({ name: s.name, dtype: 'F32', shape: s.shape, bytes: n * 4 });
      continue;
    }
    if (!isInt8(s.name)) {
      tensors.push({ name: s.name, dtype: 'BF16', shape: s.shape, bytes: n * 2 });
      continue;
    }
    tensors.push({ name: s.name, dtype: 'I8', shape: s.shape, bytes: n });
    const scale = s.name.replace(/\.weight$/, '.weight_scale');
    tensors.push({ name: scale, dtype: 'F32', shape: [s.shape[0]!, 1], bytes: s.shape[0]! * 4 });
  }
  // Each int8 weight is quantized once; its scale (the next tensor) comes from the same result.
  let last: { name: string; weight: Int8LinearData } | null = null;
  writeSafetensors(join(dir, 'model.safetensors'), tensors, (t) => {
    if (t.dtype === 'BF16') return source.read(t.name).data;
    if (smoothedFloat.has(t.name)) return smoothed.read(t.name).data;
    if (t.dtype === 'I8') {
      const [n, k] = t.shape as [number, number];
      last = { name: t.name, weight: quantizeWeightPerChannel(smoothed.read(t.name), n, k) };
      return last.weight.data;
    }
    const q = last as { name: string; weight: Int8LinearData } | null;
    if (
      q === null ||
      q.weight.scheme.kind !== 'dynamic' ||
      !t.name.startsWith(q.name.replace(/weight$/, ''))
    ) {
      throw new Error(`${t.name}: written before its weight`);
    }
    return q.weight.scheme.weightScale;
  });
}

/** The GGUF file of `config`'s dummy weights in `fileType` (written unless present); its path. */
export function writeGgufModel(
  dir: string,
  config: DeepseekConfig,
  seed: number,
  fileType: Deepseek2FileType,
): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `model-${fileType}.gguf`);
  writeOnce(path, (tmp) =>
    writeDeepseek2Gguf(
      tmp,
      config,
      new DummyWeightSource(deepseekTensorSpecs(config), { seed, dtype: 'f32' }),
      fileType,
    ),
  );
  return path;
}
