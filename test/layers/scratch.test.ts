// Scratch: small buffers live in the kernels' memory and are reused, a slot that grows returns its old
// buffer to the kernels, and large requests get ordinary arrays.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Scratch } from '../../src/layers/scratch.js';
import { createWasmKernels } from '../../src/platforms/cpu/wasm-kernels.js';

describe('Scratch', () => {
  it('reuses in-memory buffers per slot, frees them on growth, and keeps large ones outside', async () => {
    const kernels = await createWasmKernels({ numThreads: 1 });
    try {
      const scratch = new Scratch(kernels);
      const a = scratch.get('a', 100);
      assert.equal(a.length, 100);
      assert.ok(kernels.isInArena(a), 'a small buffer lives in the kernels memory');
      const b = scratch.get('b', 100);
      assert.ok(
        b.byteOffset >= a.byteOffset + 400 || a.byteOffset >= b.byteOffset + 400,
        'slots do not overlap',
      );
      const a2 = scratch.get('a', 50);
      assert.equal(a2.byteOffset, a.byteOffset, 'a smaller request reuses the buffer');
      const a3 = scratch.get('a', 1000);
      assert.equal(a3.length, 1000);
      assert.ok(kernels.isInArena(a3));
      // The 100-element buffer went back: a new allocation of that size may take its place.
      const again = kernels.allocate(100);
      assert.equal(again.byteOffset, a.byteOffset, 'the old buffer was freed');
      const big = scratch.get('big', 2 * 1024 * 1024); // 8 MiB: more than a kernel-memory scratch buffer
      assert.equal(big.length, 2 * 1024 * 1024);
      assert.ok(!kernels.isInArena(big));
      scratch.dispose();
    } finally {
      await kernels.dispose();
    }
  });
});
