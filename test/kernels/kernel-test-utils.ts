// Helpers shared by the kernel tests: a seeded random generator, random arrays (int8 ones with the
// extremes over-represented), copies into a kernel memory, an element-wise comparison that reports the
// worst element against its tolerance, and a bit-for-bit one.

import assert from 'node:assert/strict';

/** A seeded pseudo-random generator (mulberry32): uniform floats in [0, 1). */
export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Uniform in [lo, hi). */
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }
  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** A float32 array of `n` uniform values in [lo, hi). */
  array(n: number, lo = -1, hi = 1): Float32Array {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = this.uniform(lo, hi);
    return a;
  }
  /** A random permutation of 0..n-1. */
  permutation(n: number): Int32Array {
    const p = Int32Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [p[i], p[j]] = [p[j]!, p[i]!];
    }
    return p;
  }
}

/** Something that can hand out zero-filled float32 arrays in its memory. */
export interface Allocator {
  allocate(n: number): Float32Array;
}

/** A copy of `a` that lives in the allocator's memory. */
export function copyInto<T extends Float32Array | Int32Array>(mem: Allocator, a: T): T {
  const f = mem.allocate(a.length);
  const copy = (a instanceof Int32Array ? new Int32Array(f.buffer, f.byteOffset, a.length) : f) as T;
  copy.set(a);
  return copy;
}

/**
 * Asserts |actual[i] − expected[i]| <= tol(i, expected[i]) for the first `n` elements (all when omitted),
 * naming the worst element; returns the largest error ratio error / tolerance seen (for reporting).
 */
export function assertClose(
  what: string,
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: (i: number, expected: number) => number,
  n = expected.length,
): number {
  let worst = 0;
  let worstAt = -1;
  for (let i = 0; i < n; i++) {
    const e = expected[i]!;
    const a = actual[i]!;
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    const err = Math.abs(a - e);
    // NaN on one side only, or infinities that differ, count as infinitely wrong.
    const ratio =
      a === e
        ? 0
        : Number.isNaN(err) || err === Number.POSITIVE_INFINITY
          ? Number.POSITIVE_INFINITY
          : err / tol(i, e);
    if (ratio > worst) {
      worst = ratio;
      worstAt = i;
    }
  }
  if (worst > 1) {
    assert.fail(
      `${what}: element ${worstAt} is ${actual[worstAt]}, expected ${expected[worstAt]} ` +
        `(error ${Math.abs(actual[worstAt]! - expected[worstAt]!)} > tolerance ${tol(worstAt, expected[worstAt]!)})`,
    );
  }
  return worst;
}

/** Largest |a[i]| over the first `n` elements. */
export function maxAbs(a: ArrayLike<number>, n = a.length): number {
  let m = 0;
  for (let i = 0; i < n; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

/** float32 unit roundoff, 2^-24. */
export const EPS32 = 2 ** -24;

/** Int8 values with the extremes −128, −127 and 127 over-represented (a third of the draws). */
export function int8Data(rng: Rng, len: number): Int8Array {
  const a = new Int8Array(len);
  for (let i = 0; i < len; i++) {
    const u = rng.next();
    a[i] = u < 0.11 ? -128 : u < 0.22 ? 127 : u < 0.33 ? -127 : rng.int(256) - 128;
  }
  return a;
}

/** Asserts out and expected are the same float32 bit patterns, naming the first element that differs. */
export function assertSameBits(label: string, out: Float32Array, expected: Float32Array): void {
  const a = new Uint32Array(out.buffer, out.byteOffset, expected.length);
  const b = new Uint32Array(expected.buffer, expected.byteOffset, expected.length);
  for (let i = 0; i < b.length; i++) {
    if (a[i] !== b[i]) assert.fail(`${label}: element ${i} is ${out[i]}, the reference gives ${expected[i]}`);
  }
}
