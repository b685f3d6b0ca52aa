// Tests of src/layers/weight-loading: a fused weight stacked in the reused stacking buffer prepares the
// same kernel weight as one stacked in a fresh array, weight after weight, and the buffer's views.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReferenceKernels } from '../../src/kernels/reference/reference-kernels.js';
import { type LoadContext, loadLinear, StackingBuffer } from '../../src/layers/weight-loading.js';
import { DummyWeightSource } from '../../src/loader/dummy-weights.js';

const K = 24;
/** Two fused weights of different sizes, as gate_proj + up_proj of two experts. */
const SPECS = [
  { name: 'a.gate.weight', shape: [16, K] },
  { name: 'a.up.weight', shape: [16, K] },
  { name: 'b.gate.weight', shape: [8, K] },
  { name: 'b.up.weight', shape: [8, K] },
];

function loadBoth(stacking?: StackingBuffer) {
  const kernels = new ReferenceKernels();
  const ctx: LoadContext = {
    source: new DummyWeightSource(SPECS, { seed: 7, dtype: 'bf16' }),
    kernels,
    weightDType: 'f32',
    ...(stacking ? { stacking } : {}),
  };
  const fused = (p: string, rows: number) =>
    loadLinear(
      ctx,
      [
        { name: `${p}.gate.weight`, rows },
        { name: `${p}.up.weight`, rows },
      ],
      K,
    );
  // The larger weight first, then a smaller one that reuses (and overwrites the front of) the buffer.
  return [fused('a', 16), fused('b', 8)].map((w) => (w as unknown as { data: Float32Array }).data);
}

describe('weight loading', () => {
  it('a fused weight stacked in the reused buffer equals one stacked in a fresh array', () => {
    const fresh = loadBoth();
    const reused = loadBoth(new StackingBuffer());
    assert.equal(fresh.length, 2);
    for (let i = 0; i < 2; i++) {
      assert.equal(reused[i]!.length, fresh[i]!.length);
      assert.deepEqual(reused[i], fresh[i], `weight ${i}: the kernels keep their own copy`);
    }
    // Both parts are in, in order: the first rows of `a` are gate's, the next up's, and they differ.
    assert.notDeepEqual(fresh[0]!.subarray(0, 16 * K), fresh[0]!.subarray(16 * K));
  });

  it('hands out views of one buffer, grown only when a weight needs more', () => {
    const s = new StackingBuffer();
    const a = s.take(Int8Array, 64);
    const b = s.take(Float32Array, 16);
    assert.equal(a.buffer, b.buffer, '64 bytes hold 16 floats: the same buffer');
    assert.equal(b.length, 16);
    const c = s.take(Uint16Array, 64);
    assert.notEqual(c.buffer, a.buffer, '128 bytes: a larger buffer');
    assert.equal(c.length, 64);
  });
});
