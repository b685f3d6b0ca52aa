// The kernels that move and combine activations (add, sigmoid, copyRows, weightedScatterAdd, embedding,
// groupedTopK, allocateActivations / allocateIndices), on the reference kernels and on every usable
// platform's kernels, against small cases worked out by hand and against the contract's formulas on random
// inputs. Data movement and the routing choice are exact; sigmoid may differ from float64 by the
// float32 rounding of its result (relative 2⁻²⁴ ≈ 6e-8).

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { f32ToBf16 } from '../../src/kernels/kernels.js';
import { kernelSetsToTest } from '../helpers/platforms.js';
import { Rng } from './kernel-test-utils.js';

for (const [name, make] of await kernelSetsToTest(2)) {
  describe(`activation kernels on ${name}`, async () => {
    const k = await make();
    after(() => k.dispose());

    test('allocateActivations / allocateIndices give zero-filled buffers of the asked size', () => {
      const a = k.allocateActivations(37);
      const b = k.allocateIndices(5);
      assert.ok(a instanceof Float32Array && b instanceof Int32Array);
      assert.deepEqual([a.length, b.length], [37, 5]);
      assert.ok(a.every((v) => v === 0) && b.every((v) => v === 0));
    });

    test('add: out = a + b, in place on a', () => {
      const a = Float32Array.of(1, 2, 3, 4);
      k.add(a, a, Float32Array.of(10, 20, 30, 40), 3);
      assert.deepEqual([...a], [11, 22, 33, 4]);
    });

    test('sigmoid matches 1 / (1 + e^-x) within float32 rounding', () => {
      const rng = new Rng(3);
      const x = Float32Array.from({ length: 101 }, () => rng.uniform(-8, 8));
      const out = new Float32Array(101);
      k.sigmoid(out, x, 101);
      x.forEach((v, i) => {
        const want = 1 / (1 + Math.exp(-v));
        assert.ok(Math.abs(out[i]! - want) <= 6e-8 * want + 1e-30, `sigmoid(${v}) = ${out[i]}, want ${want}`);
      });
    });

    test('copyRows: column slice, gather with source stride and offset, scatter into a cache', () => {
      // src [3, 4] = rows 0..2 of 0..11.
      const src = Float32Array.from({ length: 12 }, (_, i) => i);
      const slice = new Float32Array(6);
      k.copyRows(slice, null, 2, 0, src, null, 4, 1, 3, 2);
      assert.deepEqual([...slice], [1, 2, 5, 6, 9, 10]);
      const gathered = new Float32Array(9).fill(-1);
      // Rows 2 and 0 of src, columns 1..2, into columns 1..2 of a [3, 3] output's first two rows.
      k.copyRows(gathered, null, 3, 1, src, Int32Array.of(2, 0), 4, 1, 2, 2);
      assert.deepEqual([...gathered], [-1, 9, 10, -1, 1, 2, -1, -1, -1]);
      // The KV-cache write: token rows into slots 3 and 1 of a [4, 2] cache.
      const cache = new Float32Array(8);
      k.copyRows(cache, Int32Array.of(3, 1), 2, 0, Float32Array.of(7, 8, 5, 6), null, 2, 0, 2, 2);
      assert.deepEqual([...cache], [0, 0, 5, 6, 0, 0, 7, 8]);
    });

    test('weightedScatterAdd accumulates weighted rows, a repeated row in order', () => {
      const out = Float32Array.of(1, 1, 0, 0, 2, 2);
      const x = Float32Array.of(1, 2, 3, 4, 5, 6);
      k.weightedScatterAdd(out, x, Int32Array.of(2, 0, 2), Float32Array.of(0.5, 2, -1), 3, 2);
      // Row 2: 2 + 0.5·[1, 2] − 1·[5, 6]; row 0: 1 + 2·[3, 4].
      assert.deepEqual([...out], [7, 9, 0, 0, -2.5, -3]);
    });

    test('embedding: rows of this vocabulary slice, bf16 widened exactly, zeros elsewhere', () => {
      // Rows 10..12 of the vocabulary, d = 2.
      const f32 = Float32Array.of(1.5, -2, 0.25, 3, 100, -0.125);
      const bits = new Uint16Array(6);
      f32ToBf16(bits, f32);
      for (const table of [{ dtype: 'f32', data: f32 } as const, { dtype: 'bf16', data: bits } as const]) {
        const out = new Float32Array(8).fill(9);
        k.embedding(out, table, Int32Array.of(11, 3, 12, 10), 10, 3, 4, 2);
        assert.deepEqual([...out], [0.25, 3, 0, 0, 100, -0.125, 1.5, -2], table.dtype);
      }
    });

    test('groupedTopK: groups by their best (or best two with a bias), then top-k, weights renormalised', () => {
      // 1 token, 6 experts in 3 groups of 2; keep 2 groups, pick 2 experts.
      const scores = Float32Array.of(0.1, 0.9, 0.5, 0.45, 0.3, 0.8);
      const experts = new Int32Array(2);
      const weights = new Float32Array(2);
      k.groupedTopK(experts, weights, scores, null, 1, 6, 2, 3, 2, true, 2);
      // Group bests 0.9, 0.5, 0.8: groups 0 and 2 stay; experts 1 (0.9) and 5 (0.8).
      assert.deepEqual([...experts], [1, 5]);
      // The contract's arithmetic: float32 scores, their sum and the products in float64, rounded to float32.
      const f = Math.fround;
      const sum = f(0.9) + f(0.8);
      assert.deepEqual([...weights], [f(f(0.9) * (1 / sum) * 2), f(f(0.8) * (1 / sum) * 2)]);
      // With a bias, a group scores by its best two: group 1 (0.5 + 0.45 + bias) now beats group 2.
      const bias = Float32Array.of(0, 0, 0.2, 0.2, 0, 0);
      k.groupedTopK(experts, weights, scores, bias, 1, 6, 2, 3, 2, false, 1);
      // Groups: 0.1+0.9 = 1.0, 0.7+0.65 = 1.35, 0.3+0.8 = 1.1: groups 1 and 2. Selection 0.7, 0.65, 0.3, 0.8.
      assert.deepEqual([...experts], [5, 2]);
      // Weights are the unbiased scores, not renormalised.
      assert.deepEqual([...weights], [Math.fround(0.8), Math.fround(0.5)]);
    });

    test('groupedTopK with one group is the plain top-k of the scores (random cases)', () => {
      const rng = new Rng(11);
      const m = 9;
      const E = 16;
      const K = 3;
      const scores = Float32Array.from({ length: m * E }, () => rng.uniform(0, 1));
      const experts = new Int32Array(m * K);
      const weights = new Float32Array(m * K);
      k.groupedTopK(experts, weights, scores, null, m, E, K, 1, 1, false, 1.5);
      for (let t = 0; t < m; t++) {
        const row = Array.from(scores.subarray(t * E, (t + 1) * E));
        const want = row
          .map((v, e) => [v, e] as const)
          .sort((a, b) => b[0] - a[0] || a[1] - b[1])
          .slice(0, K);
        assert.deepEqual(
          [...experts.subarray(t * K, (t + 1) * K)],
          want.map((w) => w[1]),
        );
        assert.deepEqual(
          [...weights.subarray(t * K, (t + 1) * K)],
          want.map((w) => Math.fround(w[0] * 1 * 1.5)),
        );
      }
    });
  });
}
