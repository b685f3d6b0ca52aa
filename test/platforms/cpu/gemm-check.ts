// Test helpers for the wasm GEMM: seeded random data, a float64 triple-loop reference, and the error
// bound that float32 accumulation in any order must meet.
//
// Tolerance: the kernel sums k float32 products in some order (blocked, 4 or 8 partial sums, fused or
// separate multiply-add). For any order, the classic bound is |computed − exact| ≤ γ_k · Σ|x_i·w_i|
// with γ_k = k·u / (1 − k·u) and u = 2⁻²⁴ (Higham, Accuracy and Stability, §3.1); we use (k + 1)·u·Σ|x·w|
// plus one rounding of the result. That is far tighter than the effect of a real bug: a missing, repeated
// or misplaced term changes the sum by about Σ|x·w|/k, over 1000× the bound for k ≤ 130.

import assert from 'node:assert/strict';
import { f32ToBf16 } from '../../../src/kernels/kernels.js';

const U = 2 ** -24;

/** Uniform values in [-1, 1) from a 32-bit LCG. */
export function randomF32(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32) * 2 - 1;
  }
  return a;
}

/** The weights as the kernel sees them when stored as bf16: each rounded to nearest even bf16. */
export function roundedToBf16(w: Float32Array): Float32Array {
  const bits = new Uint16Array(w.length);
  f32ToBf16(bits, w);
  const out = new Float32Array(w.length);
  const u32 = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) u32[i] = bits[i]! << 16;
  return out;
}

/**
 * Checks out[m, n] against Σ_k x[m, k]·w[n, k] computed in float64, within the bound above.
 * `w` is the weight as stored (already bf16-rounded for bf16 storage).
 */
export function assertGemmClose(
  out: Float32Array,
  x: Float32Array,
  w: Float32Array,
  m: number,
  n: number,
  k: number,
  what: string,
): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let exact = 0;
      let abs = 0;
      for (let p = 0; p < k; p++) {
        const t = x[i * k + p]! * w[j * k + p]!;
        exact += t;
        abs += Math.abs(t);
      }
      const got = out[i * n + j]!;
      const tol = (k + 1) * U * abs + U * Math.abs(exact) + 1e-30;
      if (!(Math.abs(got - exact) <= tol)) {
        assert.fail(`${what}: out[${i}, ${j}] = ${got}, expected ${exact} ± ${tol.toExponential(2)}`);
      }
    }
  }
}
