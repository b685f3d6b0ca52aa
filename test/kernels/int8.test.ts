// The int8 (W8A8) kernels of the CPU platform, in every build this runtime has (plain SIMD, relaxed
// SIMD), against their TypeScript reference twins (src/kernels/int8-quant.ts): bit-for-bit equal
// outputs on random shapes with odd m, n and k, weights and activations at the int8 extremes, both
// schemes (dynamic per-token, static with a zero point), one and two threads, arrays inside and outside
// the kernel memory. Where the scales are 1 the output is the int32 sum itself, which checks the int32
// accumulation exactly against a plain loop. No tolerance anywhere: every variant must give the same bits.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  Int8WeightError,
  int8Accumulate,
  quantizeDynamic,
  quantizeWeightPerChannel,
  roundHalfEven,
} from '../../src/kernels/int8-quant.js';
import type { Int8LinearData, Int8Scheme, Kernels } from '../../src/kernels/kernels.js';
import { ReferenceKernels } from '../../src/kernels/reference/reference-kernels.js';
import { enableWasmFeatures, hasRelaxedSimd } from '../../src/platforms/cpu/wasm-features.js';
import { createWasmKernels, type WasmKernels } from '../../src/platforms/cpu/wasm-kernels.js';
import { assertSameBits, int8Data, Rng } from './kernel-test-utils.js';

enableWasmFeatures();

const ref = new ReferenceKernels();

function dynamicWeight(rng: Rng, n: number, k: number): Int8LinearData {
  return { data: int8Data(rng, n * k), scheme: { kind: 'dynamic', weightScale: rng.array(n, 1e-3, 2e-2) } };
}

function staticWeight(rng: Rng, n: number, k: number): Int8LinearData {
  const quantBias = Int32Array.from({ length: n }, () => rng.int(200001) - 100000);
  const scheme: Int8Scheme = {
    kind: 'static',
    inputScale: rng.uniform(0.005, 0.05),
    inputOffset: rng.int(256) - 128,
    quantBias,
    deqScale: rng.array(n, 1e-5, 1e-3),
  };
  return { data: int8Data(rng, n * k), scheme };
}

/** Activations: random, with a row of zeros and a row of huge values that clamp (static) or set amax. */
/**
 * `data` ([n, k]) with unit scales: dynamic with weightScale 1, or static with input scale 1, offset 0,
 * no quant bias and deqScale 1 (then q = x for integer x in [-128, 127], and the output is the int32 sum).
 */
function unitScales(data: Int8Array, n: number, kind: 'dynamic' | 'static'): Int8LinearData {
  const ones = new Float32Array(n).fill(1);
  if (kind === 'dynamic') return { data, scheme: { kind, weightScale: ones } };
  return {
    data,
    scheme: { kind, inputScale: 1, inputOffset: 0, quantBias: new Int32Array(n), deqScale: ones },
  };
}

function activations(rng: Rng, m: number, k: number): Float32Array {
  const x = rng.array(m * k, -3, 3);
  if (m > 2) x.fill(0, k, 2 * k);
  if (m > 3) for (let c = 0; c < k; c++) x[3 * k + c] = (c % 2 ? 1 : -1) * 1e4 * rng.next();
  return x;
}

const SHAPES: [number, number, number][] = [];
for (const m of [1, 2, 3, 5, 7, 8, 13, 32, 33]) {
  for (const [n, k] of [
    [1, 1],
    [7, 3],
    [8, 4],
    [9, 5],
    [17, 33],
    [31, 130],
    [64, 257],
    [10, 4100],
  ] as const) {
    SHAPES.push([m, n, k]);
  }
}

describe('int8 reference arithmetic', () => {
  it('rounds half to even', () => {
    assert.deepEqual(
      [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, -3.7].map(roundHalfEven),
      [0, 2, 2, -0, -2, -2, 2, -4],
    );
  });

  it('quantizes a row per token to [-127, 127] with scale amax / 127', () => {
    const x = Float32Array.from([0.5, -2, 1.25, 0.01]);
    const q = new Int32Array(4);
    const s = new Float32Array(1);
    quantizeDynamic(q, s, x, 1, 4);
    assert.deepEqual([...q], [32, -127, 79, 1]);
    assert.equal(s[0], Math.fround(2 / 127));
  });

  it('per-channel weight quantization dequantizes within half a step', () => {
    const rng = new Rng(5);
    const w = rng.array(6 * 40, -0.2, 0.2);
    const q = quantizeWeightPerChannel({ dtype: 'f32', data: w }, 6, 40);
    assert.equal(q.scheme.kind, 'dynamic');
    if (q.scheme.kind !== 'dynamic') return;
    for (let j = 0; j < 6; j++) {
      const s = q.scheme.weightScale[j]!;
      // Rounding to the nearest step: at most half a step, plus float32 rounding of the scale (1e-6 relative).
      for (let c = 0; c < 40; c++)
        assert.ok(Math.abs(q.data[j * 40 + c]! * s - w[j * 40 + c]!) <= s * 0.5 * (1 + 1e-6));
    }
  });
});

const VARIANTS = [
  { label: 'plain SIMD', relaxed: false, dot: 'int16' },
  { label: 'relaxed SIMD, int16 dot', relaxed: true, dot: 'int16' },
  { label: 'relaxed SIMD, relaxed i8×i7 dot', relaxed: true, dot: 'relaxed' },
] as const;

for (const variant of VARIANTS) {
  const skip = variant.relaxed && !hasRelaxedSimd() ? 'this runtime has no relaxed SIMD' : false;
  describe(`int8 linear, ${variant.label} build`, { skip }, () => {
    let one: WasmKernels;
    let two: WasmKernels;
    before(async () => {
      one = await createWasmKernels({ relaxed: variant.relaxed, numThreads: 1, int8Dot: variant.dot });
      // minSecondsPerThread 0: every GEMM is split over both threads, however small.
      two = await createWasmKernels({
        relaxed: variant.relaxed,
        numThreads: 2,
        minSecondsPerThread: 0,
        int8Dot: variant.dot,
      });
    });
    after(async () => {
      await one.dispose();
      await two.dispose();
    });

    const compare = (
      kernels: Kernels,
      weight: Int8LinearData,
      x: Float32Array,
      m: number,
      n: number,
      k: number,
      label: string,
    ) => {
      const expected = new Float32Array(m * n);
      ref.linear(expected, x, ref.prepareInt8Linear(weight, n, k), m);
      const w = kernels.prepareInt8Linear(weight, n, k);
      assert.equal(w.dtype, 'int8');
      const out = new Float32Array(m * n);
      kernels.linear(out, x, w, m);
      assertSameBits(label, out, expected);
      kernels.freeLinear(w);
    };

    it('dynamic W8A8 matches the reference bit for bit (1 and 2 threads)', () => {
      const rng = new Rng(21);
      for (const [m, n, k] of SHAPES) {
        const weight = dynamicWeight(rng, n, k);
        const x = activations(rng, m, k);
        compare(one, weight, x, m, n, k, `dynamic 1 thread m=${m} n=${n} k=${k}`);
        compare(two, weight, x, m, n, k, `dynamic 2 threads m=${m} n=${n} k=${k}`);
      }
    });

    it('static W8A8 (zero point, quant bias) matches the reference bit for bit (1 and 2 threads)', () => {
      const rng = new Rng(22);
      for (const [m, n, k] of SHAPES) {
        const weight = staticWeight(rng, n, k);
        const x = activations(rng, m, k);
        compare(one, weight, x, m, n, k, `static 1 thread m=${m} n=${n} k=${k}`);
        compare(two, weight, x, m, n, k, `static 2 threads m=${m} n=${n} k=${k}`);
      }
    });

    it('accumulates exactly in int32: with unit scales the output is the integer sum', () => {
      const rng = new Rng(23);
      // |sum| <= 128·128·k < 2^24 for k <= 1000, so float32 holds every sum exactly.
      for (const [m, n, k] of [
        [1, 9, 999],
        [6, 17, 301],
        [33, 8, 64],
        // Rows span several of the kernel's row blocks (256 KiB of quantized activations each).
        [70, 9, 1000],
      ] as const) {
        const data = int8Data(rng, n * k);
        // Integer activations in [-127, 127] with 127 in every row: amax = 127, so q = x exactly.
        const xi = Int32Array.from({ length: m * k }, (_, i) => (i % k === 0 ? 127 : rng.int(255) - 127));
        const acc = new Int32Array(m * n);
        int8Accumulate(acc, xi, data, m, n, k);
        // The same sums in float64, independently of the int32 reference.
        for (let i = 0; i < m; i++) {
          for (let j = 0; j < n; j++) {
            let s = 0;
            for (let c = 0; c < k; c++) s += xi[i * k + c]! * data[j * k + c]!;
            assert.equal(acc[i * n + j], s);
          }
        }
        const x = Float32Array.from(xi);
        const dynamic = unitScales(data, n, 'dynamic');
        // Static with scale 1 and offset 0: q = x, also over [-128, 127].
        const xs = Float32Array.from({ length: m * k }, () => rng.int(256) - 128);
        const accS = new Int32Array(m * n);
        int8Accumulate(accS, Int32Array.from(xs), data, m, n, k);
        const stat = unitScales(data, n, 'static');
        for (const kernels of [one, two]) {
          const out = new Float32Array(m * n);
          const w = kernels.prepareInt8Linear(dynamic, n, k);
          kernels.linear(out, x, w, m);
          assert.deepEqual(Int32Array.from(out), acc, `dynamic sums m=${m} n=${n} k=${k}`);
          const ws = kernels.prepareInt8Linear(stat, n, k);
          kernels.linear(out, xs, ws, m);
          assert.deepEqual(Int32Array.from(out), accS, `static sums m=${m} n=${n} k=${k}`);
          kernels.freeLinear(w);
          kernels.freeLinear(ws);
        }
      }
    });

    it('stays exact at the extremes over long rows (no int32 or int16 overflow in any tile)', () => {
      // Weights of −128 and 127, static activations of −128 and 127 with scale 1: every product is at
      // its largest magnitude, over k up to 4100 (many of the single-row tiles' 64-quad blocks). Both
      // sides are compared bit for bit against the reference (its int32 sums, then float32).
      for (const [m, n, k] of [
        [1, 16, 256],
        [1, 24, 257],
        [1, 16, 4100],
        [2, 16, 4100],
        [5, 9, 4100],
      ] as const) {
        for (const pattern of ['all -128', 'mixed'] as const) {
          const data = Int8Array.from({ length: n * k }, (_, i) =>
            pattern === 'all -128' || (i * 7) % 3 === 0 ? -128 : 127,
          );
          const xs = Float32Array.from({ length: m * k }, (_, i) =>
            pattern === 'all -128' || (i * 5) % 4 !== 0 ? -128 : 127,
          );
          const stat = unitScales(data, n, 'static');
          const dynamic = unitScales(data, n, 'dynamic');
          compare(one, stat, xs, m, n, k, `static extremes ${pattern} m=${m} n=${n} k=${k}`);
          compare(two, stat, xs, m, n, k, `static extremes ${pattern} 2 threads m=${m} n=${n} k=${k}`);
          compare(one, dynamic, xs, m, n, k, `dynamic extremes ${pattern} m=${m} n=${n} k=${k}`);
        }
      }
    });

    it('reads and writes arrays that live in the kernel memory in place', () => {
      const rng = new Rng(24);
      const [m, n, k] = [5, 19, 70];
      const weight = dynamicWeight(rng, n, k);
      const xOut = activations(rng, m, k);
      const expected = new Float32Array(m * n);
      ref.linear(expected, xOut, ref.prepareInt8Linear(weight, n, k), m);
      const x = two.allocate(m * k);
      x.set(xOut);
      const out = two.allocate(m * n);
      const w = two.prepareInt8Linear(weight, n, k);
      const before = two.copyStats;
      two.linear(out, x, w, m);
      assertSameBits('in place', out, expected);
      assert.deepEqual(two.copyStats, before, 'nothing copied for arrays in the arena');
      two.free(x);
      two.free(out);
    });

    it('uses the asked-for build and int8 dot', () => {
      assert.equal(one.name, variant.relaxed ? 'wasm-relaxed-simd x1' : 'wasm-simd x1');
      assert.equal(one.int8Dot, variant.dot);
      if (!variant.relaxed) assert.throws(() => (one.int8Dot = 'relaxed'), /needs the relaxed-SIMD build/);
    });

    it('refuses bad int8 weights and misuse with a message naming the problem', () => {
      const rng = new Rng(25);
      const good = dynamicWeight(rng, 4, 8);
      assert.throws(() => one.prepareInt8Linear(good, 4, 9), /Int8Array of n·k = 36/);
      assert.throws(
        () =>
          one.prepareInt8Linear(
            { data: good.data, scheme: { kind: 'dynamic', weightScale: new Float32Array(3) } },
            4,
            8,
          ),
        (e: unknown) =>
          e instanceof Int8WeightError && /weightScale must be a Float32Array of n = 4/.test(e.message),
      );
      const st = staticWeight(rng, 4, 8);
      const ss = st.scheme;
      assert.ok(ss.kind === 'static');
      assert.throws(
        () => one.prepareInt8Linear({ ...st, scheme: { ...ss, inputScale: 0 } }, 4, 8),
        /inputScale = 0/,
      );
      assert.throws(
        () => one.prepareInt8Linear({ ...st, scheme: { ...ss, inputOffset: 128 } }, 4, 8),
        /inputOffset = 128/,
      );
      assert.throws(
        () =>
          one.prepareInt8Linear({ data: good.data, scheme: { kind: 'fp8' } as unknown as Int8Scheme }, 4, 8),
        /scheme kind 'fp8'; allowed: 'dynamic', 'static'/,
      );
      const w = one.prepareInt8Linear(good, 4, 8);
      assert.throws(() => one.linear(new Float32Array(4), new Float32Array(7), w, 1), /x has 7 elements/);
      one.freeLinear(w);
      assert.throws(() => one.linear(new Float32Array(4), new Float32Array(8), w, 1), /freed/);
    });
  });
}
