// The int8 GEMM/GEMV with activation scales per token and group of k (W8A8 with per-token-group dynamic
// activations, as vLLM's block-int8 W8A8 quantizes them): for each group g of gq quads (G = 4·gq k
// values; the last group may be shorter),
//   out[r, c] = f32(Σ_g f32(acc[r, c, g]) · gScale[r, g]) · colScale[c],
// acc[r, c, g] = Σ_{k∈g} xq[r, k] · w[c, k] in int32, the float sum taken in group order (mul then add,
// no fused multiply-add: the reference twin in src/kernels/int8-quant.ts gives the same bits). The
// per-token kernel (gemm-i8.ts) is left as it is; this one takes the i16 activation form only (quantize.ts,
// split = 0), the same weight panels, and runs one group's int32 sums at a time before folding them into
// float accumulators. Every tile widens the weights at 256 times their value (gemm-i8.ts's scaled
// widening), exact since a group is at most 64 quads.
//
// Layouts (byte addresses), as gemm-i8.ts except:
//   gScale: [m, ng] f32 (ng = ceil(kq / gq)): row r's scales ldg bytes apart from row r − 1's
//   no colAdd (symmetric activations, the i16 form needs none)

import { dot16, evenI16x256, lane, oddI16x256, ROW_BLOCK_BYTES, rowOut } from './gemm-i8';

/** f + f32(acc) · s (f32x4 lanes): one group's sums folded into a float accumulator. */
function fold(f: v128, acc: v128, s: v128): v128 {
  return f32x4.add(f, f32x4.mul(f32x4.convert_i32x4_s(acc), s));
}

/** Stores one row's 8 float sums (columns 0..3 in `a`, 4..7 in `b`) times the column scales, at `o`. */
function storeScaled(o: usize, a: v128, b: v128, cs: usize, ncols: i32): void {
  const lo = f32x4.mul(a, v128.load(cs));
  const hi = f32x4.mul(b, v128.load(cs, 16));
  if (ncols === 8) {
    v128.store(o, lo);
    v128.store(o, hi, 16);
  } else {
    for (let j = 0; j < ncols; j++) store<f32>(o + ((<usize>j) << 2), lane(lo, hi, j));
  }
}

/** out[0..8) += f32(acc) · s for one row's 8 columns (`a`: columns 0..3, `b`: 4..7) kept at `o`. */
function foldInto(o: usize, a: v128, b: v128, s: v128): void {
  v128.store(o, fold(v128.load(o), i32x4.shr_s(a, 8), s));
  v128.store(o, fold(v128.load(o, 16), i32x4.shr_s(b, 8), s), 16);
}

/** out[0..8) *= the column scales, for one row. */
function scaleRow(o: usize, cs: usize): void {
  v128.store(o, f32x4.mul(v128.load(o), v128.load(cs)));
  v128.store(o, f32x4.mul(v128.load(o, 16), v128.load(cs, 16)), 16);
}

/**
 * 4 rows × all 8 columns of one panel (a full panel: the float sums are kept in the output rows, which
 * leaves the registers to the int32 sums; a panel narrower than 8 takes groupTile1). `gs`: row r's first
 * group scale; rows `ldg` bytes apart. The weights are widened at 256 times their value (one instruction
 * each, see gemm-i8.ts's SCALED_BLOCK_QUADS; a group of ≤ 64 quads stays within int32), each group's
 * sums shifted back before they are folded.
 */
function groupTile4(
  o: usize,
  ldo: usize,
  x: usize,
  rowBytes: usize,
  wp: usize,
  kq: i32,
  gq: i32,
  gs: usize,
  ldg: usize,
  cs: usize,
): void {
  const zero = f32x4.splat(0);
  for (let r: usize = 0; r < 4; r++) {
    v128.store(o + r * ldo, zero);
    v128.store(o + r * ldo, zero, 16);
  }
  // Pointers walk the panel and the rows (few live values, so that the loop keeps them in registers).
  const wEnd = wp + ((<usize>kq) << 5);
  let wq = wp;
  let xp = x;
  let g = gs;
  while (wq < wEnd) {
    const wGroupEnd = min(wEnd, wq + ((<usize>gq) << 5));
    let a0 = i32x4.splat(0);
    let b0 = a0;
    let a1 = a0;
    let b1 = a0;
    let a2 = a0;
    let b2 = a0;
    let a3 = a0;
    let b3 = a0;
    for (; wq < wGroupEnd; wq += 32, xp += 8) {
      const w0 = v128.load(wq);
      const w1 = v128.load(wq, 16);
      const e0 = evenI16x256(w0);
      const o0 = oddI16x256(w0);
      const e1 = evenI16x256(w1);
      const o1 = oddI16x256(w1);
      let xr = xp;
      let xe = v128.load32_splat(xr);
      let xd = v128.load32_splat(xr, 4);
      a0 = dot16(e0, o0, xe, xd, a0);
      b0 = dot16(e1, o1, xe, xd, b0);
      xr += rowBytes;
      xe = v128.load32_splat(xr);
      xd = v128.load32_splat(xr, 4);
      a1 = dot16(e0, o0, xe, xd, a1);
      b1 = dot16(e1, o1, xe, xd, b1);
      xr += rowBytes;
      xe = v128.load32_splat(xr);
      xd = v128.load32_splat(xr, 4);
      a2 = dot16(e0, o0, xe, xd, a2);
      b2 = dot16(e1, o1, xe, xd, b2);
      xr += rowBytes;
      xe = v128.load32_splat(xr);
      xd = v128.load32_splat(xr, 4);
      a3 = dot16(e0, o0, xe, xd, a3);
      b3 = dot16(e1, o1, xe, xd, b3);
    }
    foldInto(o, a0, b0, v128.load32_splat(g));
    foldInto(o + ldo, a1, b1, v128.load32_splat(g + ldg));
    foldInto(o + 2 * ldo, a2, b2, v128.load32_splat(g + 2 * ldg));
    foldInto(o + 3 * ldo, a3, b3, v128.load32_splat(g + 3 * ldg));
    g += 4;
  }
  scaleRow(o, cs);
  scaleRow(o + ldo, cs);
  scaleRow(o + 2 * ldo, cs);
  scaleRow(o + 3 * ldo, cs);
}

/** 1 row × 8 columns of one panel (scaled widening, see gemm-i8.ts's SCALED_BLOCK_QUADS: a group is ≤ 64 quads). */
function groupTile1(o: usize, x: usize, wp: usize, kq: i32, gq: i32, gs: usize, cs: usize, ncols: i32): void {
  let f0 = f32x4.splat(0);
  let h0 = f0;
  let g = gs;
  for (let q0 = 0; q0 < kq; q0 += gq) {
    const q1 = min(kq, q0 + gq);
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
    const s = v128.load32_splat(g);
    f0 = fold(f0, i32x4.shr_s(a0, 8), s);
    h0 = fold(h0, i32x4.shr_s(b0, 8), s);
    g += 4;
  }
  storeScaled(o, f0, h0, cs, ncols);
}

/** 1 row × two panels at once (`wp`, `wp2`: columns c0 and c0 + 8), as gemm-i8.ts's wideTile1x2. */
function groupTile1x2(
  o: usize,
  x: usize,
  wp: usize,
  wp2: usize,
  kq: i32,
  gq: i32,
  gs: usize,
  cs: usize,
  ncols2: i32,
): void {
  let f0 = f32x4.splat(0);
  let h0 = f0;
  let f1 = f0;
  let h1 = f0;
  let g = gs;
  for (let q0 = 0; q0 < kq; q0 += gq) {
    const q1 = min(kq, q0 + gq);
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
    const s = v128.load32_splat(g);
    f0 = fold(f0, i32x4.shr_s(a0, 8), s);
    h0 = fold(h0, i32x4.shr_s(b0, 8), s);
    f1 = fold(f1, i32x4.shr_s(a1, 8), s);
    h1 = fold(h1, i32x4.shr_s(b1, 8), s);
    g += 4;
  }
  storeScaled(o, f0, h0, cs, 8);
  storeScaled(o + 32, f1, h1, cs + 32, ncols2);
}

/**
 * out[r, c] for panels [p0, p1) and rows [r0, r1); see the header. `groupSize`: G, a multiple of 4 in
 * [4, 256] (so a group is at most gemm-i8.ts's SCALED_BLOCK_QUADS quads, within the single-row tiles'
 * int32 range; the caller checks it).
 */
export function gemm_i8_group(
  out: usize,
  xq: usize,
  w: usize,
  gScale: usize,
  colScale: usize,
  n: i32,
  k: i32,
  groupSize: i32,
  p0: i32,
  p1: i32,
  r0: i32,
  r1: i32,
): void {
  const kq = (k + 3) >> 2;
  const gq = groupSize >> 2;
  const ldg = (<usize>((kq + gq - 1) / gq)) << 2;
  const rowBytes = (<usize>kq) << 3;
  const panelBytes = (<usize>kq) << 5;
  const ldo = (<usize>n) << 2;
  const step = 4;
  const block = max(step, (<i32>(ROW_BLOCK_BYTES / rowBytes) / step) * step);
  if (r1 - r0 === 1) {
    const x = xq + <usize>r0 * rowBytes;
    const gs = gScale + <usize>r0 * ldg;
    let p = p0;
    for (; p + 1 < p1; p += 2) {
      const c0 = p << 3;
      const wp = w + <usize>p * panelBytes;
      const cs = colScale + ((<usize>c0) << 2);
      groupTile1x2(rowOut(out, ldo, r0, c0), x, wp, wp + panelBytes, kq, gq, gs, cs, min(8, n - c0 - 8));
    }
    p0 = p;
  }
  for (let b0 = r0; b0 < r1; b0 += block) {
    const b1 = min(r1, b0 + block);
    for (let p = p0; p < p1; p++) {
      const wp = w + <usize>p * panelBytes;
      const c0 = p << 3;
      const ncols = min(8, n - c0);
      const cs = colScale + ((<usize>c0) << 2);
      let r = b0;
      for (; ncols === 8 && r + step <= b1; r += step) {
        const x = xq + <usize>r * rowBytes;
        const gs = gScale + <usize>r * ldg;
        groupTile4(rowOut(out, ldo, r, c0), ldo, x, rowBytes, wp, kq, gq, gs, ldg, cs);
      }
      for (; r < b1; r++) {
        const x = xq + <usize>r * rowBytes;
        groupTile1(rowOut(out, ldo, r, c0), x, wp, kq, gq, gScale + <usize>r * ldg, cs, ncols);
      }
    }
  }
}
