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
});
