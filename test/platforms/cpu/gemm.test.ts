// The wasm GEMM against a float64 triple loop on awkward shapes, for every build variant (plain SIMD,
// relaxed SIMD), weight storage (f32, bf16, from f32 or bf16 raw data) and thread count (1, 2, with
// every GEMM split over both threads so that the split itself is tested on small shapes).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { f32ToBf16, type WeightDType } from '../../../src/kernels/kernels.js';
import { enableWasmFeatures, hasRelaxedSimd } from '../../../src/platforms/cpu/wasm-features.js';
import { createWasmKernels, type WasmKernels } from '../../../src/platforms/cpu/wasm-kernels.js';
import { assertGemmClose, randomF32, roundedToBf16 } from './gemm-check.js';

const MS = [1, 2, 3, 5, 8, 17, 64];
const NS = [1, 7, 8, 9, 33, 100];
const KS = [1, 3, 16, 67, 130];

enableWasmFeatures();
const variants: { relaxed: boolean; skip: string | false }[] = [
  { relaxed: false, skip: false },
  { relaxed: true, skip: hasRelaxedSimd() ? false : 'this runtime has no relaxed SIMD' },
];

for (const { relaxed, skip } of variants) {
  for (const numThreads of [1, 2]) {
    describe(`wasm GEMM, ${relaxed ? 'relaxed' : 'plain'} SIMD, ${numThreads} thread(s)`, { skip }, () => {
      let kernels: WasmKernels;
      before(async () => {
        kernels = await createWasmKernels({ numThreads, relaxed, minSecondsPerThread: 0 });
      });
      after(async () => {
        await kernels?.dispose();
      });

      for (const dtype of ['f32', 'bf16'] as WeightDType[]) {
        it(`matches the reference for every m, n, k with ${dtype} weights`, () => {
          assert.equal(kernels.relaxed, relaxed);
          let seed = 1;
          for (const n of NS) {
            for (const k of KS) {
              const w = randomF32(n * k, seed++);
              const stored = dtype === 'bf16' ? roundedToBf16(w) : w;
              const lw = kernels.prepareLinear({ dtype: 'f32', data: w }, n, k, dtype);
              for (const m of MS) {
                const x = randomF32(m * k, seed++);
                const out = new Float32Array(m * n).fill(Number.NaN);
                kernels.linear(out, x, lw, m);
                assertGemmClose(out, x, stored, m, n, k, `${dtype} m=${m} n=${n} k=${k}`);
              }
              kernels.freeLinear(lw);
            }
          }
        });
      }

      it('takes bf16 raw data, widening it exactly for f32 storage', () => {
        const [m, n, k] = [5, 9, 67];
        const w = roundedToBf16(randomF32(n * k, 99));
        const bits = new Uint16Array(n * k);
        f32ToBf16(bits, w);
        const x = randomF32(m * k, 100);
        for (const dtype of ['f32', 'bf16'] as WeightDType[]) {
          const lw = kernels.prepareLinear({ dtype: 'bf16', data: bits }, n, k, dtype);
          const out = new Float32Array(m * n);
          kernels.linear(out, x, lw, m);
          assertGemmClose(out, x, w, m, n, k, `bf16 raw, ${dtype} storage`);
          kernels.freeLinear(lw);
        }
      });
    });
  }
}

describe('wasm GEMM on larger shapes', () => {
  it('splits larger GEMMs over 2 threads, with k-blocks (bf16 widening, large x) correctly', async () => {
    const kernels = await createWasmKernels({ numThreads: 2 });
    try {
      // A decode GEMV; a prefill-like GEMM; k past the 2048-step widening block; x past 8 MiB (k-blocks
      // of 1024 accumulate into out).
      for (const [m, n, k] of [
        [1, 1000, 300],
        [70, 203, 257],
        [20, 20, 2100],
        [1100, 9, 2000],
      ] as const) {
        const w = randomF32(n * k, m);
        const x = randomF32(m * k, m + 1);
        for (const dtype of ['f32', 'bf16'] as WeightDType[]) {
          const lw = kernels.prepareLinear({ dtype: 'f32', data: w }, n, k, dtype);
          const out = new Float32Array(m * n);
          kernels.linear(out, x, lw, m);
          assertGemmClose(
            out,
            x,
            dtype === 'bf16' ? roundedToBf16(w) : w,
            m,
            n,
            k,
            `${dtype} m=${m} n=${n} k=${k}`,
          );
          kernels.freeLinear(lw);
        }
      }
    } finally {
      await kernels.dispose();
    }
  });

  it('rejects mismatched sizes with a message that says what is needed', async () => {
    const kernels = await createWasmKernels({ numThreads: 1 });
    try {
      const lw = kernels.prepareLinear({ dtype: 'f32', data: new Float32Array(12) }, 3, 4, 'f32');
      assert.throws(() => kernels.linear(new Float32Array(6), new Float32Array(7), lw, 2), {
        name: 'WasmKernelsError',
        message: /x has 7 elements; \[m, k\] needs 8/,
      });
      assert.throws(() => kernels.prepareLinear({ dtype: 'f32', data: new Float32Array(5) }, 3, 4, 'f32'), {
        name: 'WasmKernelsError',
      });
      kernels.freeLinear(lw);
      assert.throws(() => kernels.linear(new Float32Array(6), new Float32Array(8), lw, 2), /freed/);
    } finally {
      await kernels.dispose();
    }
  });
});
