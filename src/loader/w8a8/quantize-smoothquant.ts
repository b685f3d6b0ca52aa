// SmoothQuant smoothing for W8A8 checkpoints (the anti-outlier step of llm-compressor's W8A8 recipes and
// of Ascend ModelSlim), applied offline to float weights before they are quantized. For a norm whose
// output X feeds linear layers W (columns c = the norm's channels), each channel gets a factor
//
//   s[c] = max|X[:, c]|^α / max_W max|W[:, c]|^(1 − α)
//
// and the norm weight is divided by it while every consumer's column c is multiplied by it: the float
// model computes exactly the same function (X' = X / s, W' = W · s, X'·W'ᵀ = X·Wᵀ), but the activations'
// per-channel outliers move into the weights, where per-channel int8 rounding takes them more easily. The
// served checkpoint stays ordinary W8A8 (dynamic per-token activations, per-channel weights): loaders need
// no change. Consumers that stay float (a MoE router reading the same norm output) are scaled too, so the
// identity holds for them; the factors are set by the int8 consumers only.

import type { RawWeight } from '../../kernels/kernels.js';
import type { Slice, TensorInfo, WeightSource } from '../weight-source.js';

/** One norm and the linear weights that read its output (all `[n, k]` with k = the norm's length). */
export interface SmoothingGroup {
  /** The norm weight (1-D, k), divided by the factors. */
  readonly norm: string;
  /** Linear weights quantized to int8 after smoothing; their column maxima set the factors. */
  readonly int8: readonly string[];
  /** Linear weights that stay float (e.g. the MoE router): scaled by the factors, not setting them. */
  readonly float: readonly string[];
}

/** The smoothing step of a W8A8 recipe, as recorded beside the checkpoint. */
export interface SmoothQuantRecipe {
  readonly kind: 'smoothquant';
  /** Migration strength α in [0, 1]: 0 leaves activations alone, 1 moves all their range into weights. */
  readonly alpha: number;
  /** How the activation maxima were calibrated (number of prompts, tokens each, how chosen). */
  readonly calibration: string;
}

/** Smallest maximum a factor is computed from (as SmoothQuant clamps), so empty channels stay finite. */
const MIN_MAX = 1e-5;

/**
 * Per-channel factors s[c] = max(actMax[c], 1e-5)^α / max(weightMax[c], 1e-5)^(1 − α), in float32.
 * `actMax`: max|X[:, c]| over calibration tokens; `weightMax`: max|W[:, c]| over every int8 consumer.
 */
export function smoothingFactors(actMax: Float32Array, weightMax: Float32Array, alpha: number): Float32Array {
  if (!(alpha >= 0 && alpha <= 1)) {
    throw new RangeError(`smoothingFactors: alpha must be in [0, 1], got ${alpha}`);
  }
  if (actMax.length !== weightMax.length) {
    throw new RangeError(
      `smoothingFactors: ${actMax.length} activation maxima but ${weightMax.length} weight column maxima`,
    );
  }
  const s = new Float32Array(actMax.length);
  for (let c = 0; c < s.length; c++) {
    const a = Math.max(actMax[c]!, MIN_MAX);
    const w = Math.max(weightMax[c]!, MIN_MAX);
    s[c] = a ** alpha / w ** (1 - alpha);
  }
  return s;
}

/** A float weight's values as float32 (bf16 bit patterns widened; f32 copied so the caller may scale it). */
function floatCopy(raw: RawWeight): Float32Array {
  if (raw.dtype === 'f32') return Float32Array.from(raw.data);
  const out = new Float32Array(raw.data.length);
  const u32 = new Uint32Array(out.buffer);
  for (let i = 0; i < raw.data.length; i++) u32[i] = raw.data[i]! << 16;
  return out;
}

/** Raises `into[c]` to max|w[:, c]| of the `[n, k]` weight `raw`. */
export function columnMaxima(into: Float32Array, raw: RawWeight, n: number, k: number): void {
  if (into.length !== k || raw.data.length !== n * k) {
    throw new RangeError(
      `columnMaxima: a [${n}, ${k}] weight of ${raw.data.length} values into ${into.length}`,
    );
  }
  const w = floatCopy(raw);
  for (let j = 0; j < n; j++) {
    for (let c = 0; c < k; c++) into[c] = Math.max(into[c]!, Math.abs(w[j * k + c]!));
  }
}

/** The column maxima over every int8 consumer of each group, read from `source`. */
export function groupWeightMaxima(
  source: WeightSource,
  groups: readonly SmoothingGroup[],
): Map<string, Float32Array> {
  const out = new Map<string, Float32Array>();
  for (const g of groups) {
    const k = source.info(g.norm).shape[0]!;
    const max = new Float32Array(k);
    for (const name of g.int8) {
      const shape = shape2(source.info(name), k);
      columnMaxima(max, source.readBlock(name, shape, { start: 0, count: shape[0] }), shape[0], k);
    }
    out.set(g.norm, max);
  }
  return out;
}

function shape2(info: TensorInfo, k: number): [number, number] {
  const [n, cols] = info.shape;
  if (info.shape.length !== 2 || cols !== k) {
    throw new RangeError(
      `smoothing: ${info.name} has shape [${info.shape.join(', ')}], expected [n, ${k}] (the norm's length)`,
    );
  }
  return [n!, k];
}

/**
 * `source` with the smoothing applied: each group's norm weight divided by its factors and each of its
 * consumers' columns multiplied by them, returned as float32 (rounding them to bf16 would break the
 * identity). `factors`: per group norm name, length k. Tensors outside the groups pass through unchanged.
 */
export function smoothedWeightSource(
  source: WeightSource,
  groups: readonly SmoothingGroup[],
  factors: ReadonlyMap<string, Float32Array>,
): WeightSource {
  const normOf = new Map<string, Float32Array>();
  const columnsOf = new Map<string, Float32Array>();
  for (const g of groups) {
    const s = factors.get(g.norm);
    const k = source.info(g.norm).shape[0]!;
    if (s === undefined || s.length !== k) {
      throw new RangeError(`smoothing: no ${k} factors for ${g.norm}`);
    }
    normOf.set(g.norm, s);
    for (const name of [...g.int8, ...g.float]) {
      shape2(source.info(name), k);
      columnsOf.set(name, s);
    }
  }
  const f32Info = (name: string): TensorInfo => {
    const info = source.info(name);
    return normOf.has(name) || columnsOf.has(name) ? { ...info, dtype: 'F32' } : info;
  };
  const readBlock: WeightSource['readBlock'] = (name, shape, rows, cols, staged) => {
    const s = columnsOf.get(name);
    if (s === undefined) return source.readBlock(name, shape, rows, cols, staged);
    const c: Slice = cols ?? { start: 0, count: shape[1] };
    const w = floatCopy(source.readBlock(name, shape, rows, c));
    for (let j = 0; j < rows.count; j++) {
      for (let i = 0; i < c.count; i++)
        w[j * c.count + i] = Math.fround(w[j * c.count + i]! * s[c.start + i]!);
    }
    return { dtype: 'f32', data: w };
  };
  return {
    names: () => source.names(),
    info: f32Info,
    has: (name) => source.has(name),
    read(name, expectedShape) {
      const s = normOf.get(name);
      if (s !== undefined) {
        const g = floatCopy(source.read(name, expectedShape));
        for (let c = 0; c < g.length; c++) g[c] = Math.fround(g[c]! / s[c]!);
        return { dtype: 'f32', data: g };
      }
      if (!columnsOf.has(name)) return source.read(name, expectedShape);
      const info = source.info(name);
      const shape = (expectedShape ?? info.shape) as readonly number[];
      if (shape.length !== 2)
        throw new RangeError(`smoothing: ${name} is read as [${shape.join(', ')}], not 2-D`);
      return readBlock(name, [shape[0]!, shape[1]!], { start: 0, count: shape[0]! });
    },
    readBlock,
    close: () => source.close(),
  };
}

/** `name` with its layer and expert numbers turned into patterns (`model.layers.*.mlp.experts.*.up_proj`). */
function pattern(name: string): string {
  return name.replace(/\.weight$/, '').replace(/\.(\d+)\./g, '.*.');
}

/**
 * The recipe as llm-compressor records it beside a checkpoint (`recipe.yaml`): the SmoothQuant modifier
 * (strength, mappings from the norms to the layers that read them, calibration) when `smoothing` is given,
 * then the W8A8 quantization modifier (per-channel int8 weights rounded to nearest, per-token dynamic int8
 * activations). Duet's loader does not read it: the checkpoint is ordinary W8A8 either way.
 */
export function w8a8RecipeYaml(
  smoothing: SmoothQuantRecipe | null,
  groups: readonly SmoothingGroup[],
): string {
  const lines = [
    '# How the int8 weights of this checkpoint were made (written by Duet).',
    'quant_stage:',
    '  quant_modifiers:',
  ];
  if (smoothing !== null) {
    lines.push('    SmoothQuantModifier:', `      smoothing_strength: ${smoothing.alpha}`);
    lines.push(`      calibration: ${JSON.stringify(smoothing.calibration)}`, '      mappings:');
    const seen = new Set<string>();
    for (const g of groups) {
      const consumers = [...new Set([...g.int8, ...g.float].map(pattern))];
      const line = `        - [${JSON.stringify(consumers)}, ${JSON.stringify(pattern(g.norm))}]`;
      if (!seen.has(line)) lines.push(line);
      seen.add(line);
    }
  }
  lines.push(
    '    QuantizationModifier:',
    '      targets: [Linear]',
    '      scheme: W8A8  # int8 weights per output channel (round to nearest), int8 activations per token (dynamic)',
  );
  return `${lines.join('\n')}\n`;
}
