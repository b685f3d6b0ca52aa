// TypeScript twins of the kernels that move and combine activations between the GEMMs and attention:
// the residual add, sigmoid, row copies with gather and scatter (KV-cache write and read, MoE dispatch),
// the MoE weighted combine, the embedding lookup and the grouped top-k of the MoE router. The reference
// kernel set uses them, and so does the WebAssembly CPU platform, where they are memory-bound loops that
// gain nothing from SIMD at these sizes (see docs/platforms.md). Contracts in src/kernels/kernels.ts.

import type { RawWeight } from '../kernels.js';

/** out[i] = a[i] + b[i] for i < n. */
export function add(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
}

/** out[i] = 1 / (1 + e^(−x[i])) for i < n. */
export function sigmoid(out: Float32Array, x: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) out[i] = 1 / (1 + Math.exp(-x[i]!));
}

/** See `Kernels.copyRows`. */
export function copyRows(
  dst: Float32Array,
  dstRows: Int32Array | null,
  dstStride: number,
  dstOffset: number,
  src: Float32Array,
  srcRows: Int32Array | null,
  srcStride: number,
  srcOffset: number,
  m: number,
  d: number,
): void {
  for (let i = 0; i < m; i++) {
    const s = (srcRows ? srcRows[i]! : i) * srcStride + srcOffset;
    const t = (dstRows ? dstRows[i]! : i) * dstStride + dstOffset;
    dst.set(src.subarray(s, s + d), t);
  }
}

/** out[rows[i], :] += weights[i] · x[i, :] for i < m. */
export function weightedScatterAdd(
  out: Float32Array,
  x: Float32Array,
  rows: Int32Array,
  weights: Float32Array,
  m: number,
  d: number,
): void {
  for (let i = 0; i < m; i++) {
    const w = weights[i]!;
    const o = rows[i]! * d;
    const y = i * d;
    for (let j = 0; j < d; j++) out[o + j]! += w * x[y + j]!;
  }
}

/** See `Kernels.embedding`. */
export function embedding(
  out: Float32Array,
  table: RawWeight,
  tokenIds: Int32Array,
  rowStart: number,
  numRows: number,
  m: number,
  d: number,
): void {
  const u32 = new Uint32Array(out.buffer, out.byteOffset, m * d);
  for (let t = 0; t < m; t++) {
    const local = tokenIds[t]! - rowStart;
    const o = t * d;
    if (local < 0 || local >= numRows) {
      out.fill(0, o, o + d);
      continue;
    }
    const row = local * d;
    if (table.dtype === 'bf16') {
      // bf16 is the top half of an f32: widening is exact.
      for (let j = 0; j < d; j++) u32[o + j] = table.data[row + j]! << 16;
    } else {
      out.set(table.data.subarray(row, row + d), o);
    }
  }
}

/** A top-k kernel as `Kernels.topK` defines it (descending, ties to the lower index). */
export type TopKKernel = (
  outIdx: Int32Array,
  outVal: Float32Array,
  x: Float32Array,
  m: number,
  n: number,
  k: number,
) => void;

/**
 * See `Kernels.groupedTopK`. A method for a kernel set to take over as it is: the top-k selections run on
 * that kernel set's own `topK`.
 */
export function groupedTopK(
  this: { topK: TopKKernel },
  outExperts: Int32Array,
  outWeights: Float32Array,
  scores: Float32Array,
  bias: Float32Array | null,
  m: number,
  numExperts: number,
  k: number,
  numGroups: number,
  topkGroup: number,
  renormalize: boolean,
  scalingFactor: number,
): void {
  const topK: TopKKernel = (...a) => this.topK(...a);
  const E = numExperts;
  const select = new Float32Array(m * E);
  if (bias)
    for (let t = 0; t < m; t++) for (let e = 0; e < E; e++) select[t * E + e] = scores[t * E + e]! + bias[e]!;
  else select.set(scores.subarray(0, m * E));
  if (numGroups > 1) maskGroups(topK, select, m, E, numGroups, topkGroup, bias !== null);
  topK(outExperts, new Float32Array(m * k), select, m, E, k);
  for (let t = 0; t < m; t++) {
    let sum = 0;
    for (let j = 0; j < k; j++) {
      const w = scores[t * E + outExperts[t * k + j]!]!;
      outWeights[t * k + j] = w;
      sum += w;
    }
    const norm = renormalize ? 1 / sum : 1;
    for (let j = 0; j < k; j++) outWeights[t * k + j] = outWeights[t * k + j]! * norm * scalingFactor;
  }
}

/**
 * Keeps only the `topkGroup` best groups per token (a group scores by its best expert, or by the sum of its
 * best two with `byTopTwo`) and sets every other expert's selection score to −∞. `select`: [m, E].
 */
function maskGroups(
  topK: TopKKernel,
  select: Float32Array,
  m: number,
  E: number,
  G: number,
  topkGroup: number,
  byTopTwo: boolean,
): void {
  const perGroup = E / G;
  const groupScores = new Float32Array(m * G);
  for (let t = 0; t < m; t++) {
    for (let g = 0; g < G; g++) {
      let best = Number.NEGATIVE_INFINITY;
      let second = Number.NEGATIVE_INFINITY;
      for (let e = g * perGroup; e < (g + 1) * perGroup; e++) {
        const v = select[t * E + e]!;
        if (v > best) {
          second = best;
          best = v;
        } else if (v > second) second = v;
      }
      groupScores[t * G + g] = byTopTwo ? best + second : best;
    }
  }
  const keptGroups = new Int32Array(m * topkGroup);
  topK(keptGroups, new Float32Array(m * topkGroup), groupScores, m, G, topkGroup);
  const keep = new Uint8Array(G);
  for (let t = 0; t < m; t++) {
    keep.fill(0);
    for (let j = 0; j < topkGroup; j++) keep[keptGroups[t * topkGroup + j]!] = 1;
    for (let g = 0; g < G; g++) {
      if (keep[g]) continue;
      select.fill(Number.NEGATIVE_INFINITY, t * E + g * perGroup, t * E + (g + 1) * perGroup);
    }
  }
}
