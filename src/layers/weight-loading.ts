// Helpers that turn checkpoint tensors into kernel-ready weights, one tensor at a time: norm vectors as
// float32, linear weights (optionally several fused by stacking their rows) prepared by the kernel set.
// A tensor-parallel rank reads only its block of each sharded tensor (`WeightSource.readBlock`). Linear
// weights come through a `LinearSource`, which hands each one over as float or as int8 (W8A8); int8
// weights run on the int8 kernels, with their per-output-channel scales sharded with their rows.

import { dequantizeInt8, Int8WeightError } from '../kernels/int8-quant.js';
import type { Int8LinearData, Kernels, LinearWeight, RawWeight, WeightDType } from '../kernels/kernels.js';
import { bf16ToF32 } from '../kernels/kernels.js';
import type { PreparedWeightCache } from '../kernels/weight-cache.js';
import { floatLinearSource, type LinearBlock, type LinearSource } from '../loader/w8a8/linear-source.js';
import type { Slice, WeightSource } from '../loader/weight-source.js';
import type { Scratch } from './scratch.js';

/** Where a layer loads from and how its linear weights are kept. */
export interface LoadContext {
  readonly source: WeightSource;
  readonly kernels: Kernels;
  /** Storage dtype of float linear weights (activations are float32 regardless). */
  readonly weightDType: WeightDType;
  /** Where linear weights come from, float or int8 (default: the source's float weights). */
  readonly linears?: LinearSource;
  /** Activation scratch shared by the layers of one model (a layer makes its own when absent). */
  readonly scratch?: Scratch;
  /** The buffer fused weights are stacked in, reused from weight to weight (fresh arrays when absent). */
  readonly stacking?: StackingBuffer;
  /** The kernel set's prepared-weight cache: linear weights it holds are neither read nor prepared. */
  readonly weightCache?: PreparedWeightCache;
}

/**
 * One buffer, grown to the largest fused weight so far, that `loadLinear` stacks the parts of a fused
 * weight in before the kernels copy it into their own layout. A fresh array per fused weight was new
 * memory each time (1.1 GB over the routed experts of V2-Lite cut to 4 layers), and new memory costs a
 * page fault per 4 KiB: on the virtual machines Duet is measured on, about 10 µs each.
 */
export class StackingBuffer {
  private bytes = new ArrayBuffer(0);

  /** A zero-based view of `length` elements of the type `kind`, valid until the next `take`. */
  take<T extends StackData>(
    kind: new (buffer: ArrayBuffer, offset: number, length: number) => T,
    length: number,
  ): T {
    const width = (kind as unknown as { BYTES_PER_ELEMENT: number }).BYTES_PER_ELEMENT;
    if (this.bytes.byteLength < length * width) this.bytes = new ArrayBuffer(length * width);
    return new kind(this.bytes, 0, length);
  }
}

/**
 * Reads rows `rows` of a 2-D float tensor of shape `shape` as stored (the embedding table), from the
 * prepared-weight cache when it holds them (a view of its file: no fresh memory).
 */
export function loadRows(
  ctx: LoadContext,
  name: string,
  shape: readonly [number, number],
  rows: Slice,
): RawWeight {
  const cache = ctx.weightCache;
  if (cache === undefined) return ctx.source.readBlock(name, shape, rows);
  const id = `${name}:${shape[0]}[${rows.start}+${rows.count}]|${shape[1]}`;
  const cached = cache.lookupTensor(id, rows.count * shape[1]);
  if (cached !== null) return cached;
  const raw = ctx.source.readBlock(name, shape, rows);
  cache.storeTensor(id, raw);
  return raw;
}

/** Reads a 1-D tensor of `length` elements as float32. */
export function loadVector(ctx: LoadContext, name: string, length: number): Float32Array {
  return toF32(ctx.source.read(name, [length]));
}

/** Converts raw weight data to float32 (a copy for bf16, the same array for f32). */
export function toF32(raw: RawWeight): Float32Array {
  if (raw.dtype === 'f32') return raw.data;
  const out = new Float32Array(raw.data.length);
  bf16ToF32(out, raw.data);
  return out;
}

/** Row and column ranges, as the weight source reads them (re-exported for the layers). */
export type { Slice };

/**
 * Reads rows `take` (all when absent) of a `[rows, k]` linear weight in float, and nothing else of it (an
 * int8 weight is dequantized).
 */
export function loadMatrix(ctx: LoadContext, name: string, rows: number, k: number, take?: Slice): RawWeight {
  const t = take ?? { start: 0, count: rows };
  return asFloat(linearsOf(ctx).readLinear(name, [rows, k], t), t.count, k);
}

function linearsOf(ctx: LoadContext): LinearSource {
  return ctx.linears ?? floatLinearSource(ctx.source);
}

function asFloat(block: LinearBlock, n: number, k: number): RawWeight {
  return block.kind === 'float' ? block.raw : { dtype: 'f32', data: dequantizeInt8(block.weight, n, k) };
}

/** One tensor of a (possibly fused) linear weight: `[rows, k]` in the checkpoint, of which rows `take` are kept. */
export interface LinearPart {
  readonly name: string;
  readonly rows: number;
  /** The rows this rank keeps (column-parallel sharding); all rows when absent. */
  readonly take?: Slice;
}

/**
 * Loads one linear weight from the tensors `parts` (each `[rows_i, k]`), stacked by rows into
 * `[Σ rows_i, k]`: fusing projections that read the same input into one GEMM. `take` keeps a row range
 * of a part (column-parallel: this rank's output features); `cols` keeps a range of the input features
 * (row-parallel: the partial products are summed across ranks afterwards).
 */
export function loadLinear(
  ctx: LoadContext,
  parts: readonly LinearPart[],
  k: number,
  cols?: Slice,
): LinearWeight {
  const cache = ctx.weightCache;
  if (cache === undefined) return readLinear(ctx, parts, k, cols);
  const id = linearId(parts, k, cols);
  const n = parts.reduce((s, p) => s + (p.take?.count ?? p.rows), 0);
  const cached = cache.lookup(id, n, cols?.count ?? k);
  if (cached !== null) return cached;
  const w = readLinear(ctx, parts, k, cols);
  cache.store(id, w);
  return w;
}

/** A linear weight's id in the prepared-weight cache: its parts, their kept rows and the kept columns. */
function linearId(parts: readonly LinearPart[], k: number, cols: Slice | undefined): string {
  const range = (s: Slice | undefined) => (s ? `[${s.start}+${s.count}]` : '');
  return `${parts.map((p) => `${p.name}:${p.rows}${range(p.take)}`).join(',')}|${k}${range(cols)}`;
}

/** `loadLinear` without the cache: reads the parts and has the kernels prepare them. */
function readLinear(ctx: LoadContext, parts: readonly LinearPart[], k: number, cols?: Slice): LinearWeight {
  // Each part's block: its kept rows × the kept input features.
  const linears = linearsOf(ctx);
  const counts = parts.map((p) => p.take?.count ?? p.rows);
  const n = counts.reduce((s, c) => s + c, 0);
  const width = cols?.count ?? k;
  const read = (p: LinearPart, staged: boolean) =>
    linears.readLinear(p.name, [p.rows, k], p.take ?? { start: 0, count: p.rows }, cols, staged);
  if (parts.length === 1) {
    // Staged: read into the source's reused buffer and copied into the kernels' memory from there (every
    // kernel set's prepare copies: the wasm arena packs it, oneDNN reorders it, the reference copies it).
    const block = read(parts[0]!, true);
    return block.kind === 'int8'
      ? ctx.kernels.prepareInt8Linear(block.weight, n, width)
      : ctx.kernels.prepareLinear(block.raw, n, width, ctx.weightDType);
  }
  // Several parts (fused projections): each is read staged and copied at once into its rows of one
  // stacked array of the first part's kind (the context's stacking buffer: every kernel set's prepare
  // copies), so the parts need no arrays of their own.
  const stacked = { data: null as StackData | null, offset: 0, complete: true };
  const blocks = parts.map((p, i) => {
    const b = read(p, true);
    const data = b.kind === 'int8' ? b.weight.data : b.raw.data;
    if (i === 0) {
      const kind = data.constructor as new (buffer: ArrayBuffer, offset: number, length: number) => StackData;
      stacked.data =
        ctx.stacking?.take(kind, n * width) ??
        new (kind as unknown as new (n: number) => StackData)(n * width);
    }
    const into = stacked.data!;
    const at = stacked.offset;
    stacked.offset += data.length;
    if (into.constructor !== data.constructor) {
      // A part of another kind (e.g. an int8 part beside a float one): its own copy.
      stacked.complete = false;
      return ownBlock(b);
    }
    into.set(data as never, at);
    return viewBlock(b, into.subarray(at, at + data.length));
  });
  const all = stacked.complete ? stacked.data! : null;
  if (blocks.every((b) => b.kind === 'int8')) {
    const weights = blocks.map((b) => b.weight);
    return ctx.kernels.prepareInt8Linear(
      stackInt8(weights, parts, n * width, all instanceof Int8Array ? all : undefined),
      n,
      width,
    );
  }
  if (all !== null && !(all instanceof Int8Array)) {
    const raw: RawWeight =
      all instanceof Uint16Array ? { dtype: 'bf16', data: all } : { dtype: 'f32', data: all };
    return ctx.kernels.prepareLinear(raw, n, width, ctx.weightDType);
  }
  // Float, or a fused weight whose parts differ (an int8 part beside a float one): float throughout.
  const raws = blocks.map((b, i) => asFloat(b, counts[i]!, width));
  return ctx.kernels.prepareLinear(stackRows(raws, n * width), n, width, ctx.weightDType);
}

/** The arrays a fused weight's parts are stacked into: int8, bf16 bits or float32. */
type StackData = Int8Array | Uint16Array | Float32Array;

/** `b` with its data replaced by `data` (the same values, in the stacked array). */
function viewBlock(b: LinearBlock, data: StackData): LinearBlock {
  if (b.kind === 'int8')
    return { kind: 'int8', weight: { data: data as Int8Array, scheme: b.weight.scheme } };
  return b.raw.dtype === 'bf16'
    ? { kind: 'float', raw: { dtype: 'bf16', data: data as Uint16Array } }
    : { kind: 'float', raw: { dtype: 'f32', data: data as Float32Array } };
}

/** `b` with a copy of its data (out of a staging buffer that the next read reuses). */
function ownBlock(b: LinearBlock): LinearBlock {
  return viewBlock(b, (b.kind === 'int8' ? b.weight.data : b.raw.data).slice());
}

/**
 * Concatenates int8 weights (row-major) into one, with their per-channel scales. Parts fused into one
 * GEMM share its activation quantization, so static parts must share input scale and offset (true of
 * projections that read the same input, calibrated on it), dynamic parts their group size, and dynamic
 * and static parts cannot mix.
 */
export function stackInt8(
  weights: readonly Int8LinearData[],
  parts: readonly LinearPart[],
  total: number,
  /** The weights' data already stacked (by `loadLinear`); copied here when absent. */
  stackedData?: Int8Array,
): Int8LinearData {
  if (weights.length === 1) return weights[0]!;
  let data = stackedData;
  if (data === undefined) {
    data = new Int8Array(total);
    let o = 0;
    for (const w of weights) {
      data.set(w.data, o);
      o += w.data.length;
    }
  }
  const names = parts.map((p) => `"${p.name}"`).join(', ');
  const schemes = weights.map((w) => w.scheme);
  const dynamic = schemes.flatMap((x) => (x.kind === 'dynamic' ? [x] : []));
  const statics = schemes.flatMap((x) => (x.kind === 'static' ? [x] : []));
  if (dynamic.length === schemes.length) {
    const groupSize = dynamic[0]!.groupSize;
    if (dynamic.some((x) => x.groupSize !== groupSize)) {
      throw new Int8WeightError(
        `${names} are fused into one GEMM, so their activations must be quantized alike ` +
          `(groups of ${dynamic.map((x) => x.groupSize ?? 'k (per token)').join(', ')})`,
      );
    }
    const weightScale = concat(dynamic.map((x) => x.weightScale));
    return {
      data,
      scheme:
        groupSize === undefined
          ? { kind: 'dynamic', weightScale }
          : { kind: 'dynamic', weightScale, groupSize },
    };
  }
  if (statics.length !== schemes.length) {
    throw new Int8WeightError(`${names} are fused into one GEMM but mix dynamic and static int8 activations`);
  }
  const first = statics[0]!;
  if (statics.some((x) => x.inputScale !== first.inputScale || x.inputOffset !== first.inputOffset)) {
    throw new Int8WeightError(
      `${names} are fused into one GEMM, so their static activation quantization must agree ` +
        `(input_scale ${first.inputScale}, input_offset ${first.inputOffset} for the first part)`,
    );
  }
  return {
    data,
    scheme: {
      kind: 'static',
      inputScale: first.inputScale,
      inputOffset: first.inputOffset,
      quantBias: concat(statics.map((x) => x.quantBias)),
      deqScale: concat(statics.map((x) => x.deqScale)),
    },
  };
}

/** Concatenates typed arrays of one kind. */
function concat<T extends Float32Array | Int32Array>(arrays: readonly T[]): T {
  const total = arrays.reduce((s, a) => s + a.length, 0);
  const out = new (arrays[0]!.constructor as new (n: number) => T)(total);
  let o = 0;
  for (const a of arrays) {
    out.set(a, o);
    o += a.length;
  }
  return out;
}

/** Concatenates raw matrices (row-major) into one, keeping bf16 when every part is bf16. */
export function stackRows(raws: readonly RawWeight[], total: number): RawWeight {
  if (raws.length === 1) return raws[0]!;
  if (raws.every((r) => r.dtype === 'bf16')) {
    const data = new Uint16Array(total);
    let o = 0;
    for (const r of raws) {
      data.set(r.data, o);
      o += r.data.length;
    }
    return { dtype: 'bf16', data };
  }
  const data = new Float32Array(total);
  let o = 0;
  for (const r of raws) {
    data.set(toF32(r), o);
    o += r.data.length;
  }
  return { dtype: 'f32', data };
}

/** Transposes a raw `[rows, cols]` matrix to `[cols, rows]`, keeping its dtype. */
export function transposeRaw(raw: RawWeight, rows: number, cols: number): RawWeight {
  if (raw.dtype === 'bf16') {
    const out = new Uint16Array(rows * cols);
    for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = raw.data[r * cols + c]!;
    return { dtype: 'bf16', data: out };
  }
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = raw.data[r * cols + c]!;
  return { dtype: 'f32', data: out };
}

/** Rows [start, start + count) of a raw `[rows, k]` matrix (a view, no copy). */
export function sliceRows(raw: RawWeight, k: number, start: number, count: number): RawWeight {
  if (raw.dtype === 'bf16') return { dtype: 'bf16', data: raw.data.subarray(start * k, (start + count) * k) };
  return { dtype: 'f32', data: raw.data.subarray(start * k, (start + count) * k) };
}
