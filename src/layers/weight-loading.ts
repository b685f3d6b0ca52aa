// Helpers that turn checkpoint tensors into kernel-ready weights, one tensor at a time: norm vectors as
// float32, linear weights (optionally several fused by stacking their rows) prepared by the kernel set.
// A tensor-parallel rank reads only its block of each sharded tensor (`WeightSource.readBlock`).

import type { Kernels, LinearWeight, RawWeight, WeightDType } from '../kernels/kernels.js';
import { bf16ToF32 } from '../kernels/kernels.js';
import type { Slice, WeightSource } from '../loader/weight-source.js';
import type { Scratch } from './scratch.js';

/** Where a layer loads from and how its linear weights are kept. */
export interface LoadContext {
  readonly source: WeightSource;
  readonly kernels: Kernels;
  /** Storage dtype of linear weights (activations are float32 regardless). */
  readonly weightDType: WeightDType;
  /** Activation scratch shared by the layers of one model (a layer makes its own when absent). */
  readonly scratch?: Scratch;
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

/** Reads rows `take` (all when absent) of a `[rows, k]` matrix, and nothing else of it. */
export function loadMatrix(ctx: LoadContext, name: string, rows: number, k: number, take?: Slice): RawWeight {
  return ctx.source.readBlock(name, [rows, k], take ?? { start: 0, count: rows });
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
  // Each part's block: its kept rows × the kept input features.
  const raws = parts.map((p) =>
    ctx.source.readBlock(p.name, [p.rows, k], p.take ?? { start: 0, count: p.rows }, cols),
  );
  const n = parts.reduce((s, p) => s + (p.take?.count ?? p.rows), 0);
  const width = cols?.count ?? k;
  return ctx.kernels.prepareLinear(stackRows(raws, n * width), n, width, ctx.weightDType);
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
