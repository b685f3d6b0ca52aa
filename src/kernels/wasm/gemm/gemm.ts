// GEMM driver: out[m, n] = Σ_k x[m, k] · w[n, k] over a packed weight, for one thread's share of the
// work (a range of 8-column panels and a range of rows). Loops, outer to inner: k-blocks of `kc` (so a
// block of x stays in L2 and a block of a panel in L1), panels, 4-row tiles of x.
// Decode (small m) is bound by the weight stream, and a core reads memory faster over several streams
// than over one: m = 1 takes 4 panels at once, m = 2 two, m = 3..8 row pairs against panel pairs.
// For a small m the caller passes kc = k: the weights then stream through once.
//
// Layouts (byte addresses):
//   out: [m, n] f32 row-major
//   xp:  x packed by gemmPackX: tile t (rows 4t..4t+3) at xp + t·k·16 as [k][4]; the tail tile of
//        m % 4 rows as [k][m % 4]. For m = 1 this is x itself. For a decode batch (PAIRS_MIN_M ≤ m ≤
//        PAIRS_MAX_M) pairs instead: pair q (rows 2q, 2q+1) at xp + q·k·8 as [k][2], an odd last row
//        at xp + (m >> 1)·k·8 as [k][1].
//   w:   packed weight: panel p (rows 8p..8p+7 of the [n, k] weight) at w + p·k·8·esize as [k][8],
//        zero-padded past n; esize 4 (f32) or 2 (bf16, interleaved columns 0,4,1,5,2,6,3,7).

import { tile1, tile1x2, tile1x4, tile2, tile2x2, tile3, tile4 } from './microkernels';
import { bf16Hi, bf16Lo } from './simd';

/** Row counts that run as a decode batch: row pairs against pairs of panels (two weight streams). */
const PAIRS_MIN_M = 3;
const PAIRS_MAX_M = 8;
/** k-block of the decode-batch path: two panel blocks (32 KiB as f32) stay in L1 across the row pairs. */
const PAIRS_KB = 512;

/**
 * Packs x: [m, k] f32 (rows `ldx` bytes apart) into the layout described above at `xp`.
 * `xp` must not overlap `x`.
 */
export function gemmPackX(xp: usize, x: usize, m: i32, k: i32, ldx: i32): void {
  if (m >= PAIRS_MIN_M && m <= PAIRS_MAX_M) {
    packPairs(xp, x, m, k, ldx);
    return;
  }
  const full = m >> 2;
  for (let t = 0; t < full; t++) {
    const r0 = x + <usize>(4 * t) * <usize>ldx;
    const r1 = r0 + <usize>ldx;
    const r2 = r1 + <usize>ldx;
    const r3 = r2 + <usize>ldx;
    let d = xp + <usize>t * <usize>k * 16;
    let kk = 0;
    // Four k steps at a time: a 4×4 transpose of the rows' next 16 bytes.
    for (; kk + 3 < k; kk += 4) {
      const off = (<usize>kk) << 2;
      const a = v128.load(r0 + off);
      const b = v128.load(r1 + off);
      const c = v128.load(r2 + off);
      const e = v128.load(r3 + off);
      const ab0 = v128.shuffle<i32>(a, b, 0, 4, 1, 5);
      const ab1 = v128.shuffle<i32>(a, b, 2, 6, 3, 7);
      const ce0 = v128.shuffle<i32>(c, e, 0, 4, 1, 5);
      const ce1 = v128.shuffle<i32>(c, e, 2, 6, 3, 7);
      v128.store(d, v128.shuffle<i64>(ab0, ce0, 0, 2));
      v128.store(d, v128.shuffle<i64>(ab0, ce0, 1, 3), 16);
      v128.store(d, v128.shuffle<i64>(ab1, ce1, 0, 2), 32);
      v128.store(d, v128.shuffle<i64>(ab1, ce1, 1, 3), 48);
      d += 64;
    }
    for (; kk < k; kk++) {
      const off = (<usize>kk) << 2;
      store<f32>(d, load<f32>(r0 + off));
      store<f32>(d, load<f32>(r1 + off), 4);
      store<f32>(d, load<f32>(r2 + off), 8);
      store<f32>(d, load<f32>(r3 + off), 12);
      d += 16;
    }
  }
  const mr = m & 3;
  if (mr === 0) return;
  const d0 = xp + <usize>full * <usize>k * 16;
  for (let r = 0; r < mr; r++) {
    const row = x + <usize>(4 * full + r) * <usize>ldx;
    let d = d0 + ((<usize>r) << 2);
    for (let kk = 0; kk < k; kk++) {
      store<f32>(d, load<f32>(row + ((<usize>kk) << 2)));
      d += (<usize>mr) << 2;
    }
  }
}

/** The decode-batch packing: row pairs as [k][2], an odd last row as [k][1]. */
function packPairs(xp: usize, x: usize, m: i32, k: i32, ldx: i32): void {
  const pairs = m >> 1;
  for (let q = 0; q < pairs; q++) {
    const a = x + <usize>(2 * q) * <usize>ldx;
    const b = a + <usize>ldx;
    let d = xp + <usize>q * <usize>k * 8;
    let kk = 0;
    for (; kk + 3 < k; kk += 4) {
      const off = (<usize>kk) << 2;
      const va = v128.load(a + off);
      const vb = v128.load(b + off);
      v128.store(d, v128.shuffle<i32>(va, vb, 0, 4, 1, 5));
      v128.store(d, v128.shuffle<i32>(va, vb, 2, 6, 3, 7), 16);
      d += 32;
    }
    for (; kk < k; kk++) {
      const off = (<usize>kk) << 2;
      store<f32>(d, load<f32>(a + off));
      store<f32>(d, load<f32>(b + off), 4);
      d += 8;
    }
  }
  if (m & 1) memory.copy(xp + <usize>pairs * <usize>k * 8, x + <usize>(m - 1) * <usize>ldx, (<usize>k) << 2);
}

/**
 * out[r, c] (+)= Σ_k x[r, k] · w[c, k] for the panels [p0, p1) and the rows [r0, r1) (r0 a multiple of 4,
 * r1 a multiple of 4 or m), with weights stored as f32 (`bf16` = 0) or bf16 (`bf16` = 1).
 * `kc`: the k-block length (k for a small m). `out`, `xp`, `w`: see the header.
 * `buf`: 0, or (bf16 only) this thread's scratch of kc·32 bytes: each panel block is then widened to
 * f32 once there and all row tiles run the f32 kernel on it (worth it when many row tiles share it).
 */
export function gemm(
  out: usize,
  xp: usize,
  w: usize,
  m: i32,
  n: i32,
  k: i32,
  bf16: i32,
  p0: i32,
  p1: i32,
  r0: i32,
  r1: i32,
  kc: i32,
  buf: usize,
): void {
  gemmStrided(out, (<usize>n) << 2, xp, w, m, n, k, bf16, p0, p1, r0, r1, kc, buf);
}

/** `gemm` with output rows `ldo` bytes apart. */
function gemmStrided(
  out: usize,
  ldo: usize,
  xp: usize,
  w: usize,
  m: i32,
  n: i32,
  k: i32,
  bf16: i32,
  p0: i32,
  p1: i32,
  r0: i32,
  r1: i32,
  kc: i32,
  buf: usize,
): void {
  if (m >= PAIRS_MIN_M && m <= PAIRS_MAX_M) {
    if (bf16 === 0) gemmPairs<f32>(out, ldo, xp, w, m, n, k, p0, p1, r0, r1);
    else gemmPairs<u16>(out, ldo, xp, w, m, n, k, p0, p1, r0, r1);
  } else if (bf16 === 0) gemmPanels<f32>(out, ldo, xp, w, m, n, k, p0, p1, r0, r1, kc);
  else if (buf === 0) gemmPanels<u16>(out, ldo, xp, w, m, n, k, p0, p1, r0, r1, kc);
  else gemmWidened(out, ldo, xp, w, m, n, k, p0, p1, r0, r1, kc, buf);
}

/** x bytes up to which the whole of k is one block (as the host's GEMM plan). */
const HEADS_MAX_UNBLOCKED_X_BYTES: usize = 8 << 20;
/** The k-block beyond that, and the longest k-block when bf16 panels are widened. */
const HEADS_BLOCK_K: i32 = 1024;
/** Rows from which bf16 panels are widened once per block (as the host's GEMM). */
const HEADS_WIDEN_MIN_M: i32 = 16;

/**
 * Per-head GEMMs over a stack of packed weights, for the heads [h0, h1): out_h[m, n] = x_h[m, k] · W_hᵀ.
 * Head h's weight is a packed [n, k] weight (layout above) at w + h·wHeadBytes; row i of x_h (k f32) is at
 * x + h·xHeadBytes + i·ldx and row i of out_h (n f32) at out + h·outHeadBytes + i·ldo, so x and out may be
 * strided views such as one head's columns of a [m, numHeads, headStride] activation.
 * `xp`: this thread's packing scratch of m·k·4 bytes (unused when m = 1); `buf`: for bf16, this thread's
 * widening buffer of HEADS_BLOCK_K·32 bytes, or 0.
 */
export function gemm_heads(
  out: usize,
  ldo: usize,
  outHeadBytes: usize,
  x: usize,
  ldx: i32,
  xHeadBytes: usize,
  xp: usize,
  w: usize,
  wHeadBytes: usize,
  m: i32,
  n: i32,
  k: i32,
  bf16: i32,
  h0: i32,
  h1: i32,
  buf: usize,
): void {
  const numPanels = (n + 7) >> 3;
  const widen = bf16 !== 0 && buf !== 0 && m >= HEADS_WIDEN_MIN_M;
  let kc = (<usize>m * <usize>k) << 2 <= HEADS_MAX_UNBLOCKED_X_BYTES ? k : HEADS_BLOCK_K;
  if (widen) kc = min(kc, HEADS_BLOCK_K);
  for (let h = h0; h < h1; h++) {
    const xh = x + <usize>h * xHeadBytes;
    let xph = xh;
    // m = 1 reads x as it is (one contiguous row); otherwise x is packed into row tiles first.
    if (m > 1) {
      gemmPackX(xp, xh, m, k, ldx);
      xph = xp;
    }
    gemmStrided(
      out + <usize>h * outHeadBytes,
      ldo,
      xph,
      w + <usize>h * wHeadBytes,
      m,
      n,
      k,
      bf16,
      0,
      numPanels,
      0,
      m,
      kc,
      widen ? buf : 0,
    );
  }
}

function gemmPanels<W>(
  out: usize,
  ldo: usize,
  xp: usize,
  w: usize,
  m: i32,
  n: i32,
  k: i32,
  p0: i32,
  p1: i32,
  r0: i32,
  r1: i32,
  kc: i32,
): void {
  const panelBytes = <usize>k * 8 * sizeof<W>();
  for (let kb = 0; kb < k; kb += kc) {
    const kl = min(kc, k - kb);
    const accumulate = kb > 0;
    let p = p0;
    // Small m (decode): several panels at once, so that several weight streams are in flight.
    if (m === 2) {
      for (; p + 1 < p1; p += 2) {
        const wp = w + <usize>p * panelBytes + <usize>kb * 8 * sizeof<W>();
        const o = out + ((<usize>(8 * p)) << 2);
        tile2x2<W>(o, ldo, xp + ((<usize>kb) << 3), wp, panelBytes, kl, accumulate, min(8, n - 8 * p - 8));
      }
    }
    if (m === 1) {
      // Four panels at a time, then two, then the last one below.
      for (; p + 3 < p1; p += 4) {
        const wp = w + <usize>p * panelBytes + <usize>kb * 8 * sizeof<W>();
        const o = out + ((<usize>(8 * p)) << 2);
        tile1x4<W>(o, xp + ((<usize>kb) << 2), wp, panelBytes, kl, accumulate, min(8, n - 8 * p - 24));
      }
      for (; p + 1 < p1; p += 2) {
        const wp = w + <usize>p * panelBytes + <usize>kb * 8 * sizeof<W>();
        const o = out + ((<usize>(8 * p)) << 2);
        tile1x2<W>(o, xp + ((<usize>kb) << 2), wp, panelBytes, kl, accumulate, min(8, n - 8 * p - 8));
      }
    }
    for (; p < p1; p++) {
      const wp = w + <usize>p * panelBytes + <usize>kb * 8 * sizeof<W>();
      panelTiles<W>(out, ldo, xp, wp, m, n, k, p, kb, kl, r0, r1);
    }
  }
}

/**
 * The decode batch (PAIRS_MIN_M ≤ m ≤ PAIRS_MAX_M, x packed in pairs): for each pair of panels and each
 * k-block, the first row pair streams both panels from memory and the other row pairs find them in L1.
 * Two weight streams and a light first pass keep more reads in flight than 4-row tiles over one panel.
 */
function gemmPairs<W>(
  out: usize,
  ldo: usize,
  xp: usize,
  w: usize,
  m: i32,
  n: i32,
  k: i32,
  p0: i32,
  p1: i32,
  r0: i32,
  r1: i32,
): void {
  const panelBytes = <usize>k * 8 * sizeof<W>();
  const lastRow = m & 1 ? m - 1 : -1;
  const xLast = xp + <usize>(m >> 1) * <usize>k * 8;
  let p = p0;
  for (; p + 1 < p1; p += 2) {
    const oc = out + ((<usize>(8 * p)) << 2);
    const ncols1 = min(8, n - 8 * p - 8);
    for (let kb = 0; kb < k; kb += PAIRS_KB) {
      const kl = min(PAIRS_KB, k - kb);
      const wp = w + <usize>p * panelBytes + <usize>kb * 8 * sizeof<W>();
      const accumulate = kb > 0;
      let r = r0;
      for (; r + 1 < r1; r += 2) {
        const xq = xp + <usize>(r >> 1) * <usize>k * 8 + <usize>kb * 8;
        tile2x2<W>(oc + <usize>r * ldo, ldo, xq, wp, panelBytes, kl, accumulate, ncols1);
      }
      if (r === lastRow && r < r1) {
        tile1x2<W>(oc + <usize>r * ldo, xLast + <usize>kb * 4, wp, panelBytes, kl, accumulate, ncols1);
      }
    }
  }
  if (p < p1) {
    // The odd last panel, one panel at a time.
    const oc = out + ((<usize>(8 * p)) << 2);
    const ncols = min(8, n - 8 * p);
    const wp = w + <usize>p * panelBytes;
    let r = r0;
    for (; r + 1 < r1; r += 2) {
      tile2<W>(oc + <usize>r * ldo, ldo, xp + <usize>(r >> 1) * <usize>k * 8, wp, k, false, ncols);
    }
    if (r === lastRow && r < r1) tile1<W>(oc + <usize>r * ldo, xLast, wp, k, false, ncols);
  }
}

/** bf16 weights, each panel block widened into `buf` first (see `gemm`). */
function gemmWidened(
  out: usize,
  ldo: usize,
  xp: usize,
  w: usize,
  m: i32,
  n: i32,
  k: i32,
  p0: i32,
  p1: i32,
  r0: i32,
  r1: i32,
  kc: i32,
  buf: usize,
): void {
  const panelBytes = <usize>k * 16;
  for (let kb = 0; kb < k; kb += kc) {
    const kl = min(kc, k - kb);
    for (let p = p0; p < p1; p++) {
      widenPanel(buf, w + <usize>p * panelBytes + <usize>kb * 16, kl);
      panelTiles<f32>(out, ldo, xp, buf, m, n, k, p, kb, kl, r0, r1);
    }
  }
}

/** Widens `kl` rows of an interleaved bf16 panel at `src` into an f32 panel [kl][8] at `dst`. */
function widenPanel(dst: usize, src: usize, kl: i32): void {
  for (let kk = 0; kk < kl; kk++) {
    const v = v128.load(src);
    v128.store(dst, bf16Lo(v));
    v128.store(dst, bf16Hi(v), 16);
    src += 16;
    dst += 32;
  }
}

/**
 * All row tiles of rows [r0, r1) against one block (k steps kb .. kb+kl) of panel `p`, whose data
 * starts at `wp`.
 */
function panelTiles<W>(
  out: usize,
  ldo: usize,
  xp: usize,
  wp: usize,
  m: i32,
  n: i32,
  k: i32,
  p: i32,
  kb: i32,
  kl: i32,
  r0: i32,
  r1: i32,
): void {
  const accumulate = kb > 0;
  const full = m >> 2;
  const tailRows = m & 3;
  const ncols = min(8, n - 8 * p);
  const oc = out + ((<usize>(8 * p)) << 2);
  let r = r0;
  for (; r + 3 < r1; r += 4) {
    const xt = xp + <usize>r * <usize>k * 4 + <usize>kb * 16;
    tile4<W>(oc + <usize>r * ldo, ldo, xt, wp, kl, accumulate, ncols);
  }
  if (r < r1) {
    // The tail tile: rows full·4 .. m-1, packed as [k][tailRows].
    const xt = xp + <usize>full * <usize>k * 16 + <usize>kb * <usize>tailRows * 4;
    const o = oc + <usize>r * ldo;
    if (tailRows === 3) tile3<W>(o, ldo, xt, wp, kl, accumulate, ncols);
    else if (tailRows === 2) tile2<W>(o, ldo, xt, wp, kl, accumulate, ncols);
    else tile1<W>(o, xt, wp, kl, accumulate, ncols);
  }
}
