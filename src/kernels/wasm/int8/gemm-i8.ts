// The int8 GEMM/GEMV: out[r, c] = f32(acc[r, c] + colAdd[c]) · rowScale[r] · colScale[c], where
// acc[r, c] = Σ_k xq[r, k] · w[c, k] in int32, for one thread's share (a range of 8-column panels and a
// range of rows). For each panel the row tiles run back to back, so a decode step (m ≤ 32) reads each
// weight from memory once for all rows (a panel of k ≤ 4096 stays in L1 across the tiles).
//
// Two inner loops, chosen by `split` (the activation form written by quantize.ts):
//   split = 1 (relaxed build, dynamic activations): xq holds the two 7-bit parts of q + 127; two
//     relaxed int8 dots per 16 weights (see dot7) accumulate Σ w·q + 127·Σ w, and colAdd carries
//     −127·Σ_k w[c, k]. Exact on every machine: the second (7-bit) operand is in [0, 127].
//   split = 0 (plain SIMD, and the static zero-point variant everywhere): xq holds int16 values, each
//     quad as (q0, q2, q1, q3); the even and odd bytes of the weights are sign-extended to int16 (each
//     lane pair then holds one column's k0, k2 or k1, k3), and i32x4.dot_i16x8_s against the splat pairs
//     (q0, q2) and (q1, q3) gives each column's sum over the quad in its own lane (exact: |q·w| ≤ 2^14).
//
// Layouts (byte addresses):
//   out: [m, n] f32 row-major
//   xq:  [m, kq, 8] bytes (kq = ceil(k/4)): one quad of 4 k steps per 8 bytes (see quantize.ts)
//   w:   panel p (rows 8p..8p+7 of the [n, k] int8 weight) at w + p·kq·32 as [kq][8 columns][4 k steps],
//        zero past n and past k
//   colAdd: [n] i32 or 0 (none); rowScale: [m] f32; colScale: [n] f32

/** Bytes of quantized activations per row block (half of a 1 MiB L2, the rest for panels and output). */
export const ROW_BLOCK_BYTES: usize = 256 * 1024;

/** Stores row r's 8 i32 sums (columns 0..3 in `a`, 4..7 in `b`), dequantized, at `o`. */
function storeDeq(o: usize, a: v128, b: v128, colAdd: usize, rs: f32, cs: usize, ncols: i32): void {
  if (colAdd !== 0) {
    a = i32x4.add(a, v128.load(colAdd));
    b = i32x4.add(b, v128.load(colAdd, 16));
  }
  const s = f32x4.splat(rs);
  const lo = f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(a), s), v128.load(cs));
  const hi = f32x4.mul(f32x4.mul(f32x4.convert_i32x4_s(b), s), v128.load(cs, 16));
  if (ncols === 8) {
    v128.store(o, lo);
    v128.store(o, hi, 16);
  } else {
    for (let j = 0; j < ncols; j++) store<f32>(o + ((<usize>j) << 2), lane(lo, hi, j));
  }
}

/** Lane j (0..7) of the pair (lo: 0..3, hi: 4..7). */
export function lane(lo: v128, hi: v128, j: i32): f32 {
  switch (j) {
    case 0:
      return f32x4.extract_lane(lo, 0);
    case 1:
      return f32x4.extract_lane(lo, 1);
    case 2:
      return f32x4.extract_lane(lo, 2);
    case 3:
      return f32x4.extract_lane(lo, 3);
    case 4:
      return f32x4.extract_lane(hi, 0);
    case 5:
      return f32x4.extract_lane(hi, 1);
    case 6:
      return f32x4.extract_lane(hi, 2);
    default:
      return f32x4.extract_lane(hi, 3);
  }
}

/**
 * acc + Σ over each lane's 4 bytes of w·x, for x in [0, 127]: the relaxed i8×i7 dot into int16 pair
 * sums (|a·b + c·d| ≤ 2·128·127 = 32512: no saturation, the same on every machine), widened by an
 * int16 dot with ones. Not i32x4.relaxed_dot_i8x16_i7x16_add_s: Node 20's V8 (11.3) compiles that one
 * wrongly on x64 (measured here: it ignores the addend and returns twice the dot).
 */
function dot7(w: v128, x: v128, acc: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) {
    return i32x4.add(acc, i32x4.dot_i16x8_s(i16x8.relaxed_dot_i8x16_i7x16_s(w, x), i16x8.splat(1)));
  }
  return acc;
}

/** dot7 of both parts (lo, hi) of the split form into one accumulator. */
function dot7x2(w: v128, lo: v128, hi: v128, acc: v128): v128 {
  return dot7(w, hi, dot7(w, lo, acc));
}

/** Shared epilogue arguments of one panel. */
export function rowOut(out: usize, ldo: usize, r: i32, c0: i32): usize {
  return out + <usize>r * ldo + ((<usize>c0) << 2);
}

/** Relaxed split form, 4 rows × 8 columns of one panel. */
function splitTile4(
  o: usize,
  ldo: usize,
  x: usize,
  rowBytes: usize,
  wp: usize,
  kq: i32,
  colAdd: usize,
  rs: usize,
  cs: usize,
  ncols: i32,
): void {
  if (ASC_FEATURE_RELAXED_SIMD) {
    let a0 = i32x4.splat(0);
    let b0 = a0;
    let a1 = a0;
    let b1 = a0;
    let a2 = a0;
    let b2 = a0;
    let a3 = a0;
    let b3 = a0;
    const x1 = x + rowBytes;
    const x2 = x1 + rowBytes;
    const x3 = x2 + rowBytes;
    for (let q = 0; q < kq; q++) {
      const wo = wp + ((<usize>q) << 5);
      const xo = (<usize>q) << 3;
      const w0 = v128.load(wo);
      const w1 = v128.load(wo, 16);
      let l = v128.load32_splat(x + xo);
      let h = v128.load32_splat(x + xo, 4);
      a0 = dot7x2(w0, l, h, a0);
      b0 = dot7x2(w1, l, h, b0);
      l = v128.load32_splat(x1 + xo);
      h = v128.load32_splat(x1 + xo, 4);
      a1 = dot7x2(w0, l, h, a1);
      b1 = dot7x2(w1, l, h, b1);
      l = v128.load32_splat(x2 + xo);
      h = v128.load32_splat(x2 + xo, 4);
      a2 = dot7x2(w0, l, h, a2);
      b2 = dot7x2(w1, l, h, b2);
      l = v128.load32_splat(x3 + xo);
      h = v128.load32_splat(x3 + xo, 4);
      a3 = dot7x2(w0, l, h, a3);
      b3 = dot7x2(w1, l, h, b3);
    }
    storeDeq(o, a0, b0, colAdd, load<f32>(rs), cs, ncols);
    storeDeq(o + ldo, a1, b1, colAdd, load<f32>(rs, 4), cs, ncols);
    storeDeq(o + 2 * ldo, a2, b2, colAdd, load<f32>(rs, 8), cs, ncols);
    storeDeq(o + 3 * ldo, a3, b3, colAdd, load<f32>(rs, 12), cs, ncols);
  }
}

/** Relaxed split form, 1 row × 8 columns of one panel. */
function splitTile1(
  o: usize,
  x: usize,
  wp: usize,
  kq: i32,
  colAdd: usize,
  rs: usize,
  cs: usize,
  ncols: i32,
): void {
  if (ASC_FEATURE_RELAXED_SIMD) {
    let a0 = i32x4.splat(0);
    let b0 = a0;
    let a1 = a0;
    let b1 = a0;
    for (let q = 0; q < kq; q++) {
      const wo = wp + ((<usize>q) << 5);
      const xo = x + ((<usize>q) << 3);
      const w0 = v128.load(wo);
      const w1 = v128.load(wo, 16);
      // Two accumulator chains per half: the dots of lo and hi parts do not wait on each other.
      a0 = dot7(w0, v128.load32_splat(xo), a0);
      a1 = dot7(w0, v128.load32_splat(xo, 4), a1);
      b0 = dot7(w1, v128.load32_splat(xo), b0);
      b1 = dot7(w1, v128.load32_splat(xo, 4), b1);
    }
    storeDeq(o, i32x4.add(a0, a1), i32x4.add(b0, b1), colAdd, load<f32>(rs), cs, ncols);
  }
}

/** Sign-extended even bytes of `w` as int16: for a quad vector, [c k0, c k2] for each of its 4 columns. */
function evenI16(w: v128): v128 {
  return i16x8.shr_s(i16x8.shl(w, 8), 8);
}

/** Sign-extended odd bytes of `w` as int16: for a quad vector, [c k1, c k3] for each of its 4 columns. */
function oddI16(w: v128): v128 {
  return i16x8.shr_s(w, 8);
}

/**
 * acc + the 4 columns' sums over one quad: lanes [c k0, c k2] of `we` times the pair (q0, q2) of `xe`
 * plus lanes [c k1, c k3] of `wo` times (q1, q3) of `xo` (|sum| ≤ 4·128·128: exact).
 */
export function dot16(we: v128, wo: v128, xe: v128, xo: v128, acc: v128): v128 {
  return i32x4.add(acc, i32x4.add(i32x4.dot_i16x8_s(we, xe), i32x4.dot_i16x8_s(wo, xo)));
}

/** i16 form, 4 rows × 8 columns of one panel. */
function wideTile4(
  o: usize,
  ldo: usize,
  x: usize,
  rowBytes: usize,
  wp: usize,
  kq: i32,
  colAdd: usize,
  rs: usize,
  cs: usize,
  ncols: i32,
): void {
  let a0 = i32x4.splat(0);
  let b0 = a0;
  let a1 = a0;
  let b1 = a0;
  let a2 = a0;
  let b2 = a0;
  let a3 = a0;
  let b3 = a0;
  const x1 = x + rowBytes;
  const x2 = x1 + rowBytes;
  const x3 = x2 + rowBytes;
  for (let q = 0; q < kq; q++) {
    const wo = wp + ((<usize>q) << 5);
    const xo = (<usize>q) << 3;
    const w0 = v128.load(wo);
    const w1 = v128.load(wo, 16);
    // Columns 0..3 (e0, o0) and 4..7 (e1, o1), even and odd k steps of the quad.
    const e0 = evenI16(w0);
    const o0 = oddI16(w0);
    const e1 = evenI16(w1);
    const o1 = oddI16(w1);
    let xe = v128.load32_splat(x + xo);
    let xd = v128.load32_splat(x + xo, 4);
    a0 = dot16(e0, o0, xe, xd, a0);
    b0 = dot16(e1, o1, xe, xd, b0);
    xe = v128.load32_splat(x1 + xo);
    xd = v128.load32_splat(x1 + xo, 4);
    a1 = dot16(e0, o0, xe, xd, a1);
    b1 = dot16(e1, o1, xe, xd, b1);
    xe = v128.load32_splat(x2 + xo);
    xd = v128.load32_splat(x2 + xo, 4);
    a2 = dot16(e0, o0, xe, xd, a2);
    b2 = dot16(e1, o1, xe, xd, b2);
    xe = v128.load32_splat(x3 + xo);
    xd = v128.load32_splat(x3 + xo, 4);
    a3 = dot16(e0, o0, xe, xd, a3);
    b3 = dot16(e1, o1, xe, xd, b3);
  }
  storeDeq(o, a0, b0, colAdd, load<f32>(rs), cs, ncols);
  storeDeq(o + ldo, a1, b1, colAdd, load<f32>(rs, 4), cs, ncols);
  storeDeq(o + 2 * ldo, a2, b2, colAdd, load<f32>(rs, 8), cs, ncols);
  storeDeq(o + 3 * ldo, a3, b3, colAdd, load<f32>(rs, 12), cs, ncols);
}

/** i16 form, 2 rows × 8 columns of one panel. */
function wideTile2(
  o: usize,
  ldo: usize,
  x: usize,
  rowBytes: usize,
  wp: usize,
  kq: i32,
  colAdd: usize,
  rs: usize,
  cs: usize,
  ncols: i32,
): void {
  let a0 = i32x4.splat(0);
  let b0 = a0;
  let a1 = a0;
  let b1 = a0;
  const x1 = x + rowBytes;
  for (let q = 0; q < kq; q++) {
    const wo = wp + ((<usize>q) << 5);
    const xo = (<usize>q) << 3;
    const w0 = v128.load(wo);
    const w1 = v128.load(wo, 16);
    const e0 = evenI16(w0);
    const o0 = oddI16(w0);
    const e1 = evenI16(w1);
    const o1 = oddI16(w1);
    let xe = v128.load32_splat(x + xo);
    let xd = v128.load32_splat(x + xo, 4);
    a0 = dot16(e0, o0, xe, xd, a0);
    b0 = dot16(e1, o1, xe, xd, b0);
    xe = v128.load32_splat(x1 + xo);
    xd = v128.load32_splat(x1 + xo, 4);
    a1 = dot16(e0, o0, xe, xd, a1);
    b1 = dot16(e1, o1, xe, xd, b1);
  }
  storeDeq(o, a0, b0, colAdd, load<f32>(rs), cs, ncols);
  storeDeq(o + ldo, a1, b1, colAdd, load<f32>(rs, 4), cs, ncols);
}

/**
 * Quads per block of the single-row tiles, which widen the weights' bytes to int16 at 256 times their
 * value (one instruction each instead of two): a lane sums ≤ 4·128·128·256 = 2^24 per quad, so 64 quads
 * stay below 2^31; each block's sums are then divided by 256 (exactly: they are multiples of it) and added
 * to the totals.
 */
export const SCALED_BLOCK_QUADS = 64;

/** Even bytes of `w` at 256 times their value in int16 lanes (see evenI16). */
export function evenI16x256(w: v128): v128 {
  return i16x8.shl(w, 8);
}

/** Odd bytes of `w` at 256 times their value in int16 lanes (see oddI16). */
export function oddI16x256(w: v128): v128 {
  return v128.and(w, i16x8.splat(<i16>0xff00));
}

/** i16 form, 1 row × 8 columns of one panel (scaled widening, see SCALED_BLOCK_QUADS). */
function wideTile1(
  o: usize,
  x: usize,
  wp: usize,
  kq: i32,
  colAdd: usize,
  rs: usize,
  cs: usize,
  ncols: i32,
): void {
  let ta = i32x4.splat(0);
  let tb = ta;
  for (let q0 = 0; q0 < kq; q0 += SCALED_BLOCK_QUADS) {
    const q1 = min(kq, q0 + SCALED_BLOCK_QUADS);
    let a0 = i32x4.splat(0);
    let b0 = a0;
    for (let q = q0; q < q1; q++) {
      const wo = wp + ((<usize>q) << 5);
      const xo = x + ((<usize>q) << 3);
      const w0 = v128.load(wo);
      const w1 = v128.load(wo, 16);
      const xe = v128.load32_splat(xo);
      const xd = v128.load32_splat(xo, 4);
      a0 = dot16(evenI16x256(w0), oddI16x256(w0), xe, xd, a0);
      b0 = dot16(evenI16x256(w1), oddI16x256(w1), xe, xd, b0);
    }
    ta = i32x4.add(ta, i32x4.shr_s(a0, 8));
    tb = i32x4.add(tb, i32x4.shr_s(b0, 8));
  }
  storeDeq(o, ta, tb, colAdd, load<f32>(rs), cs, ncols);
}

/**
 * i16 form, 1 row × two panels at once (`wp`, `wp2`: their columns c0 and c0 + 8): a GEMV reads memory
 * faster over two weight streams than over one. Scaled widening (see SCALED_BLOCK_QUADS).
 */
function wideTile1x2(
  o: usize,
  x: usize,
  wp: usize,
  wp2: usize,
  kq: i32,
  colAdd: usize,
  rs: usize,
  cs: usize,
  ncols2: i32,
): void {
  let ta0 = i32x4.splat(0);
  let tb0 = ta0;
  let ta1 = ta0;
  let tb1 = ta0;
  for (let q0 = 0; q0 < kq; q0 += SCALED_BLOCK_QUADS) {
    const q1 = min(kq, q0 + SCALED_BLOCK_QUADS);
    let a0 = i32x4.splat(0);
    let b0 = a0;
    let a1 = a0;
    let b1 = a0;
    for (let q = q0; q < q1; q++) {
      const wo = (<usize>q) << 5;
      const xo = x + ((<usize>q) << 3);
      const xe = v128.load32_splat(xo);
      const xd = v128.load32_splat(xo, 4);
      const w0 = v128.load(wp + wo);
      const w1 = v128.load(wp + wo, 16);
      const u0 = v128.load(wp2 + wo);
      const u1 = v128.load(wp2 + wo, 16);
      a0 = dot16(evenI16x256(w0), oddI16x256(w0), xe, xd, a0);
      b0 = dot16(evenI16x256(w1), oddI16x256(w1), xe, xd, b0);
      a1 = dot16(evenI16x256(u0), oddI16x256(u0), xe, xd, a1);
      b1 = dot16(evenI16x256(u1), oddI16x256(u1), xe, xd, b1);
    }
    ta0 = i32x4.add(ta0, i32x4.shr_s(a0, 8));
    tb0 = i32x4.add(tb0, i32x4.shr_s(b0, 8));
    ta1 = i32x4.add(ta1, i32x4.shr_s(a1, 8));
    tb1 = i32x4.add(tb1, i32x4.shr_s(b1, 8));
  }
  const s = load<f32>(rs);
  storeDeq(o, ta0, tb0, colAdd, s, cs, 8);
  storeDeq(o + 32, ta1, tb1, colAdd === 0 ? 0 : colAdd + 32, s, cs + 32, ncols2);
}

/** Relaxed split form, 1 row × two panels at once (see wideTile1x2). */
function splitTile1x2(
  o: usize,
  x: usize,
  wp: usize,
  wp2: usize,
  kq: i32,
  colAdd: usize,
  rs: usize,
  cs: usize,
  ncols2: i32,
): void {
  if (ASC_FEATURE_RELAXED_SIMD) {
    let a0 = i32x4.splat(0);
    let b0 = a0;
    let a1 = a0;
    let b1 = a0;
    for (let q = 0; q < kq; q++) {
      const wo = (<usize>q) << 5;
      const xo = x + ((<usize>q) << 3);
      const l = v128.load32_splat(xo);
      const h = v128.load32_splat(xo, 4);
      a0 = dot7x2(v128.load(wp + wo), l, h, a0);
      b0 = dot7x2(v128.load(wp + wo, 16), l, h, b0);
      a1 = dot7x2(v128.load(wp2 + wo), l, h, a1);
      b1 = dot7x2(v128.load(wp2 + wo, 16), l, h, b1);
    }
    const s = load<f32>(rs);
    storeDeq(o, a0, b0, colAdd, s, cs, 8);
    storeDeq(o + 32, a1, b1, colAdd === 0 ? 0 : colAdd + 32, s, cs + 32, ncols2);
  }
}

/**
 * out[r, c] for panels [p0, p1) and rows [r0, r1); see the header for the formula and layouts.
 * `split`: 1 for the relaxed split form (relaxed build only), 0 for the i16 form.
 */
export function gemm_i8(
  out: usize,
  xq: usize,
  w: usize,
  colAdd: usize,
  rowScale: usize,
  colScale: usize,
  n: i32,
  k: i32,
  p0: i32,
  p1: i32,
  r0: i32,
  r1: i32,
  split: i32,
): void {
  const kq = (k + 3) >> 2;
  const rowBytes = (<usize>kq) << 3;
  const panelBytes = (<usize>kq) << 5;
  const ldo = (<usize>n) << 2;
  const step = 4;
  // Rows go in blocks whose activations stay in L2 while every panel passes over them; a decode batch
  // (m ≤ 32 for k ≤ 4096) is one block, so its weights stream from memory once.
  const block = max(step, (<i32>(ROW_BLOCK_BYTES / rowBytes) / step) * step);
  if (r1 - r0 === 1) {
    // A single row (a GEMV): two panels at a time.
    const x = xq + <usize>r0 * rowBytes;
    const rs = rowScale + ((<usize>r0) << 2);
    let p = p0;
    for (; p + 1 < p1; p += 2) {
      const c0 = p << 3;
      const o = rowOut(out, ldo, r0, c0);
      const wp = w + <usize>p * panelBytes;
      const ca = colAdd === 0 ? 0 : colAdd + ((<usize>c0) << 2);
      const cs = colScale + ((<usize>c0) << 2);
      const ncols2 = min(8, n - c0 - 8);
      if (split) splitTile1x2(o, x, wp, wp + panelBytes, kq, ca, rs, cs, ncols2);
      else wideTile1x2(o, x, wp, wp + panelBytes, kq, ca, rs, cs, ncols2);
    }
    p0 = p;
  }
  for (let b0 = r0; b0 < r1; b0 += block) {
    const b1 = min(r1, b0 + block);
    for (let p = p0; p < p1; p++) {
      const wp = w + <usize>p * panelBytes;
      const c0 = p << 3;
      const ncols = min(8, n - c0);
      const ca = colAdd === 0 ? 0 : colAdd + ((<usize>c0) << 2);
      const cs = colScale + ((<usize>c0) << 2);
      let r = b0;
      for (; r + step <= b1; r += step) {
        const o = rowOut(out, ldo, r, c0);
        const x = xq + <usize>r * rowBytes;
        const rs = rowScale + ((<usize>r) << 2);
        if (split) splitTile4(o, ldo, x, rowBytes, wp, kq, ca, rs, cs, ncols);
        else wideTile4(o, ldo, x, rowBytes, wp, kq, ca, rs, cs, ncols);
      }
      if (!split && r + 2 <= b1) {
        const o = rowOut(out, ldo, r, c0);
        const x = xq + <usize>r * rowBytes;
        wideTile2(o, ldo, x, rowBytes, wp, kq, ca, rowScale + ((<usize>r) << 2), cs, ncols);
        r += 2;
      }
      for (; r < b1; r++) {
        const o = rowOut(out, ldo, r, c0);
        const x = xq + <usize>r * rowBytes;
        const rs = rowScale + ((<usize>r) << 2);
        if (split) splitTile1(o, x, wp, kq, ca, rs, cs, ncols);
        else wideTile1(o, x, wp, kq, ca, rs, cs, ncols);
      }
    }
  }
}
