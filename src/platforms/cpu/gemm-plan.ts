// Splitting one GEMM across threads: how many threads are worth waking for its size, which panels (8
// columns of n) and rows of m each thread takes, and the k-block length. Pure arithmetic.

import { PANEL_WIDTH } from './weight-packing.js';

/** One thread's part: panels [p0, p1), rows [r0, r1) (r0 a multiple of 4; r1 a multiple of 4 or m). */
export interface GemmPart {
  p0: number;
  p1: number;
  r0: number;
  r1: number;
}

export interface GemmPlan {
  /** k-block length (k itself unless x is too large to stay in cache across panels). */
  kc: number;
  /** One part per thread used (parts.length ≤ numThreads); part 0 runs on the main thread. */
  parts: GemmPart[];
}

/** Rough single-thread speeds for the cost estimate (GFLOP/s, and weight bytes/s for the GEMV). */
const FLOPS_PER_SECOND = 30e9;
const BYTES_PER_SECOND = 10e9;
/**
 * A thread is worth waking for at least this much work: a wake-up costs ~15 µs when the worker sleeps,
 * and up to a scheduler time slice when its core is busy with other work, so small decode GEMVs (a toy
 * model's MLP) run on the calling thread alone. Measured on a shared 2-core machine: 60 µs gave the
 * embedded default model's decode a ~10% better median step than 25 µs, and the same best step.
 */
export const MIN_SECONDS_PER_THREAD = 60e-6;
/** x (bytes) up to which the whole of k is one block. */
const MAX_UNBLOCKED_X_BYTES = 8 * 1024 * 1024;
/** The k-block length beyond that. */
const BLOCK_K = 1024;

/**
 * Plans out[m, n] = x[m, k] · w[n, k]ᵀ with weights of `weightBytes` on at most `numThreads` threads,
 * giving each thread at least `minSecondsPerThread` of estimated work (0: use every thread there is
 * work for).
 */
export function planGemm(
  m: number,
  n: number,
  k: number,
  weightBytes: number,
  numThreads: number,
  minSecondsPerThread = MIN_SECONDS_PER_THREAD,
): GemmPlan {
  const kc = m * k * 4 <= MAX_UNBLOCKED_X_BYTES ? k : BLOCK_K;
  const numPanels = Math.ceil(n / PANEL_WIDTH);
  const numTiles = Math.ceil(m / 4);
  const seconds = Math.max((2 * m * n * k) / FLOPS_PER_SECOND, weightBytes / BYTES_PER_SECOND);
  const worthIt = minSecondsPerThread > 0 ? Math.floor(seconds / minSecondsPerThread) : numThreads;
  let threads = Math.max(1, Math.min(numThreads, worthIt));
  if (threads === 1) return { kc, parts: [{ p0: 0, p1: numPanels, r0: 0, r1: m }] };
  // Split the columns when there are enough panels (each thread then streams its own weights);
  // otherwise the rows, in 4-row tiles.
  const byPanels = numPanels >= threads || numPanels >= numTiles;
  const units = byPanels ? numPanels : numTiles;
  threads = Math.min(threads, units);
  const parts: GemmPart[] = [];
  for (let t = 0; t < threads; t++) {
    const u0 = Math.floor((t * units) / threads);
    const u1 = Math.floor(((t + 1) * units) / threads);
    if (byPanels) parts.push({ p0: u0, p1: u1, r0: 0, r1: m });
    else parts.push({ p0: 0, p1: numPanels, r0: 4 * u0, r1: Math.min(m, 4 * u1) });
  }
  return { kc, parts };
}
