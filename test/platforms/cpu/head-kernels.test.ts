// The per-head GEMM (`headLinear` over `prepareHeadLinear` weights) and the batched MLA attention
// (`mlaAttentionBatch`) of the wasm kernel set, against float64 sums and the reference twins: strided
// head views with offsets, every row-count path of the GEMM (1, 2, 3..8 pairs, 4-row tiles with a tail,
// bf16 widening from 16 rows), f32 and bf16 weights, arrays inside and outside the kernels' memory, and
// the work split over two threads (minSecondsPerThread 0 splits even tiny shapes).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ReferenceKernels } from '../../../src/kernels/reference/reference-kernels.js';
import { createWasmKernels, type WasmKernels } from '../../../src/platforms/cpu/wasm-kernels.js';
import { randomF32, roundedToBf16 } from './gemm-check.js';

const U = 2 ** -24;

describe('wasm headLinear', () => {
  let kernels: WasmKernels;
  before(async () => {
    kernels = await createWasmKernels({ numThreads: 2, minSecondsPerThread: 0 });
  });
  after(() => kernels.dispose());

  for (const dtype of ['f32', 'bf16'] as const) {
    it(`matches float64 sums per head (${dtype} weights), strided and offset views`, () => {
      const [H, n, k] = [3, 13, 37];
      const [xStride, xOff, outStride, outOff] = [45, 5, 20, 6];
      const raw = randomF32(H * n * k, 7);
      const w = kernels.prepareHeadLinear({ dtype: 'f32', data: raw }, H, n, k, dtype);
      const stored = dtype === 'bf16' ? roundedToBf16(raw) : raw;
      for (const m of [1, 2, 3, 6, 9, 17]) {
        for (const inside of [false, true]) {
          const xPlain = randomF32(m * H * xStride, 100 + m);
          const x = inside ? kernels.allocate(xPlain.length) : xPlain.slice();
          x.set(xPlain);
          const out = inside ? kernels.allocate(m * H * outStride) : new Float32Array(m * H * outStride);
          out.fill(-7);
          kernels.headLinear(out, outStride, outOff, x, xStride, xOff, w, m);
          for (let i = 0; i < m; i++) {
            for (let h = 0; h < H; h++) {
              const o = (i * H + h) * outStride;
              for (let j = 0; j < outStride; j++) {
                const got = out[o + j]!;
                if (j < outOff || j >= outOff + n) {
                  assert.equal(got, -7, `m=${m} row ${i} head ${h}: column ${j} outside the output changed`);
                  continue;
                }
                let exact = 0;
                let abs = 0;
                for (let c = 0; c < k; c++) {
                  const t = x[(i * H + h) * xStride + xOff + c]! * stored[(h * n + j - outOff) * k + c]!;
                  exact += t;
                  abs += Math.abs(t);
                }
                // Float32 accumulation of k products in any order (see gemm-check.ts).
                const tol = (k + 1) * U * abs + U * Math.abs(exact) + 1e-30;
                assert.ok(
                  Math.abs(got - exact) <= tol,
                  `m=${m} ${inside ? 'inside' : 'outside'} row ${i} head ${h} col ${j}: ${got} vs ${exact}`,
                );
              }
            }
          }
        }
      }
      kernels.freeLinear(w);
    });
  }

  it('refuses a per-head weight in linear and columns that do not fit the stride', () => {
    const w = kernels.prepareHeadLinear({ dtype: 'f32', data: randomF32(2 * 4 * 8, 1) }, 2, 4, 8, 'f32');
    assert.throws(() => kernels.linear(new Float32Array(8), new Float32Array(16), w, 1), /headLinear/);
    assert.throws(
      () => kernels.headLinear(new Float32Array(16), 8, 5, new Float32Array(32), 16, 0, w, 1),
      /must fit in the stride/,
    );
  });
});

describe('wasm mlaAttentionBatch', () => {
  let kernels: WasmKernels;
  const ref = new ReferenceKernels();
  before(async () => {
    kernels = await createWasmKernels({ numThreads: 2, minSecondsPerThread: 0 });
  });
  after(() => kernels.dispose());

  it('matches the reference for a batch of prefill, chunk and decode sequences', () => {
    const [H, latent, rope, bs, numBlocks, maxBlocks] = [5, 20, 6, 4, 40, 10];
    const entry = latent + rope;
    // Sequences: (first position, query tokens): a fresh prompt, a chunk after a prefix, two decodes.
    const seqs = [
      [0, 13],
      [9, 7],
      [21, 1],
      [0, 1],
    ] as const;
    const seqStarts = new Int32Array(seqs.length + 1);
    seqs.forEach(([, len], s) => {
      seqStarts[s + 1] = seqStarts[s]! + len;
    });
    const T = seqStarts[seqs.length]!;
    const positions = new Int32Array(T);
    seqs.forEach(([first, len], s) => {
      for (let i = 0; i < len; i++) positions[seqStarts[s]! + i] = first + i;
    });
    // Distinct, shuffled blocks per sequence.
    const blockTables = new Int32Array(seqs.length * maxBlocks);
    for (let i = 0; i < blockTables.length; i++) blockTables[i] = (i * 7 + 3) % numBlocks;
    const cachePlain = randomF32(numBlocks * bs * entry, 3);
    const qPlain = randomF32(T * H * entry, 4);
    const scale = 0.17;
    const want = new Float32Array(T * H * latent);
    ref.mlaAttentionBatch(
      want,
      qPlain,
      cachePlain,
      blockTables,
      maxBlocks,
      seqStarts,
      positions,
      seqs.length,
      H,
      latent,
      rope,
      bs,
      scale,
    );
    for (const inside of [false, true]) {
      const cache = inside ? kernels.allocate(cachePlain.length) : cachePlain;
      const q = inside ? kernels.allocate(qPlain.length) : qPlain;
      cache.set(cachePlain);
      q.set(qPlain);
      const out = inside ? kernels.allocate(want.length) : new Float32Array(want.length);
      kernels.mlaAttentionBatch(
        out,
        q,
        cache,
        blockTables,
        maxBlocks,
        seqStarts,
        positions,
        seqs.length,
        H,
        latent,
        rope,
        bs,
        scale,
      );
      // Convex combinations of cache values in [-1, 1] with float32 exp and sums over ≤ 28 positions:
      // 2e-6 absolute is ~30 ulps of 1, far below the effect of a wrong position or weight.
      let maxDiff = 0;
      for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(out[i]! - want[i]!));
      assert.ok(maxDiff < 2e-6, `${inside ? 'inside' : 'outside'}: differs by ${maxDiff}`);
    }
  });

  it('says which block of which sequence is out of the cache', () => {
    assert.throws(
      () =>
        kernels.mlaAttentionBatch(
          new Float32Array(2 * 4),
          new Float32Array(2 * 6),
          new Float32Array(8 * 6),
          Int32Array.from([0, 0, 5, 0]),
          2,
          Int32Array.from([0, 1, 2]),
          Int32Array.from([3, 1]),
          2,
          1,
          4,
          2,
          4,
          1,
        ),
      /blockTables\[1, 0\] = 5; the cache holds 2 blocks of 4/,
    );
  });
});

describe('wasm mhaAttention', () => {
  let kernels: WasmKernels;
  const ref = new ReferenceKernels();
  before(async () => {
    kernels = await createWasmKernels({ numThreads: 2, minSecondsPerThread: 0 });
  });
  after(() => kernels.dispose());

  it('matches the reference for a prompt chunk after a prefix, odd sizes', () => {
    // 11 query tokens at context positions 9..19 of a 20-position context; 3 heads; key part 10, rope 6,
    // value 7 (none a multiple of 4: the scalar tails run too).
    const [T, C, H, dn, dr, dv] = [11, 20, 3, 10, 6, 7];
    const positions = Int32Array.from({ length: T }, (_, i) => C - T + i);
    const qPlain = randomF32(T * H * (dn + dr), 21);
    const kvPlain = randomF32(C * H * (dn + dv), 22);
    const ropePlain = randomF32(C * dr, 23);
    const want = new Float32Array(T * H * dv);
    ref.mhaAttention(want, qPlain, kvPlain, ropePlain, positions, T, C, H, dn, dr, dv, 0.3);
    for (const inside of [false, true]) {
      const put = (a: Float32Array): Float32Array => {
        if (!inside) return a;
        const b = kernels.allocate(a.length);
        b.set(a);
        return b;
      };
      const out = inside ? kernels.allocate(want.length) : new Float32Array(want.length);
      kernels.mhaAttention(
        out,
        put(qPlain),
        put(kvPlain),
        put(ropePlain),
        positions,
        T,
        C,
        H,
        dn,
        dr,
        dv,
        0.3,
      );
      // Convex combinations of values in [-1, 1] over ≤ 20 positions in float32: 2e-6 absolute.
      let maxDiff = 0;
      for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(out[i]! - want[i]!));
      assert.ok(maxDiff < 2e-6, `${inside ? 'inside' : 'outside'}: differs by ${maxDiff}`);
    }
  });

  it('refuses a query position outside the context', () => {
    assert.throws(
      () =>
        kernels.mhaAttention(
          new Float32Array(4),
          new Float32Array(8),
          new Float32Array(16),
          new Float32Array(8),
          Int32Array.from([2]),
          1,
          2,
          1,
          4,
          4,
          4,
          1,
        ),
      /positions\[0\] = 2; allowed: 0..1/,
    );
  });
});
