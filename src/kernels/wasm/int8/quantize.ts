// Activation quantization for the int8 GEMM, one row (token) at a time, written in the GEMM's activation
// layout: each row is ceil(k/4) quads of 8 bytes (the k steps past k are zero).
//   split = 0 ("i16" form): a quad holds 4 int16 values in the order q[k0], q[k2], q[k1], q[k3] (the
//     even pair, then the odd pair, for gemm-i8.ts's i32x4.dot_i16x8_s on the weights' even and odd bytes).
//   split = 1 ("split" form, relaxed dynamic path): u = q + 127 ∈ [0, 254] is written as two 7-bit
//     parts lo = min(u, 127) and hi = u − lo, both in [0, 127]: a quad holds lo[k0..k3] then hi[k0..k3]
//     as bytes, so that i32x4.relaxed_dot_i8x16_i7x16_add_s (whose second operand must lie in [0, 127]
//     for a result that is the same on every machine) computes Σ w·(lo + hi) = Σ w·q + 127·Σ w exactly.
// Formulas (float32 arithmetic, round half to even, as the reference twin in
// src/kernels/int8-quant.ts):
//   dynamic (vLLM per-token symmetric): amax = max|x[r, :]|, scale[r] = amax / 127,
//     q = clamp(round(x · (127 / amax)), −127, 127) (all 0 when amax is 0); per token and group of k
//     (quant_dynamic_group): the same over each group's values, one scale per group
//   static (Ascend ModelSlim per-tensor): q = clamp(round(x · invScale + offset), −128, 127)

/** Quantizes one value in float32 arithmetic: round half to even of x·inv + offset, clamped. */
function quantOne(x: f32, inv: f32, offset: f32, lo: f32, hi: f32): i32 {
  const t = f32.min(f32.max(f32.nearest(x * inv + offset), lo), hi);
  // NaN (a NaN or infinite input) quantizes to 0, as i32x4.trunc_sat_f32x4_s does in the vector path.
  return f32.ne(t, t) ? 0 : <i32>t;
}

/** One quad (4 values, the tail zero-padded) as an i32x4 of quantized values. */
function quantQuad(row: usize, kk: i32, k: i32, inv: f32, offset: f32, lo: f32, hi: f32): v128 {
  if (kk + 4 <= k) {
    const x = v128.load(row + ((<usize>kk) << 2));
    const t = f32x4.nearest(f32x4.add(f32x4.mul(x, f32x4.splat(inv)), f32x4.splat(offset)));
    return i32x4.trunc_sat_f32x4_s(f32x4.min(f32x4.max(t, f32x4.splat(lo)), f32x4.splat(hi)));
  }
  let v = i32x4.splat(0);
  const p = row + ((<usize>kk) << 2);
  if (kk < k) v = i32x4.replace_lane(v, 0, quantOne(load<f32>(p), inv, offset, lo, hi));
  if (kk + 1 < k) v = i32x4.replace_lane(v, 1, quantOne(load<f32>(p, 4), inv, offset, lo, hi));
  if (kk + 2 < k) v = i32x4.replace_lane(v, 2, quantOne(load<f32>(p, 8), inv, offset, lo, hi));
  return v;
}

/** Writes one row's quads at `d` from the f32 row at `row`. */
function quantRow(d: usize, row: usize, k: i32, inv: f32, offset: f32, lo: f32, hi: f32, split: i32): void {
  const seven = i32x4.splat(127);
  for (let kk = 0; kk < k; kk += 4) {
    const q = quantQuad(row, kk, k, inv, offset, lo, hi);
    if (split) {
      const u = i32x4.add(q, seven);
      const a = i32x4.min_s(u, seven);
      const b = i32x4.sub(u, a);
      const h = i16x8.narrow_i32x4_s(a, b);
      v128.store64_lane(d, i8x16.narrow_i16x8_s(h, h), 0);
    } else {
      const p = v128.shuffle<i32>(q, q, 0, 2, 1, 3);
      v128.store64_lane(d, i16x8.narrow_i32x4_s(p, p), 0);
    }
    d += 8;
  }
}

/** Stores amax / 127 of the `k` f32 values at `src` in `scale`; returns 127 / amax (0 when amax is 0). */
function invOf(src: usize, k: i32, scale: usize): f32 {
  let amax = f32x4.splat(0);
  let kk = 0;
  for (; kk + 4 <= k; kk += 4) amax = f32x4.max(amax, f32x4.abs(v128.load(src + ((<usize>kk) << 2))));
  let a = f32.max(
    f32.max(f32x4.extract_lane(amax, 0), f32x4.extract_lane(amax, 1)),
    f32.max(f32x4.extract_lane(amax, 2), f32x4.extract_lane(amax, 3)),
  );
  for (; kk < k; kk++) a = f32.max(a, f32.abs(load<f32>(src + ((<usize>kk) << 2))));
  store<f32>(scale, a / 127);
  return a > 0 ? <f32>127 / a : 0;
}

/**
 * Dynamic per-token quantization. `xq`: [m, ceil(k/4)·8] bytes (the form chosen by `split`);
 * `scales`: [m] f32 (amax / 127 per row); `x`: [m, k] f32, rows `ldx` bytes apart.
 */
export function quant_dynamic(
  xq: usize,
  scales: usize,
  x: usize,
  m: i32,
  k: i32,
  ldx: i32,
  split: i32,
): void {
  const rowBytes = (<usize>((k + 3) >> 2)) << 3;
  for (let r = 0; r < m; r++) {
    const row = x + <usize>r * <usize>ldx;
    const inv = invOf(row, k, scales + ((<usize>r) << 2));
    quantRow(xq + <usize>r * rowBytes, row, k, inv, 0, -127, 127, split);
  }
}

/**
 * Static per-tensor quantization with a zero point (`invScale` = 1 / input_scale, `offset` =
 * input_offset). `xq`: [m, ceil(k/4)·8] bytes in the i16 form; `x`: [m, k] f32, rows `ldx` bytes apart.
 */
export function quant_static(
  xq: usize,
  x: usize,
  m: i32,
  k: i32,
  ldx: i32,
  invScale: f32,
  offset: f32,
): void {
  const rowBytes = (<usize>((k + 3) >> 2)) << 3;
  for (let r = 0; r < m; r++) {
    quantRow(xq + <usize>r * rowBytes, x + <usize>r * <usize>ldx, k, invScale, offset, -128, 127, 0);
  }
}

/**
 * Dynamic per-token-group quantization: each group of `groupSize` values of a row (a multiple of 4; the
 * last group may be shorter) gets its own scale, as quant_dynamic gives a row one. `xq`: [m, ceil(k/4)·8]
 * bytes in the i16 form (a group's quads are consecutive); `scales`: [m, ceil(k / groupSize)] f32;
 * `x`: [m, k] f32, rows `ldx` bytes apart.
 */
export function quant_dynamic_group(
  xq: usize,
  scales: usize,
  x: usize,
  m: i32,
  k: i32,
  ldx: i32,
  groupSize: i32,
): void {
  const rowBytes = (<usize>((k + 3) >> 2)) << 3;
  const ng = (k + groupSize - 1) / groupSize;
  for (let r = 0; r < m; r++) {
    const row = x + <usize>r * <usize>ldx;
    const d = xq + <usize>r * rowBytes;
    for (let g = 0; g < ng; g++) {
      const c0 = g * groupSize;
      const len = min(groupSize, k - c0);
      const src = row + ((<usize>c0) << 2);
      const inv = invOf(src, len, scales + ((<usize>(r * ng + g)) << 2));
      quantRow(d + ((<usize>(c0 >> 2)) << 3), src, len, inv, 0, -127, 127, 0);
    }
  }
}
