// Memories beyond one arena: with a small arenaBytes, weights spill into further arenas (each its own
// shared memory and module instance, also in the worker threads), and `linear` runs each weight in its
// own arena, copying activations in and out. Freed weights give their room back.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createWasmKernels } from '../../../src/platforms/cpu/wasm-kernels.js';
import { assertGemmClose, randomF32 } from './gemm-check.js';

const MiB = 1024 * 1024;

describe('wasm kernel arenas', () => {
  it('places weights in a second arena when the first is full, and computes with both', async () => {
    // 4 MiB arenas keep 512 KiB free for scratch; each weight is 256 × 1024 × 4 = 1 MiB.
    const kernels = await createWasmKernels({ numThreads: 2, arenaBytes: 4 * MiB, minSecondsPerThread: 0 });
    try {
      const [n, k, m] = [256, 1024, 3];
      const ws = Array.from({ length: 6 }, (_, i) => randomF32(n * k, 10 + i));
      const lws = ws.map((w) => kernels.prepareLinear({ dtype: 'f32', data: w }, n, k, 'f32'));
      const arenas = lws.map((lw) => kernels.arenaOf(lw));
      assert.equal(arenas[0], 0);
      assert.ok(kernels.numArenas >= 2, `expected at least 2 arenas, got ${kernels.numArenas}`);
      assert.ok(arenas.some((a) => a > 0));
      // x from the caller, and x allocated in the primary arena (copied into the weight's arena).
      const x = randomF32(m * k, 1);
      const xa = kernels.allocate(m * k);
      xa.set(x);
      for (let i = 0; i < lws.length; i++) {
        const out = new Float32Array(m * n);
        kernels.linear(out, x, lws[i]!, m);
        assertGemmClose(out, x, ws[i]!, m, n, k, `weight ${i} in arena ${arenas[i]}`);
        const out2 = kernels.allocate(m * n);
        kernels.linear(out2, xa, lws[i]!, m);
        assertGemmClose(out2, x, ws[i]!, m, n, k, `weight ${i} in arena ${arenas[i]}, allocated x and out`);
      }
      // Freeing the weights of arena 0 makes room there again.
      const inFirst = lws.filter((_, i) => arenas[i] === 0);
      for (const lw of inFirst) kernels.freeLinear(lw);
      const again = kernels.prepareLinear({ dtype: 'f32', data: ws[0]! }, n, k, 'f32');
      assert.equal(kernels.arenaOf(again), 0);
    } finally {
      await kernels.dispose();
    }
  });

  it('rejects a weight larger than an arena with a clear message', async () => {
    const kernels = await createWasmKernels({ numThreads: 1, arenaBytes: 2 * MiB });
    try {
      assert.throws(
        () => kernels.prepareLinear({ dtype: 'f32', data: new Float32Array(1024 * 1024) }, 1024, 1024, 'f32'),
        {
          name: 'ArenaFullError',
          message: /no room for a weight of 4194304 bytes \(limit 2097152 bytes/,
        },
      );
    } finally {
      await kernels.dispose();
    }
  });
});
