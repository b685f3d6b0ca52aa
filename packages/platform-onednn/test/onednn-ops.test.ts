// The native operators between the matrix products (rmsNorm, siluAndMul, add, copyRows,
// weightedScatterAdd) against Duet's TypeScript reference twins, on ordinary arrays and on the WebAssembly
// kernels' shared memory, at sizes below and above the point where the addon splits a loop across
// threads. Tolerances at each check. Also: the checks in native code that keep bad rows and sizes out.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadAddon } from '../dist/addon.js';
import { createOnednnPlatform, type OnednnKernels } from '../dist/index.js';
import { assertClose, ReferenceKernels, Rng } from './duet-test-deps.js';
import { skipReason } from './onednn-available.js';

const ref = new ReferenceKernels();
/** float32's unit in the last place, relative: 2^-23. */
const ULP = 2 ** -23;
/** [m, d]: a decode-sized case, odd widths for the vector tails, and one past the threading threshold. */
const SHAPES: readonly [m: number, d: number][] = [
  [1, 2048],
  [3, 37],
  [5, 1408],
  [64, 1024],
];

describe('native operators against the reference twins', { skip: skipReason() }, () => {
  let kernels: OnednnKernels;
  before(async () => {
    const load = loadAddon();
    if (!('addon' in load)) throw new Error(load.reason);
    kernels = await createOnednnPlatform(load.addon).createKernels({ numThreads: 2 });
  });
  after(async () => {
    await kernels?.dispose();
  });

  /** `x` as an ordinary array and as a copy in the kernels' shared memory. */
  function placed(x: Float32Array): Float32Array[] {
    const shared = kernels.allocate(x.length);
    shared.set(x);
    return [x, shared];
  }

  it('rmsNorm: within one ulp (the sum of squares is double as in the reference; only its order differs)', () => {
    const rng = new Rng(11);
    for (const [m, d] of SHAPES) {
      const x = rng.array(m * d, -4, 4);
      const w = rng.array(d, 0.5, 1.5);
      const expected = new Float32Array(m * d);
      ref.rmsNorm(expected, x, w, m, d, 1e-6);
      for (const xi of placed(x)) {
        const out = new Float32Array(m * d);
        kernels.rmsNorm(out, xi, w, m, d, 1e-6);
        assertClose(`rmsNorm m=${m} d=${d}`, out, expected, (_, e) => ULP * Math.abs(e));
      }
    }
  });

  it('siluAndMul: within 4 ulp (float32 expf, add, divide and multiply against the double reference)', () => {
    const rng = new Rng(12);
    for (const [m, d] of SHAPES) {
      const gateUp = rng.array(2 * m * d, -12, 12);
      const expected = new Float32Array(m * d);
      ref.siluAndMul(expected, gateUp, m, d);
      for (const g of placed(gateUp)) {
        const out = kernels.allocate(m * d);
        kernels.siluAndMul(out, g, m, d);
        // 4 ulp of the value, and 1e-30 absolute for results that underflow towards zero.
        assertClose(`siluAndMul m=${m} d=${d}`, out, expected, (_, e) => 4 * ULP * Math.abs(e) + 1e-30);
      }
    }
  });

  it('add and weightedScatterAdd: the reference bits (one rounding of the same double arithmetic)', () => {
    const rng = new Rng(13);
    for (const [m, d] of SHAPES) {
      const a = rng.array(m * d);
      const b = rng.array(m * d);
      const sum = new Float32Array(m * d);
      ref.add(sum, a, b, m * d);
      for (const ai of placed(a)) {
        const out = new Float32Array(m * d);
        kernels.add(out, ai, b, m * d);
        assertClose(`add n=${m * d}`, out, sum, () => 0);
      }
      // Rows named more than once accumulate in order: the MoE combine of a token's experts.
      const numOut = Math.max(1, m >> 1);
      const rows = Int32Array.from({ length: m }, () => rng.int(numOut));
      const weights = rng.array(m, 0, 1);
      const base = rng.array(numOut * d);
      const expected = base.slice();
      ref.weightedScatterAdd(expected, a, rows, weights, m, d);
      for (const out of placed(base.slice())) {
        kernels.weightedScatterAdd(out, a, rows, weights, m, d);
        assertClose(`weightedScatterAdd m=${m} d=${d}`, out, expected, () => 0);
      }
    }
  });

  it('copyRows: gathers, scatters and column slices copy exactly', () => {
    const rng = new Rng(14);
    for (const [m, d] of SHAPES) {
      const srcStride = d + 7;
      const dstStride = d + 3;
      const numSrc = m + 4;
      const src = rng.array(numSrc * srcStride);
      const srcRows = Int32Array.from({ length: m }, () => rng.int(numSrc));
      // A permutation: scattered rows must not repeat.
      const dstRows = Int32Array.from({ length: m + 2 }, (_, i) => i)
        .sort(() => rng.next() - 0.5)
        .subarray(0, m);
      for (const [dr, sr] of [
        [null, null],
        [null, srcRows],
        [dstRows, null],
        [dstRows, srcRows],
      ] as [Int32Array | null, Int32Array | null][]) {
        const expected = new Float32Array((m + 2) * dstStride);
        ref.copyRows(expected, dr, dstStride, 2, src, sr, srcStride, 5, m, d);
        for (const s of placed(src)) {
          const out = new Float32Array((m + 2) * dstStride);
          kernels.copyRows(out, dr, dstStride, 2, s, sr, srcStride, 5, m, d);
          assertClose(
            `copyRows m=${m} d=${d} gather=${sr !== null} scatter=${dr !== null}`,
            out,
            expected,
            () => 0,
          );
        }
      }
    }
  });

  it('refuses rows and sizes outside the arrays before touching memory', () => {
    const dst = new Float32Array(4 * 8);
    const src = new Float32Array(4 * 8).fill(1);
    // Row 4 of dst starts at 32: outside. Nothing is written, not even the rows before it.
    assert.throws(
      () => kernels.copyRows(dst, Int32Array.of(0, 4), 8, 0, src, null, 8, 0, 2, 8),
      /destination row 1 \(4\) lies outside dst/,
    );
    assert.ok(dst.every((v) => v === 0));
    assert.throws(
      () => kernels.copyRows(dst, null, 8, 0, src, Int32Array.of(-1), 8, 0, 1, 8),
      /source row 0/,
    );
    assert.throws(() => kernels.copyRows(dst, null, 8, 1, src, null, 8, 0, 4, 8), /destination row 3/);
    assert.throws(
      () => kernels.copyRows(dst, Int32Array.of(0), 8, 0, src, null, 8, 0, 2, 8),
      /dstRows: 1 elements/,
    );
    assert.throws(
      () => kernels.weightedScatterAdd(dst, src, Int32Array.of(0, 9), new Float32Array(2), 2, 8),
      /row 9 \(entry 1\) lies outside out/,
    );
    assert.throws(() => kernels.add(dst, src, new Float32Array(3), 4), /b: 3 elements, at least 4/);
    assert.throws(() => kernels.rmsNorm(dst, src, new Float32Array(7), 4, 8, 1e-6), /weight: 7 elements/);
    assert.throws(() => kernels.siluAndMul(dst, src, 4, 8), /gateUp: 32 elements, at least 64/);
    assert.throws(() => kernels.rmsNorm(dst, src, new Float32Array(8), 1.5, 8, 1e-6), /m must be an integer/);
    assert.throws(
      () => kernels.add(dst, new Int32Array(32) as unknown as Float32Array, src, 4),
      /a: wrong array type/,
    );
  });
});
