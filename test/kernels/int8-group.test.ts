// Int8 (W8A8) with activation scales per token and group of k (Int8Scheme's groupSize): the reference twin
// against a float64 reading of its own definition, and the CPU platform's kernels (plain and relaxed SIMD
// builds, whichever int8 dot is chosen, one and two threads) against the twin bit for bit, on shapes
// whose k is and is not a multiple of the group (the last group shorter), group sizes from 4 to 256.
// The kernel comparisons have no tolerance: the int32 group sums are exact and the float32 folds run
// in the same order on both sides.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  Int8WeightError,
  int8Linear,
  numActGroups,
  quantizeDynamicGroups,
} from '../../src/kernels/int8-quant.js';
import type { Int8LinearData } from '../../src/kernels/kernels.js';
import { ReferenceKernels } from '../../src/kernels/reference/reference-kernels.js';
import { enableWasmFeatures, hasRelaxedSimd } from '../../src/platforms/cpu/wasm-features.js';
import { createWasmKernels, type WasmKernels } from '../../src/platforms/cpu/wasm-kernels.js';
import { assertSameBits, int8Data, Rng } from './kernel-test-utils.js';

enableWasmFeatures();

const ref = new ReferenceKernels();

function groupWeight(rng: Rng, n: number, k: number, groupSize: number): Int8LinearData {
  return {
    data: int8Data(rng, n * k),
    scheme: { kind: 'dynamic', weightScale: rng.array(n, 1e-3, 2e-2), groupSize },
  };
}

/** Activations with a zero row and a row whose groups differ in range by orders of magnitude. */
function activations(rng: Rng, m: number, k: number): Float32Array {
  const x = rng.array(m * k, -3, 3);
  if (m > 2) x.fill(0, k, 2 * k);
  if (m > 3) for (let c = 0; c < k; c++) x[3 * k + c] = x[3 * k + c]! * 10 ** ((c >> 3) % 5) * 1e-2;
  return x;
}

describe('int8 per-token-group reference arithmetic', () => {
  it('quantizes each group of a row on its own scale (the last group shorter)', () => {
    const x = Float32Array.from([0.5, -2, 1.25, 0.01, 0.1, 0.2, -0.4, 0.05, 3]);
    const q = new Int32Array(9);
    const s = new Float32Array(3);
    quantizeDynamicGroups(q, s, x, 1, 9, 4);
    assert.deepEqual([...q], [32, -127, 79, 1, 32, 64, -127, 16, 127]);
    assert.deepEqual(
      [...s],
      [2, 0.4, 3].map((a) => Math.fround(Math.fround(a) / 127)),
    );
    assert.equal(numActGroups(9, 4), 3);
  });

  it('a group spanning all of k gives per-token W8A8 bit for bit', () => {
    const rng = new Rng(31);
    for (const [m, n, k] of [
      [3, 9, 64],
      [5, 17, 100],
    ] as const) {
      const g = groupWeight(rng, n, k, 128);
      assert.ok(g.scheme.kind === 'dynamic');
      const perToken: Int8LinearData = {
        data: g.data,
        scheme: { kind: 'dynamic', weightScale: g.scheme.weightScale },
      };
      const x = activations(rng, m, k);
      const a = new Float32Array(m * n);
      const b = new Float32Array(m * n);
      int8Linear(a, x, g, m, n, k);
      int8Linear(b, x, perToken, m, n, k);
      assertSameBits(`m=${m} n=${n} k=${k}`, a, b);
    }
  });

  it('agrees with the definition read in float64', () => {
    // out = weightScale · Σ_g aScale[g] · Σ_{c∈g} q·w, with q and the scales from quantizeDynamicGroups;
    // the twin folds in float32, so the difference is float32 rounding of the fold: at most ng + 1
    // roundings of values bounded by Σ_g |aScale · sum_g| · weightScale, i.e. (ng + 1) · 2^-24 relative.
    const rng = new Rng(32);
    const [m, n, k, G] = [4, 11, 150, 32];
    const w = groupWeight(rng, n, k, G);
    const x = activations(rng, m, k);
    const ng = numActGroups(k, G);
    const q = new Int32Array(m * k);
    const s = new Float32Array(m * ng);
    quantizeDynamicGroups(q, s, x, m, k, G);
    const out = new Float32Array(m * n);
    int8Linear(out, x, w, m, n, k);
    const ws = (w.scheme as { weightScale: Float32Array }).weightScale;
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let f = 0;
        let bound = 0;
        for (let g = 0; g < ng; g++) {
          let acc = 0;
          for (let c = g * G; c < Math.min(k, (g + 1) * G); c++) acc += q[i * k + c]! * w.data[j * k + c]!;
          f += acc * s[i * ng + g]!;
          bound += Math.abs(acc * s[i * ng + g]!);
        }
        const tol = (ng + 1) * 2 ** -24 * bound * ws[j]!;
        assert.ok(Math.abs(out[i * n + j]! - f * ws[j]!) <= tol, `out[${i}, ${j}]`);
      }
    }
  });
});

const VARIANTS = [
  { label: 'plain SIMD', relaxed: false, dot: 'int16' },
  { label: 'relaxed SIMD, int16 dot', relaxed: true, dot: 'int16' },
  { label: 'relaxed SIMD, relaxed dot chosen', relaxed: true, dot: 'relaxed' },
] as const;

const SHAPES: [m: number, n: number, k: number][] = [];
for (const m of [1, 2, 3, 4, 5, 8, 13, 33]) {
  for (const [n, k] of [
    [1, 4],
    [7, 36],
    [9, 64],
    [17, 130],
    [24, 257],
    [10, 1408],
  ] as const) {
    SHAPES.push([m, n, k]);
  }
}

for (const variant of VARIANTS) {
  const skip = variant.relaxed && !hasRelaxedSimd() ? 'this runtime has no relaxed SIMD' : false;
  describe(`int8 linear with activation groups, ${variant.label} build`, { skip }, () => {
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
      kernels: WasmKernels,
      weight: Int8LinearData,
      x: Float32Array,
      m: number,
      label: string,
    ) => {
      const n = weight.scheme.kind === 'dynamic' ? weight.scheme.weightScale.length : 0;
      const k = weight.data.length / n;
      const expected = new Float32Array(m * n);
      ref.linear(expected, x, ref.prepareInt8Linear(weight, n, k), m);
      const w = kernels.prepareInt8Linear(weight, n, k);
      const out = new Float32Array(m * n);
      kernels.linear(out, x, w, m);
      assertSameBits(label, out, expected);
      kernels.freeLinear(w);
    };

    it('matches the reference bit for bit for groups of 4 to 256 (1 and 2 threads)', () => {
      const rng = new Rng(33);
      for (const G of [4, 12, 32, 128, 256]) {
        for (const [m, n, k] of SHAPES) {
          const weight = groupWeight(rng, n, k, G);
          const x = activations(rng, m, k);
          compare(one, weight, x, m, `G=${G} 1 thread m=${m} n=${n} k=${k}`);
          compare(two, weight, x, m, `G=${G} 2 threads m=${m} n=${n} k=${k}`);
        }
      }
    });

    it('large prefills (several row blocks, threaded quantization) match the reference', () => {
      const rng = new Rng(34);
      for (const [m, n, k, G] of [
        [70, 9, 4100, 128],
        [130, 16, 1000, 32],
      ] as const) {
        const weight = groupWeight(rng, n, k, G);
        const x = activations(rng, m, k);
        compare(two, weight, x, m, `G=${G} m=${m} n=${n} k=${k}`);
      }
    });

    it('stays exact at the extremes: groups of 256 of −128 weights and full-scale activations', () => {
      // Every |product| is 127·128, the most a quantized activation and an int8 weight make; 64 quads
      // per group is the single-row tiles' largest block (no int32 overflow in their scaled sums).
      for (const [m, n, k] of [
        [1, 16, 1024],
        [1, 24, 1030],
        [5, 9, 512],
      ] as const) {
        const data = new Int8Array(n * k).fill(-128);
        const weight: Int8LinearData = {
          data,
          scheme: { kind: 'dynamic', weightScale: new Float32Array(n).fill(1), groupSize: 256 },
        };
        // ±127: every group's amax is 127, so its scale is 1 and q = x.
        const x = Float32Array.from({ length: m * k }, (_, i) => (i % 3 === 0 ? -127 : 127));
        compare(one, weight, x, m, `extremes m=${m} n=${n} k=${k}`);
        // With unit scales the output is the integer sum (|sum| ≤ 128·127·1030 < 2^24: exact in float32).
        const out = new Float32Array(m * n);
        const w = one.prepareInt8Linear(weight, n, k);
        one.linear(out, x, w, m);
        for (let i = 0; i < m; i++) {
          let s = 0;
          for (let c = 0; c < k; c++) s += -128 * x[i * k + c]!;
          assert.equal(out[i * n], s, `row ${i}`);
        }
        one.freeLinear(w);
      }
    });

    it('refuses a group size the kernels do not take, naming what is allowed', () => {
      const rng = new Rng(35);
      for (const G of [0, 2, 6, 260, 512, 2.5]) {
        assert.throws(
          () => one.prepareInt8Linear(groupWeight(rng, 4, 8, G), 4, 8),
          (e: unknown) =>
            e instanceof Int8WeightError &&
            e.message.includes(`groupSize = ${G}`) &&
            e.message.includes('a multiple of 4 from 4 to 256'),
        );
      }
    });
  });
}
