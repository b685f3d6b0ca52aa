// GEMM micro-kernels: one tile of `mr` rows of x (mr = 1..4) by one 8-column weight panel, over `kc`
// steps of k. The accumulators stay in registers for the whole k loop (4×8 = 8 f32x4 accumulators: more
// spills registers in V8, which has 16 vector registers on x64).
//
// Layouts (byte addresses into the shared memory):
//   xp: packed activations, [kc][mr] f32 (row r of step kk at xp + (kk·mr + r)·4)
//   w:  weight panel, [kc][8] of W: f32 columns 0..7 in order, or bf16 interleaved as columns
//       0,4,1,5,2,6,3,7 so that a 32-bit lane's low half is column j and its high half column j+4
//   o:  output tile, mr rows of `ldo` bytes; only the first `ncols` (1..8) columns are written
// With `accumulate` the tile is added to what `o` holds (the k-blocks after the first).

import { bf16Hi, bf16Lo, madd, storeRow } from './simd';

/** Columns 0..3 of the panel row at `w`, as f32. */
function wLo<W>(w: usize): v128 {
  if (sizeof<W>() === 4) return v128.load(w);
  return bf16Lo(v128.load(w));
}

/** Columns 4..7 of the panel row at `w`, as f32. */
function wHi<W>(w: usize): v128 {
  if (sizeof<W>() === 4) return v128.load(w, 16);
  return bf16Hi(v128.load(w));
}

/** 4 rows × 8 columns: per k step 2 panel loads, 4 broadcasts, 8 multiply-adds. */
export function tile4<W>(
  o: usize,
  ldo: usize,
  xp: usize,
  w: usize,
  kc: i32,
  accumulate: bool,
  ncols: i32,
): void {
  const step: usize = 8 * sizeof<W>();
  let c00 = f32x4.splat(0);
  let c01 = c00;
  let c10 = c00;
  let c11 = c00;
  let c20 = c00;
  let c21 = c00;
  let c30 = c00;
  let c31 = c00;
  for (let kk = 0; kk < kc; kk++) {
    const w0 = wLo<W>(w);
    const w1 = wHi<W>(w);
    let a = v128.load32_splat(xp);
    c00 = madd(a, w0, c00);
    c01 = madd(a, w1, c01);
    a = v128.load32_splat(xp, 4);
    c10 = madd(a, w0, c10);
    c11 = madd(a, w1, c11);
    a = v128.load32_splat(xp, 8);
    c20 = madd(a, w0, c20);
    c21 = madd(a, w1, c21);
    a = v128.load32_splat(xp, 12);
    c30 = madd(a, w0, c30);
    c31 = madd(a, w1, c31);
    xp += 16;
    w += step;
  }
  storeRow(o, c00, c01, accumulate, ncols);
  storeRow(o + ldo, c10, c11, accumulate, ncols);
  storeRow(o + 2 * ldo, c20, c21, accumulate, ncols);
  storeRow(o + 3 * ldo, c30, c31, accumulate, ncols);
}

/** 3 rows × 8 columns (the tail tile when m % 4 === 3). */
export function tile3<W>(
  o: usize,
  ldo: usize,
  xp: usize,
  w: usize,
  kc: i32,
  accumulate: bool,
  ncols: i32,
): void {
  const step: usize = 8 * sizeof<W>();
  let c00 = f32x4.splat(0);
  let c01 = c00;
  let c10 = c00;
  let c11 = c00;
  let c20 = c00;
  let c21 = c00;
  for (let kk = 0; kk < kc; kk++) {
    const w0 = wLo<W>(w);
    const w1 = wHi<W>(w);
    let a = v128.load32_splat(xp);
    c00 = madd(a, w0, c00);
    c01 = madd(a, w1, c01);
    a = v128.load32_splat(xp, 4);
    c10 = madd(a, w0, c10);
    c11 = madd(a, w1, c11);
    a = v128.load32_splat(xp, 8);
    c20 = madd(a, w0, c20);
    c21 = madd(a, w1, c21);
    xp += 12;
    w += step;
  }
  storeRow(o, c00, c01, accumulate, ncols);
  storeRow(o + ldo, c10, c11, accumulate, ncols);
  storeRow(o + 2 * ldo, c20, c21, accumulate, ncols);
}

/** 2 rows × 8 columns; k unrolled by 2 into separate accumulators to keep 8 multiply-add chains busy. */
export function tile2<W>(
  o: usize,
  ldo: usize,
  xp: usize,
  w: usize,
  kc: i32,
  accumulate: bool,
  ncols: i32,
): void {
  const step: usize = 8 * sizeof<W>();
  let c00 = f32x4.splat(0);
  let c01 = c00;
  let c10 = c00;
  let c11 = c00;
  let d00 = c00;
  let d01 = c00;
  let d10 = c00;
  let d11 = c00;
  let kk = 0;
  for (; kk + 1 < kc; kk += 2) {
    let w0 = wLo<W>(w);
    let w1 = wHi<W>(w);
    let a = v128.load32_splat(xp);
    c00 = madd(a, w0, c00);
    c01 = madd(a, w1, c01);
    a = v128.load32_splat(xp, 4);
    c10 = madd(a, w0, c10);
    c11 = madd(a, w1, c11);
    w0 = wLo<W>(w + step);
    w1 = wHi<W>(w + step);
    a = v128.load32_splat(xp, 8);
    d00 = madd(a, w0, d00);
    d01 = madd(a, w1, d01);
    a = v128.load32_splat(xp, 12);
    d10 = madd(a, w0, d10);
    d11 = madd(a, w1, d11);
    xp += 16;
    w += 2 * step;
  }
  if (kk < kc) {
    const w0 = wLo<W>(w);
    const w1 = wHi<W>(w);
    let a = v128.load32_splat(xp);
    c00 = madd(a, w0, c00);
    c01 = madd(a, w1, c01);
    a = v128.load32_splat(xp, 4);
    c10 = madd(a, w0, c10);
    c11 = madd(a, w1, c11);
  }
  storeRow(o, f32x4.add(c00, d00), f32x4.add(c01, d01), accumulate, ncols);
  storeRow(o + ldo, f32x4.add(c10, d10), f32x4.add(c11, d11), accumulate, ncols);
}

/**
 * 1 row × 8 columns, the decode GEMV: memory bound, so k is unrolled by 2 into 4 independent chains,
 * enough to keep up with the weight stream (more accumulators make V8 spill in the bf16 case).
 */
export function tile1<W>(o: usize, xp: usize, w: usize, kc: i32, accumulate: bool, ncols: i32): void {
  const step: usize = 8 * sizeof<W>();
  let c0 = f32x4.splat(0);
  let c1 = c0;
  let c2 = c0;
  let c3 = c0;
  let kk = 0;
  for (; kk + 1 < kc; kk += 2) {
    let a = v128.load32_splat(xp);
    c0 = madd(a, wLo<W>(w), c0);
    c1 = madd(a, wHi<W>(w), c1);
    a = v128.load32_splat(xp, 4);
    c2 = madd(a, wLo<W>(w + step), c2);
    c3 = madd(a, wHi<W>(w + step), c3);
    xp += 8;
    w += 2 * step;
  }
  if (kk < kc) {
    const a = v128.load32_splat(xp);
    c0 = madd(a, wLo<W>(w), c0);
    c1 = madd(a, wHi<W>(w), c1);
  }
  storeRow(o, f32x4.add(c0, c2), f32x4.add(c1, c3), accumulate, ncols);
}

/**
 * 1 row × two 8-column panels (at `w` and `w + panelBytes`): the m = 1 GEMV. k unrolled by 2 gives 8
 * independent multiply-add chains, so that the bf16 widening does not leave the loop latency bound.
 */
export function tile1x2<W>(
  o: usize,
  xp: usize,
  w: usize,
  panelBytes: usize,
  kc: i32,
  accumulate: bool,
  ncols1: i32,
): void {
  const step: usize = 8 * sizeof<W>();
  let v = w + panelBytes;
  let c0 = f32x4.splat(0);
  let c1 = c0;
  let c2 = c0;
  let c3 = c0;
  let d0 = c0;
  let d1 = c0;
  let d2 = c0;
  let d3 = c0;
  let kk = 0;
  for (; kk + 1 < kc; kk += 2) {
    let a = v128.load32_splat(xp);
    c0 = madd(a, wLo<W>(w), c0);
    c1 = madd(a, wHi<W>(w), c1);
    d0 = madd(a, wLo<W>(v), d0);
    d1 = madd(a, wHi<W>(v), d1);
    a = v128.load32_splat(xp, 4);
    c2 = madd(a, wLo<W>(w + step), c2);
    c3 = madd(a, wHi<W>(w + step), c3);
    d2 = madd(a, wLo<W>(v + step), d2);
    d3 = madd(a, wHi<W>(v + step), d3);
    xp += 8;
    w += 2 * step;
    v += 2 * step;
  }
  if (kk < kc) {
    const a = v128.load32_splat(xp);
    c0 = madd(a, wLo<W>(w), c0);
    c1 = madd(a, wHi<W>(w), c1);
    d0 = madd(a, wLo<W>(v), d0);
    d1 = madd(a, wHi<W>(v), d1);
  }
  storeRow(o, f32x4.add(c0, c2), f32x4.add(c1, c3), accumulate, 8);
  storeRow(o + 32, f32x4.add(d0, d2), f32x4.add(d1, d3), accumulate, ncols1);
}

/**
 * 1 row × four panels (`panelBytes` apart): the m = 1 GEMV. Four weight streams at once keep more
 * memory reads in flight than one (a core's streaming read is limited by its misses in flight), and
 * 8 independent multiply-add chains hide the bf16 widening.
 */
export function tile1x4<W>(
  o: usize,
  xp: usize,
  w: usize,
  panelBytes: usize,
  kc: i32,
  accumulate: bool,
  ncols3: i32,
): void {
  const step: usize = 8 * sizeof<W>();
  let w1 = w + panelBytes;
  let w2 = w1 + panelBytes;
  let w3 = w2 + panelBytes;
  let c0 = f32x4.splat(0);
  let c1 = c0;
  let d0 = c0;
  let d1 = c0;
  let e0 = c0;
  let e1 = c0;
  let f0 = c0;
  let f1 = c0;
  for (let kk = 0; kk < kc; kk++) {
    const a = v128.load32_splat(xp);
    c0 = madd(a, wLo<W>(w), c0);
    c1 = madd(a, wHi<W>(w), c1);
    d0 = madd(a, wLo<W>(w1), d0);
    d1 = madd(a, wHi<W>(w1), d1);
    e0 = madd(a, wLo<W>(w2), e0);
    e1 = madd(a, wHi<W>(w2), e1);
    f0 = madd(a, wLo<W>(w3), f0);
    f1 = madd(a, wHi<W>(w3), f1);
    xp += 4;
    w += step;
    w1 += step;
    w2 += step;
    w3 += step;
  }
  storeRow(o, c0, c1, accumulate, 8);
  storeRow(o + 32, d0, d1, accumulate, 8);
  storeRow(o + 64, e0, e1, accumulate, 8);
  storeRow(o + 96, f0, f1, accumulate, ncols3);
}

/** 2 rows × two panels (at `w` and `w + panelBytes`): 8 accumulators over 2 weight streams. */
export function tile2x2<W>(
  o: usize,
  ldo: usize,
  xp: usize,
  w: usize,
  panelBytes: usize,
  kc: i32,
  accumulate: bool,
  ncols1: i32,
): void {
  const step: usize = 8 * sizeof<W>();
  let v = w + panelBytes;
  let c00 = f32x4.splat(0);
  let c01 = c00;
  let c10 = c00;
  let c11 = c00;
  let d00 = c00;
  let d01 = c00;
  let d10 = c00;
  let d11 = c00;
  for (let kk = 0; kk < kc; kk++) {
    const w0 = wLo<W>(w);
    const w1 = wHi<W>(w);
    const v0 = wLo<W>(v);
    const v1 = wHi<W>(v);
    let a = v128.load32_splat(xp);
    c00 = madd(a, w0, c00);
    c01 = madd(a, w1, c01);
    d00 = madd(a, v0, d00);
    d01 = madd(a, v1, d01);
    a = v128.load32_splat(xp, 4);
    c10 = madd(a, w0, c10);
    c11 = madd(a, w1, c11);
    d10 = madd(a, v0, d10);
    d11 = madd(a, v1, d11);
    xp += 8;
    w += step;
    v += step;
  }
  storeRow(o, c00, c01, accumulate, 8);
  storeRow(o + ldo, c10, c11, accumulate, 8);
  storeRow(o + 32, d00, d01, accumulate, ncols1);
  storeRow(o + ldo + 32, d10, d11, accumulate, ncols1);
}
