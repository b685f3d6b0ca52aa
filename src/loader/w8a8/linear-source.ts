// Where a model's linear weights come from, as the kernels will hold them: float, or int8 (W8A8) with its
// scheme. One tensor (or one tensor-parallel block of it) at a time, so loading never holds more than the
// prepared model plus one float tensor. Four sources:
// - float: the checkpoint's float weights as they are (no quantization);
// - quantize on load (`--quantization w8a8` over a float checkpoint): each int8-eligible weight is read in
//   float and quantized per output channel (symmetric, over whole rows, so that tensor-parallel shards
//   hold exactly the rows and columns of the one-rank weight);
// - dummy int8 (`--load-format dummy --quantization w8a8`): int8 weights generated directly;
// - an int8 checkpoint (compressed-tensors or ModelSlim, see checkpoint-format.ts).
// Which weights may be int8 is the model's decision (`LinearRole`, e.g. deepseekLinearRole).

import { dequantizeInt8, quantizeWeightPerChannel } from '../../kernels/int8-quant.js';
import type { Int8LinearData, Int8Scheme, RawWeight } from '../../kernels/kernels.js';
import { fmix32 } from '../../util/fmix32.js';
import { QuantizedCheckpointError } from '../checkpoint-errors.js';
import type { SafetensorsWeightSource, StoredTensor } from '../safetensors.js';
import type { LinearRole } from '../tensor-specs.js';
import type { Slice, WeightSource } from '../weight-source.js';
import type { W8A8Format } from './checkpoint-format.js';

export type { LinearRole };

/** A block of a linear weight, ready to prepare. */
export type LinearBlock =
  | { readonly kind: 'float'; readonly raw: RawWeight }
  | { readonly kind: 'int8'; readonly weight: Int8LinearData };

export interface LinearSource {
  /**
   * Rows `rows` × columns `cols` (all when absent) of the linear weight `name` of shape `shape` ([R, C]),
   * as the kernels should hold it. `staged`: the block may be a view of a buffer that the next staged read
   * reuses (see `WeightSource.readBlock`); the caller copies it out (prepares it) before reading again.
   */
  readLinear(
    name: string,
    shape: readonly [number, number],
    rows: Slice,
    cols?: Slice,
    staged?: boolean,
  ): LinearBlock;
}

/** The float weights as stored. */
export function floatLinearSource(source: WeightSource): LinearSource {
  return {
    readLinear: (name, shape, rows, cols, staged) => ({
      kind: 'float',
      raw: source.readBlock(name, [shape[0], shape[1]], rows, cols, staged),
    }),
  };
}

/** Quantizes `int8` weights of a float source per output channel as they are read. */
export function quantizingLinearSource(
  source: WeightSource,
  roleOf: (name: string) => LinearRole,
): LinearSource {
  return {
    readLinear(name, shape, rows, cols, staged) {
      const full: readonly [number, number] = [shape[0], shape[1]];
      if (roleOf(name) !== 'int8') {
        return { kind: 'float', raw: source.readBlock(name, full, rows, cols, staged) };
      }
      // Whole rows: the scale of a channel is its max over all input features, on every rank. The float
      // block is quantized into new arrays at once, so it may always be staged.
      const raw = source.readBlock(name, full, rows, undefined, true);
      const q = quantizeWeightPerChannel(raw, rows.count, shape[1]);
      return { kind: 'int8', weight: sliceInt8Columns(q, rows.count, shape[1], cols) };
    },
  };
}

/**
 * Dummy weights with the `int8` ones generated directly as int8 (no float tensor is ever made): each row
 * uniform on [−127, 127] from its own seeded stream, with the scale that gives the float dummy weights'
 * range (`amplitudeOf(name, shape)` / 127), so the model's activations keep the float dummy's scale.
 */
export function dummyInt8LinearSource(
  floats: WeightSource,
  roleOf: (name: string) => LinearRole,
  seed: number,
  amplitudeOf: (name: string, shape: readonly number[]) => number,
): LinearSource {
  return {
    readLinear(name, shape, rows, cols, staged) {
      const full: readonly [number, number] = [shape[0], shape[1]];
      if (roleOf(name) !== 'int8') {
        return { kind: 'float', raw: floats.readBlock(name, full, rows, cols, staged) };
      }
      floats.info(name); // a MissingTensorError for a name the model does not have
      const k = shape[1];
      const c = cols ?? { start: 0, count: k };
      const data = new Int8Array(rows.count * c.count);
      const row = new Int8Array(k + 3);
      const words = new Int32Array(row.buffer, 0, Math.floor(row.length / 4));
      const nameHash = hashName(name);
      for (let r = 0; r < rows.count; r++) {
        let s = fmix32((seed ^ nameHash ^ fmix32(rows.start + r + 1)) >>> 0) | 1;
        for (let i = 0; i < words.length; i++) {
          s ^= s << 13;
          s ^= s >>> 17;
          s ^= s << 5;
          words[i] = s;
        }
        // −128 is outside the symmetric range; fold it onto 127.
        for (let i = 0; i < k; i++) if (row[i] === -128) row[i] = 127;
        data.set(row.subarray(c.start, c.start + c.count), r * c.count);
      }
      const weightScale = new Float32Array(rows.count).fill(Math.fround(amplitudeOf(name, shape) / 127));
      return { kind: 'int8', weight: { data, scheme: { kind: 'dynamic', weightScale } } };
    },
  };
}

function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return fmix32(h >>> 0);
}

/** The weights of an int8 checkpoint: int8 tensors with their scales, float ones as stored. */
export function checkpointLinearSource(
  source: SafetensorsWeightSource,
  format: W8A8Format,
  roleOf: (name: string) => LinearRole,
): LinearSource {
  return {
    readLinear(name, shape, rows, cols, staged = false) {
      const full: readonly [number, number] = [shape[0], shape[1]];
      const storage = format.storageOf(name, source.info(name).dtype);
      if (storage === 'float') {
        return { kind: 'float', raw: source.readBlock(name, full, rows, cols, staged) };
      }
      const role = roleOf(name);
      if (role === 'float' || role === null) {
        throw new QuantizedCheckpointError(
          format.declaredIn,
          name,
          'is int8, but Duet runs this tensor in float; expected a float dtype',
        );
      }
      // A block to dequantize becomes new float data at once, so it may always be staged.
      const stored = source.readAnyBlock(name, full, rows, cols, staged || role === 'dequantize');
      if (stored.dtype !== 'i8') {
        throw new QuantizedCheckpointError(format.declaredIn, name, `is ${stored.dtype}; expected I8`);
      }
      const width = cols?.count ?? shape[1];
      const module = name.replace(/\.weight$/, '');
      const scheme = readScheme(source, format, module, shape, rows, cols);
      const weight: Int8LinearData = { data: stored.data, scheme };
      if (role === 'dequantize') {
        return { kind: 'float', raw: { dtype: 'f32', data: dequantizeInt8(weight, rows.count, width) } };
      }
      return { kind: 'int8', weight };
    },
  };
}

/** The scheme of the int8 weight `module` ([n, k] = shape), for this block's rows and columns. */
function readScheme(
  source: SafetensorsWeightSource,
  format: W8A8Format,
  module: string,
  shape: readonly [number, number],
  rows: Slice,
  cols: Slice | undefined,
): Int8Scheme {
  const [n, k] = shape;
  const file = format.declaredIn;
  const storage = format.storageOf(`${module}.weight`, 'I8');
  const perChannel = (suffix: string, allowTensor: boolean): StoredTensor =>
    readScale(source, file, `${module}.${suffix}`, n, allowTensor);
  const weightScale = (): Float32Array => {
    const t = floatsOf(file, `${module}.weight_scale`, perChannel('weight_scale', true));
    return t.length === 1
      ? new Float32Array(rows.count).fill(t[0]!)
      : t.slice(rows.start, rows.start + rows.count);
  };
  if (format.method === 'modelslim') {
    const offsetName = `${module}.weight_offset`;
    if (source.has(offsetName)) {
      const off = floatsOf(file, offsetName, perChannel('weight_offset', false));
      const at = off.findIndex((v) => v !== 0);
      if (at >= 0) {
        throw new QuantizedCheckpointError(
          file,
          offsetName,
          `is ${off[at]} at channel ${at}; Duet serves symmetric int8 weights only (all offsets 0)`,
        );
      }
    }
  }
  if (storage === 'int8-dynamic') {
    if (format.actGroupSize === null) return { kind: 'dynamic', weightScale: weightScale() };
    checkGroupAligned(file, module, format.actGroupSize, k, cols);
    return { kind: 'dynamic', weightScale: weightScale(), groupSize: format.actGroupSize };
  }
  const inputScale = scalarOf(source, file, `${module}.input_scale`);
  if (format.method === 'compressed-tensors') {
    // Symmetric static activations: no zero point, no bias; deqScale = inputScale · weightScale.
    const ws = weightScale();
    return {
      kind: 'static',
      inputScale,
      inputOffset: 0,
      quantBias: new Int32Array(rows.count),
      deqScale: ws.map((w) => Math.fround(inputScale * w)),
    };
  }
  const inputOffset = scalarOf(source, file, `${module}.input_offset`);
  const biasAll = perChannel('quant_bias', false);
  if (biasAll.dtype !== 'i32') {
    throw new QuantizedCheckpointError(file, `${module}.quant_bias`, `is ${biasAll.dtype}; expected I32`);
  }
  // Row-parallel shards (a column range after the first) add no bias: the partial sums of all ranks are
  // added up, and the bias must count once (as vLLM-Ascend passes quant_bias on tensor-parallel rank 0 only).
  const quantBias =
    cols !== undefined && cols.start > 0
      ? new Int32Array(rows.count)
      : biasAll.data.slice(rows.start, rows.start + rows.count);
  const deq = perChannel('deq_scale', false);
  let deqScale: Float32Array;
  if (deq.dtype === 'i64') {
    // Float16 models store deq_scale as int64 holding the float32's bits in its low 32 bits.
    const bits = new Uint32Array(deq.data.length);
    for (let i = 0; i < bits.length; i++) bits[i] = Number(deq.data[i]! & 0xffffffffn);
    deqScale = new Float32Array(bits.buffer);
  } else {
    deqScale = floatsOf(file, `${module}.deq_scale`, deq);
  }
  return {
    kind: 'static',
    inputScale,
    inputOffset,
    quantBias,
    deqScale: deqScale.slice(rows.start, rows.start + rows.count),
  };
}

/**
 * A block of k columns (a row-parallel shard) with activation groups of `g` must start and end on group
 * boundaries (or at k's end), so that each rank's groups are the one-rank weight's groups.
 */
function checkGroupAligned(
  file: string,
  module: string,
  g: number,
  k: number,
  cols: Slice | undefined,
): void {
  if (cols === undefined) return;
  const end = cols.start + cols.count;
  if (cols.start % g !== 0 || (end % g !== 0 && end !== k)) {
    throw new QuantizedCheckpointError(
      file,
      `${module}.weight`,
      `is split at columns [${cols.start}, ${end}) of ${k} (tensor parallelism), which cut its activation ` +
        `groups of ${g}; a split must fall on a multiple of ${g} (choose a tensor-parallel size that divides ` +
        `${k} into multiples of ${g})`,
    );
  }
}

/** A per-channel tensor ([n] or [n, 1]; also [1] when `allowTensor`), read whole. */
function readScale(
  source: SafetensorsWeightSource,
  file: string,
  name: string,
  n: number,
  allowTensor: boolean,
): StoredTensor {
  if (!source.has(name))
    throw new QuantizedCheckpointError(file, name, `is missing; expected shape [${n}, 1] or [${n}]`);
  const { shape } = source.info(name);
  const count = shape.reduce((a, d) => a * d, 1);
  const ok =
    (count === n && shape.length >= 1 && shape.length <= 2 && shape[0] === n) || (allowTensor && count === 1);
  if (!ok) {
    throw new QuantizedCheckpointError(
      file,
      name,
      `has shape [${shape.join(', ')}]; expected [${n}, 1] or [${n}]${allowTensor ? ' (per channel) or [1] (per tensor)' : ''}`,
    );
  }
  return source.readAny(name);
}

function floatsOf(file: string, name: string, t: StoredTensor): Float32Array {
  if (t.dtype === 'f32') return t.data;
  if (t.dtype === 'bf16') {
    const out = new Float32Array(t.data.length);
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < t.data.length; i++) u[i] = t.data[i]! << 16;
    return out;
  }
  throw new QuantizedCheckpointError(file, name, `is ${t.dtype}; expected a float dtype (F32, BF16, F16)`);
}

/** A per-tensor value ([1] or []): float, or an integer dtype (input_offset may be stored as I8). */
function scalarOf(source: SafetensorsWeightSource, file: string, name: string): number {
  if (!source.has(name)) throw new QuantizedCheckpointError(file, name, 'is missing; expected shape [1]');
  const { shape } = source.info(name);
  if (shape.reduce((a, d) => a * d, 1) !== 1) {
    throw new QuantizedCheckpointError(
      file,
      name,
      `has shape [${shape.join(', ')}]; expected [1] (per tensor)`,
    );
  }
  const t = source.readAny(name);
  if (t.dtype === 'bf16') return floatsOf(file, name, t)[0]!;
  if (t.dtype === 'i64') return Number(t.data[0]!);
  return t.data[0]!;
}

/** Columns `cols` of an int8 weight [n, k] (per-channel scales are unchanged by a column range). */
export function sliceInt8Columns(
  w: Int8LinearData,
  n: number,
  k: number,
  cols: Slice | undefined,
): Int8LinearData {
  if (cols === undefined || (cols.start === 0 && cols.count === k)) return w;
  const data = new Int8Array(n * cols.count);
  for (let r = 0; r < n; r++)
    data.set(w.data.subarray(r * k + cols.start, r * k + cols.start + cols.count), r * cols.count);
  return { data, scheme: w.scheme };
}
