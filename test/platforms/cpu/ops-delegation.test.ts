// The non-GEMM methods of WasmKernels run the operator kernels (WasmOps) in the primary arena: a quick
// check against the reference twins, including arrays from allocate() and a call too large for the
// first scratch region (which makes WasmKernels enlarge the region and retry). The operators themselves
// are tested in test/kernels.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReferenceKernels } from '../../../src/kernels/reference/reference-kernels.js';
import { createWasmKernels } from '../../../src/platforms/cpu/wasm-kernels.js';
import { randomF32 } from './gemm-check.js';

/** Max |a − b| relative to max |b|. */
function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return d / s;
}

describe('WasmKernels operator delegation', () => {
  it('computes rmsNorm and softmax like the reference, on plain and allocated arrays, small and large', async () => {
    const kernels = await createWasmKernels({ numThreads: 1, arenaBytes: 64 * 1024 * 1024 });
    const ref = new ReferenceKernels();
    try {
      // 1 × 64 and 512 × 4096 (8 MiB per array: more than the first 4 MiB region).
      for (const [m, d] of [
        [1, 64],
        [512, 4096],
      ] as const) {
        const x = randomF32(m * d, d);
        const weight = randomF32(d, 3);
        const want = new Float32Array(m * d);
        ref.rmsNorm(want, x, weight, m, d, 1e-6);
        const got = new Float32Array(m * d);
        kernels.rmsNorm(got, x, weight, m, d, 1e-6);
        // float32 sums of squares over d ≤ 4096 terms: well within 1e-5 relative.
        assert.ok(relErr(got, want) < 1e-5, `rmsNorm ${m}×${d}: ${relErr(got, want)}`);
        const xa = kernels.allocate(m * d);
        xa.set(x);
        const outA = kernels.allocate(m * d);
        kernels.rmsNorm(outA, xa, weight, m, d, 1e-6);
        assert.ok(relErr(outA, want) < 1e-5, `rmsNorm allocated ${m}×${d}`);
        const s = new Float32Array(x);
        ref.softmax(s, m, d);
        kernels.softmax(xa, m, d);
        assert.ok(relErr(xa, s) < 1e-5, `softmax ${m}×${d}: ${relErr(xa, s)}`);
      }
    } finally {
      await kernels.dispose();
    }
  });

  it('splits siluAndMul over the threads on allocated arrays: the same bits as one thread', async () => {
    // minSecondsPerThread 0: every call large enough to split goes to both threads.
    const two = await createWasmKernels({
      numThreads: 2,
      minSecondsPerThread: 0,
      arenaBytes: 64 * 1024 * 1024,
    });
    const one = await createWasmKernels({ numThreads: 1, arenaBytes: 64 * 1024 * 1024 });
    const ref = new ReferenceKernels();
    try {
      for (const [m, d] of [
        [2, 5],
        [37, 100],
        [300, 1408],
      ] as const) {
        const gateUp = randomF32(m * 2 * d, m + d);
        for (let i = 0; i < gateUp.length; i++) gateUp[i]! *= 24;
        const want = new Float32Array(m * d);
        ref.siluAndMul(want, gateUp, m, d);
        const single = new Float32Array(m * d);
        one.siluAndMul(single, gateUp, m, d);
        const g2 = two.allocate(m * 2 * d);
        g2.set(gateUp);
        // A sentinel row past the output: the threads' shares must stop at m rows.
        const out2 = two.allocate((m + 1) * d).fill(-7);
        const before = two.copyStats;
        two.siluAndMul(out2, g2, m, d);
        assert.equal(two.copyStats.bytesIn, before.bytesIn, 'nothing copied in');
        assert.deepEqual(out2.subarray(0, m * d), single, `siluAndMul ${m}×${d} on 2 threads`);
        assert.ok(
          out2.subarray(m * d).every((v) => v === -7),
          'the row past m is untouched',
        );
        // The kernel's own accuracy (test/kernels/ops.test.ts): within 4.5e-7 relative of the reference.
        assert.ok(relErr(single, want) < 4.5e-7, `siluAndMul ${m}×${d}: ${relErr(single, want)}`);
        two.free(g2);
        two.free(out2);
      }
    } finally {
      await two.dispose();
      await one.dispose();
    }
  });

  it('uses allocated arrays in place even when they predate the operator kernels and a memory grow', async () => {
    const kernels = await createWasmKernels({ numThreads: 1, arenaBytes: 256 * 1024 * 1024 });
    const ref = new ReferenceKernels();
    try {
      // A KV-cache-like buffer allocated first; then the memory grows (a new buffer object) before any
      // operator runs. mlaAttention must read the cache where it is, not copy it into scratch.
      const [latent, rope, heads, blockSize, numBlocks] = [16, 8, 2, 4, 64];
      const entry = latent + rope;
      const cache = kernels.allocate(numBlocks * blockSize * entry);
      cache.set(randomF32(cache.length, 11));
      const bufferBefore = kernels.primaryMemory.buffer;
      kernels.allocate(32 * 1024 * 1024);
      assert.notEqual(kernels.primaryMemory.buffer, bufferBefore, 'the memory grew');
      const q = kernels.allocate(heads * entry);
      q.set(randomF32(q.length, 12));
      const out = kernels.allocate(heads * latent);
      const blockTable = Int32Array.from([5, 9, 2]);
      const positions = Int32Array.from([10]);
      const before = kernels.copyStats;
      kernels.mlaAttention(out, q, cache, blockTable, positions, 1, heads, latent, rope, blockSize, 0.3);
      const after = kernels.copyStats;
      // Only the two small index arrays (plain Int32Arrays) are copied in; nothing is copied out.
      assert.equal(after.bytesIn - before.bytesIn, (blockTable.length + positions.length) * 4);
      assert.equal(after.bytesOut, before.bytesOut);
      const want = new Float32Array(heads * latent);
      ref.mlaAttention(want, q, cache, blockTable, positions, 1, heads, latent, rope, blockSize, 0.3);
      // Softmax-weighted sums of 11 rows in float32: 1e-5 relative leaves room for summation order.
      assert.ok(relErr(out, want) < 1e-5, `mlaAttention: ${relErr(out, want)}`);
    } finally {
      await kernels.dispose();
    }
  });
});
