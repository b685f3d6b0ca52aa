// Packing a linear weight [n, k] (row-major, the Hugging Face layout) into the GEMM's panels: panel p
// holds rows 8p..8p+7 as [k][8], so that the micro-kernel reads 8 columns of one k step contiguously;
// rows past n are zero. bf16 panels interleave the columns as 0,4,1,5,2,6,3,7 so that the kernel widens
// a 32-bit lane's low half (column j) by a shift and its high half (column j+4) by a mask.

import { f32BitsToBf16, type RawWeight, type WeightDType } from '../../kernels/kernels.js';

/** Columns per panel (the micro-kernel's tile width). */
export const PANEL_WIDTH = 8;

/** Position of column j (0..7) within a bf16 panel row. */
const BF16_SLOT = [0, 2, 4, 6, 1, 3, 5, 7] as const;

/** Bytes of a packed weight of shape [n, k] stored as `dtype`. */
export function packedBytes(n: number, k: number, dtype: WeightDType): number {
  return Math.ceil(n / PANEL_WIDTH) * PANEL_WIDTH * k * (dtype === 'f32' ? 4 : 2);
}

/**
 * Packs `raw` ([n, k]) into `dst` as f32 panels. `dst`: [ceil(n/8), k, 8] as uint32 bit patterns (a view
 * of the destination memory of packedBytes(n, k, 'f32') bytes).
 */
export function packF32(dst: Uint32Array, raw: RawWeight, n: number, k: number): void {
  const numPanels = Math.ceil(n / PANEL_WIDTH);
  const bits =
    raw.dtype === 'f32' ? new Uint32Array(raw.data.buffer, raw.data.byteOffset, raw.data.length) : null;
  const half = raw.dtype === 'bf16' ? raw.data : null;
  for (let p = 0; p < numPanels; p++) {
    const base = p * k * PANEL_WIDTH;
    for (let j = 0; j < PANEL_WIDTH; j++) {
      const row = p * PANEL_WIDTH + j;
      let d = base + j;
      if (row >= n) {
        for (let kk = 0; kk < k; kk++, d += PANEL_WIDTH) dst[d] = 0;
        continue;
      }
      const s = row * k;
      if (bits !== null) for (let kk = 0; kk < k; kk++, d += PANEL_WIDTH) dst[d] = bits[s + kk]!;
      else for (let kk = 0; kk < k; kk++, d += PANEL_WIDTH) dst[d] = half![s + kk]! << 16;
    }
  }
}

/**
 * Packs `raw` ([n, k]) into `dst` as bf16 panels (rounding float32 to nearest even, NaN kept a NaN).
 * `dst`: [ceil(n/8), k, 8] bf16 bit patterns, columns interleaved (see the header). bf16 input goes as
 * 32-bit words: word q (0..3) of a panel row holds column q in its low half and column q + 4 in its high
 * half, so each word is one store and the stores of a panel run in order (four times fewer than one per
 * value; this is most of a bf16 model's load time).
 */
export function packBf16(dst: Uint16Array, raw: RawWeight, n: number, k: number): void {
  const numPanels = Math.ceil(n / PANEL_WIDTH);
  if (raw.dtype === 'bf16' && dst.byteOffset % 4 === 0) {
    const words = new Uint32Array(dst.buffer, dst.byteOffset, dst.length >> 1);
    const half = raw.data;
    for (let p = 0; p < numPanels; p++) {
      const base = (p * k * PANEL_WIDTH) >> 1;
      for (let q = 0; q < PANEL_WIDTH / 2; q++) {
        const lo = p * PANEL_WIDTH + q;
        const hi = lo + PANEL_WIDTH / 2;
        const sl = lo * k;
        const sh = hi * k;
        let d = base + q;
        if (hi < n) for (let kk = 0; kk < k; kk++, d += 4) words[d] = half[sl + kk]! | (half[sh + kk]! << 16);
        else if (lo < n) for (let kk = 0; kk < k; kk++, d += 4) words[d] = half[sl + kk]!;
        else for (let kk = 0; kk < k; kk++, d += 4) words[d] = 0;
      }
    }
    return;
  }
  const bits =
    raw.dtype === 'f32' ? new Uint32Array(raw.data.buffer, raw.data.byteOffset, raw.data.length) : null;
  const half = raw.dtype === 'bf16' ? raw.data : null;
  for (let p = 0; p < numPanels; p++) {
    const base = p * k * PANEL_WIDTH;
    for (let j = 0; j < PANEL_WIDTH; j++) {
      const row = p * PANEL_WIDTH + j;
      let d = base + BF16_SLOT[j]!;
      if (row >= n) {
        for (let kk = 0; kk < k; kk++, d += PANEL_WIDTH) dst[d] = 0;
        continue;
      }
      const s = row * k;
      if (half !== null) for (let kk = 0; kk < k; kk++, d += PANEL_WIDTH) dst[d] = half[s + kk]!;
      else for (let kk = 0; kk < k; kk++, d += PANEL_WIDTH) dst[d] = f32BitsToBf16(bits![s + kk]!);
    }
  }
}

/**
 * The int8 GEMM's panels (see src/kernels/wasm/int8/gemm-i8.ts): panel p holds rows 8p..8p+7 as
 * [ceil(k/4)][8 columns][4 k steps] bytes, zero past n and past k.
 */
export function int8PanelBytes(n: number, k: number): number {
  return Math.ceil(n / PANEL_WIDTH) * Math.ceil(k / 4) * 32;
}

/**
 * Packs the int8 weight `w` ([n, k] row-major) into `dst` (int8PanelBytes(n, k) bytes) as int8 panels,
 * and writes each row's sum Σ_k w into `rowSums` ([n]) when given. When k is a multiple of 4 and both
 * arrays are 4-byte aligned, each group of 4 k steps is one 32-bit word in both layouts, so a row moves
 * word by word (its sum taken from the same words).
 */
export function packInt8(dst: Int8Array, w: Int8Array, n: number, k: number, rowSums?: Int32Array): void {
  const kq = Math.ceil(k / 4);
  if (k % 4 === 0 && dst.byteOffset % 4 === 0 && w.byteOffset % 4 === 0) {
    const out = new Int32Array(dst.buffer, dst.byteOffset, dst.length >> 2);
    const src = new Int32Array(w.buffer, w.byteOffset, (n * k) >> 2);
    // Rows past n in the last panel stay zero.
    if (n % PANEL_WIDTH !== 0) out.fill(0, Math.floor(n / PANEL_WIDTH) * kq * PANEL_WIDTH);
    for (let row = 0; row < n; row++) {
      let d = Math.floor(row / PANEL_WIDTH) * kq * PANEL_WIDTH + (row % PANEL_WIDTH);
      const s = row * kq;
      if (rowSums === undefined) {
        for (let q = 0; q < kq; q++, d += PANEL_WIDTH) out[d] = src[s + q]!;
        continue;
      }
      let sum = 0;
      for (let q = 0; q < kq; q++, d += PANEL_WIDTH) {
        const v = src[s + q]!;
        out[d] = v;
        // The four signed bytes of the word (little-endian).
        sum += ((v << 24) >> 24) + ((v << 16) >> 24) + ((v << 8) >> 24) + (v >> 24);
      }
      rowSums[row] = sum;
    }
    return;
  }
  dst.fill(0);
  for (let row = 0; row < n; row++) {
    const p = Math.floor(row / PANEL_WIDTH);
    const j = row % PANEL_WIDTH;
    const base = p * kq * 32 + j * 4;
    const s = row * k;
    let sum = 0;
    for (let c = 0; c < k; c++) {
      const v = w[s + c]!;
      dst[base + (c >> 2) * 32 + (c & 3)] = v;
      sum += v;
    }
    if (rowSums !== undefined) rowSums[row] = sum;
  }
}
