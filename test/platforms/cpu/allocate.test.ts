// `allocate`: zero-filled float32 buffers in the primary arena that `linear` reads and writes in place
// (no copies), and that stay valid and recognised after the memory grows (a grown shared memory hands
// out a new SharedArrayBuffer object over the same bytes).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createWasmKernels } from '../../../src/platforms/cpu/wasm-kernels.js';
import { assertGemmClose, randomF32 } from './gemm-check.js';

describe('wasm kernels allocate', () => {
  it('gives zeroed in-arena buffers that linear uses without copying, also after a grow', async () => {
    const kernels = await createWasmKernels({ numThreads: 2, minSecondsPerThread: 0 });
    try {
      const [m, n, k] = [4, 40, 96];
      const w = randomF32(n * k, 5);
      const lw = kernels.prepareLinear({ dtype: 'f32', data: w }, n, k, 'f32');
      const x = kernels.allocate(m * k);
      const out = kernels.allocate(m * n);
      assert.ok(x.every((v) => v === 0));
      assert.ok(kernels.isInArena(x) && kernels.isInArena(out));
      assert.ok(!kernels.isInArena(new Float32Array(4)));
      x.set(randomF32(m * k, 6));
      const before = kernels.copyStats;
      kernels.linear(out, x, lw, m);
      assert.deepEqual(kernels.copyStats, before, 'no bytes copied for in-arena x and out');
      assertGemmClose(out, x, w, m, n, k, 'in-arena x and out');

      // Grow the memory well past its size: the old views must still work and still be recognised.
      const bufferBefore = kernels.primaryMemory.buffer;
      const big = kernels.allocate(64 * 1024 * 1024);
      assert.notEqual(kernels.primaryMemory.buffer, bufferBefore, 'the memory grew');
      assert.equal(big[big.length - 1], 0);
      x.set(randomF32(m * k, 7));
      out.fill(Number.NaN);
      kernels.linear(out, x, lw, m);
      assert.deepEqual(kernels.copyStats, before, 'still no copies after the grow');
      assertGemmClose(out, x, w, m, n, k, 'in-arena x and out after a grow');

      // A plain array is copied in and the result copied out.
      const xs = randomF32(m * k, 8);
      const outs = new Float32Array(m * n);
      kernels.linear(outs, xs, lw, m);
      assert.deepEqual(kernels.copyStats, {
        bytesIn: before.bytesIn + m * k * 4,
        bytesOut: before.bytesOut + m * n * 4,
      });
      assertGemmClose(outs, xs, w, m, n, k, 'copied x and out');
    } finally {
      await kernels.dispose();
    }
  });

  it('hands back reused memory zeroed', async () => {
    const kernels = await createWasmKernels({ numThreads: 1 });
    try {
      const lw = kernels.prepareLinear({ dtype: 'f32', data: randomF32(64 * 64, 1) }, 64, 64, 'f32');
      kernels.freeLinear(lw);
      const a = kernels.allocate(64 * 64);
      assert.ok(a.every((v) => v === 0));
    } finally {
      await kernels.dispose();
    }
  });

  it('recognises and frees every array it handed out, across grows seen by worker threads', async () => {
    const kernels = await createWasmKernels({ numThreads: 2, minSecondsPerThread: 0 });
    try {
      // A two-thread GEMM first, so that the worker has its own instance on the primary memory (V8 then
      // tells it of each grow, and may hand the main thread a fresh buffer object of the same length).
      const lw = kernels.prepareLinear({ dtype: 'f32', data: randomF32(64 * 64, 1) }, 64, 64, 'f32');
      kernels.linear(new Float32Array(4 * 64), randomF32(4 * 64, 2), lw, 4);
      const held: Float32Array[] = [];
      for (let i = 0; i < 24; i++) {
        held.push(kernels.allocate(1 << 20)); // 4 MiB: the memory grows every few rounds
        kernels.linear(new Float32Array(4 * 64), randomF32(4 * 64, 3), lw, 4);
        const small = kernels.allocate(100);
        assert.ok(kernels.isInArena(small), `round ${i}: a fresh allocation is in the arena`);
        kernels.free(small);
      }
      for (const a of held) {
        assert.ok(kernels.isInArena(a));
        kernels.free(a);
      }
      assert.throws(() => kernels.free(held[0]!), /not handed out by allocate \(or was freed already\)/);
      assert.throws(() => kernels.free(new Float32Array(4)), /not handed out by allocate/);
    } finally {
      await kernels.dispose();
    }
  });
});
