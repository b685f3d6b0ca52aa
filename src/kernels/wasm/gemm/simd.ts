// Small SIMD helpers shared by the GEMM micro-kernels: the multiply-add that becomes one fused
// instruction in the relaxed-SIMD build, bf16 widening, and tile stores that handle a partial last panel.

/** c + a·b, fused (f32x4.relaxed_madd) in the relaxed build, a separate multiply and add otherwise. */
export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(f32x4.mul(a, b), c);
}

/**
 * Widens the even bf16 halves of a packed bf16 vector (columns 0..3 of an interleaved panel row) to f32:
 * a bf16 is the top half of an f32, so shifting the 32-bit lane left by 16 is exact.
 */
export function bf16Lo(v: v128): v128 {
  return i32x4.shl(v, 16);
}

/** Widens the odd bf16 halves (columns 4..7 of an interleaved panel row): they already sit on top. */
export function bf16Hi(v: v128): v128 {
  return v128.and(v, i32x4.splat(0xffff0000));
}

/**
 * Stores one tile row of 8 columns (`lo`: columns 0..3, `hi`: 4..7) at `o`, adding what is there when
 * `accumulate`, writing only the first `ncols` columns (the last panel of an n that is not a multiple of 8).
 */
export function storeRow(o: usize, lo: v128, hi: v128, accumulate: bool, ncols: i32): void {
  if (ncols === 8) {
    if (accumulate) {
      lo = f32x4.add(lo, v128.load(o));
      hi = f32x4.add(hi, v128.load(o, 16));
    }
    v128.store(o, lo);
    v128.store(o, hi, 16);
  } else {
    storePartialRow(o, lo, hi, accumulate, ncols);
  }
}

/** The slow path of `storeRow`: lane by lane, for fewer than 8 columns. */
function storePartialRow(o: usize, lo: v128, hi: v128, accumulate: bool, ncols: i32): void {
  storeLane(o, 0, f32x4.extract_lane(lo, 0), accumulate, ncols);
  storeLane(o, 1, f32x4.extract_lane(lo, 1), accumulate, ncols);
  storeLane(o, 2, f32x4.extract_lane(lo, 2), accumulate, ncols);
  storeLane(o, 3, f32x4.extract_lane(lo, 3), accumulate, ncols);
  storeLane(o, 4, f32x4.extract_lane(hi, 0), accumulate, ncols);
  storeLane(o, 5, f32x4.extract_lane(hi, 1), accumulate, ncols);
  storeLane(o, 6, f32x4.extract_lane(hi, 2), accumulate, ncols);
  storeLane(o, 7, f32x4.extract_lane(hi, 3), accumulate, ncols);
}

function storeLane(o: usize, j: i32, v: f32, accumulate: bool, ncols: i32): void {
  if (j < ncols) {
    const p = o + ((<usize>j) << 2);
    store<f32>(p, accumulate ? load<f32>(p) + v : v);
  }
}
