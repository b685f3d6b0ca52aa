// Small data-movement helpers on row-major float32 matrices, used by the layers between kernel calls.

/**
 * Copies columns [colStart, colStart + cols) of `src` ([rows, srcStride]) into `dst` ([rows, dstStride])
 * at column `dstCol`.
 */
export function copyColumns(
  dst: Float32Array,
  dstStride: number,
  dstCol: number,
  src: Float32Array,
  srcStride: number,
  colStart: number,
  rows: number,
  cols: number,
): void {
  for (let r = 0; r < rows; r++) {
    const s = r * srcStride + colStart;
    dst.set(src.subarray(s, s + cols), r * dstStride + dstCol);
  }
}

/** x += y, element-wise over the first `n` elements. */
export function addInPlace(x: Float32Array, y: Float32Array, n = x.length): void {
  for (let i = 0; i < n; i++) x[i] = x[i]! + y[i]!;
}

/** Gathers rows `indices` of `src` ([*, d]) into `dst` ([indices.length, d]). */
export function gatherRows(
  dst: Float32Array,
  src: Float32Array,
  indices: ArrayLike<number>,
  d: number,
): void {
  for (let i = 0; i < indices.length; i++) {
    const s = indices[i]! * d;
    dst.set(src.subarray(s, s + d), i * d);
  }
}
