// The WebAssembly operator kernels (plain and relaxed SIMD builds) against their TypeScript reference
// twins, on random inputs of awkward sizes, with arrays both outside and inside the kernel memory; plus
// the binding's own behaviour: memory recognition across grows, scratch regions, argument checks.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { before, describe, it } from 'node:test';
import { ReferenceKernels } from '../../src/kernels/reference/reference-kernels.js';
import { enableWasmFeatures, hasRelaxedSimd } from '../../src/platforms/cpu/wasm-features.js';
import { KernelArgumentError, WasmOps, WasmOpsError } from '../../src/platforms/cpu/wasm-ops.js';
import { assertClose, copyInto, EPS32, Rng } from './kernel-test-utils.js';

enableWasmFeatures();

const ref = new ReferenceKernels();
/** Where the test arrays live: plain JS arrays (copied through scratch) or views of the kernel memory. */
const PLACES = ['outside', 'inside'] as const;
type Place = (typeof PLACES)[number];

/** Relative error bound of the kernels' exp (measured against float64 over the float32 range). */
const EXP_REL = 2.1e-7;

const VARIANTS = [
  { label: 'plain SIMD', relaxed: false },
  { label: 'relaxed SIMD', relaxed: true },
];

for (const variant of VARIANTS) {
  const skip = variant.relaxed && !hasRelaxedSimd() ? 'this runtime has no relaxed SIMD' : false;
  describe(`WasmOps, ${variant.label} build`, { skip }, () => {
    let ops: WasmOps;
    before(async () => {
      ops = await WasmOps.create({ relaxed: variant.relaxed });
    });
    const put = <T extends Float32Array | Int32Array>(where: Place, a: T): T =>
      where === 'inside' ? copyInto(ops, a) : a;

    it('picks the asked-for build', () => {
      assert.equal(ops.name, variant.relaxed ? 'wasm-relaxed-simd' : 'wasm-simd');
    });

    it('rmsNorm matches the reference', () => {
      // f32 sum of squares over 8 lanes: relative error <= (d/8 + 2)·eps; the root, division and two
      // products add a few eps more. Tolerance (d/8 + 8)·2^-24 relative (1.6e-5 at d = 2048).
      const rng = new Rng(11);
      for (const where of PLACES) {
        for (const d of [1, 3, 8, 31, 64, 2048]) {
          for (const m of [1, 2, 7]) {
            const x = rng.array(m * d, -3, 3);
            const w = rng.array(d, 0.5, 1.5);
            const expected = new Float32Array(m * d);
            ref.rmsNorm(expected, x, w, m, d, 1e-6);
            const out = put(where, new Float32Array(m * d));
            ops.rmsNorm(out, put(where, x), put(where, w), m, d, 1e-6);
            const rel = (d / 8 + 8) * EPS32;
            assertClose(`rmsNorm ${where} m=${m} d=${d}`, out, expected, (_, e) => rel * Math.abs(e));
            // In place (out = x) gives the same.
            const xx = put(where, x.slice());
            ops.rmsNorm(xx, xx, put(where, w), m, d, 1e-6);
            assertClose(`rmsNorm in place ${where} m=${m} d=${d}`, xx, expected, (_, e) => rel * Math.abs(e));
          }
        }
      }
    });

    it('siluAndMul matches the reference, including extreme gates', () => {
      // exp relative error 2.1e-7, then 1 + e, the division and the product (0.5 ulp each) and the
      // reference's own rounding to f32: < 4.5e-7 relative. Below a = −88.4 the kernel's exp saturates and
      // the result (true |value| < 1e-36) may differ by up to ~1e-36 absolute.
      const rng = new Rng(12);
      const extremes = [0, -0, 1e-30, -1e-30, 20, -20, 80, -80, 87, -87, 88.5, -88.5, 100, -100];
      for (const where of PLACES) {
        for (const d of [1, 3, 8, 31, 64, 2048]) {
          for (const m of [1, 2, 7]) {
            const gateUp = rng.array(m * 2 * d, -12, 12);
            for (let i = 0; i < Math.min(extremes.length, d); i++) gateUp[i] = extremes[i]!;
            const expected = new Float32Array(m * d);
            ref.siluAndMul(expected, gateUp, m, d);
            const out = put(where, new Float32Array(m * d));
            ops.siluAndMul(out, put(where, gateUp), m, d);
            assertClose(
              `siluAndMul ${where} m=${m} d=${d}`,
              out,
              expected,
              (_, e) => 4.5e-7 * Math.abs(e) + 1e-35,
            );
          }
        }
      }
    });

    it('softmax matches the reference, with wide ranges and ties', () => {
      // Per element: x − max is rounded in f32 (relative error |x − max|·2^-24 in the exponential), the exp
      // adds 2.1e-7; the sum carries its terms' errors (at most the p-weighted mean of |x − max|·2^-24, plus
      // 2.1e-7) and its own f32 rounding over 4 lanes, <= (n/4 + 2)·eps; the reciprocal and product 2 eps.
      // Terms below e^-87.3 relative to the max are flushed to 0 (the reference keeps ~1e-38), hence the
      // tiny absolute floor.
      const rng = new Rng(13);
      for (const where of PLACES) {
        for (const n of [1, 3, 8, 31, 64, 2048]) {
          for (const m of [1, 2, 7]) {
            const x = rng.array(m * n, -10, 10);
            // Row 1: a huge spread (flushing), row 2: all equal.
            if (m > 1) for (let j = 0; j < n; j++) x[n + j] = rng.uniform(-200, 0);
            if (m > 2) x.fill(3.5, 2 * n, 3 * n);
            const expected = x.slice();
            ref.softmax(expected, m, n);
            const xx = put(where, x.slice());
            ops.softmax(xx, m, n);
            const rowMax = Array.from({ length: m }, (_, i) => Math.max(...x.subarray(i * n, (i + 1) * n)));
            const meanGap = rowMax.map((mx, i) => {
              let s = 0;
              for (let j = 0; j < n; j++) s += expected[i * n + j]! * (mx - x[i * n + j]!);
              return s;
            });
            const tol = (i: number, e: number) => {
              const row = Math.floor(i / n);
              const gap = rowMax[row]! - x[i]!;
              return (2 * EXP_REL + (gap + meanGap[row]! + n / 4 + 4) * EPS32) * e + 1e-37;
            };
            assertClose(`softmax ${where} m=${m} n=${n}`, xx, expected, tol);
          }
        }
      }
    });

    it('rope matches the reference and leaves the rest of each head alone', () => {
      // Each output is a·c − b·s (or a·s + b·c) with |c|, |s| <= 1: two products and a sum in f32 (or one
      // fused) are within 3·eps·(|a| + |b|) of the exact value. Elements outside the rope section must be
      // bit-identical.
      const rng = new Rng(14);
      const maxPositions = 40;
      const shapes = [
        { rotaryDim: 8, headStride: 8, offset: 0 },
        { rotaryDim: 8, headStride: 24, offset: 16 },
        { rotaryDim: 64, headStride: 64, offset: 0 },
        { rotaryDim: 64, headStride: 192, offset: 128 },
        { rotaryDim: 6, headStride: 11, offset: 3 },
      ];
      for (const where of PLACES) {
        for (const { rotaryDim, headStride, offset } of shapes) {
          const half = rotaryDim / 2;
          const cos = new Float32Array(maxPositions * half);
          const sin = new Float32Array(maxPositions * half);
          for (let p = 0; p < maxPositions; p++) {
            for (let j = 0; j < half; j++) {
              const angle = p * 10000 ** ((-2 * j) / rotaryDim);
              cos[p * half + j] = Math.cos(angle);
              sin[p * half + j] = Math.sin(angle);
            }
          }
          for (const numHeads of [1, 2, 3, 4, 5]) {
            for (const m of [1, 2, 7]) {
              const x = rng.array(m * numHeads * headStride, -2, 2);
              const positions = Int32Array.from({ length: m }, () => rng.int(maxPositions));
              const expected = x.slice();
              ref.rope(expected, positions, cos, sin, m, numHeads, headStride, offset, rotaryDim);
              const xx = put(where, x.slice());
              ops.rope(
                xx,
                put(where, positions),
                put(where, cos),
                put(where, sin),
                m,
                numHeads,
                headStride,
                offset,
                rotaryDim,
              );
              const tol = (i: number) => {
                const local = i % headStride;
                if (local < offset || local >= offset + rotaryDim) return 0;
                const pair = i - ((local - offset) % 2);
                return 3 * EPS32 * (Math.abs(x[pair]!) + Math.abs(x[pair + 1]!));
              };
              assertClose(
                `rope ${where} dim=${rotaryDim} stride=${headStride} heads=${numHeads} m=${m}`,
                xx,
                expected,
                tol,
              );
            }
          }
        }
      }
    });

    describe('mlaAttention matches the reference', () => {
      interface MlaCase {
        latentDim: number;
        ropeDim: number;
        numHeads: number;
        blockSize: number;
        positions: number[];
        scale?: number;
      }
      const cases: MlaCase[] = [];
      // Decode over the tiny-model dims: every block size, 1..5 heads, short and block-crossing contexts.
      for (const blockSize of [1, 4, 16, 128]) {
        for (const numHeads of [1, 2, 3, 4, 5]) {
          cases.push({
            latentDim: 32,
            ropeDim: 8,
            numHeads,
            blockSize,
            positions: [numHeads * 37 + blockSize],
          });
        }
      }
      cases.push(
        { latentDim: 32, ropeDim: 8, numHeads: 3, blockSize: 4, positions: [0] },
        { latentDim: 32, ropeDim: 64, numHeads: 2, blockSize: 16, positions: [70] },
        { latentDim: 512, ropeDim: 8, numHeads: 3, blockSize: 4, positions: [50] },
        // Real-model dims, decode.
        { latentDim: 512, ropeDim: 64, numHeads: 16, blockSize: 16, positions: [300] },
        { latentDim: 512, ropeDim: 64, numHeads: 5, blockSize: 128, positions: [129] },
        {
          latentDim: 512,
          ropeDim: 64,
          numHeads: 4,
          blockSize: 1,
          positions: [77],
          scale: 1 / Math.sqrt(192),
        },
        // Very peaked softmax (scores spread over ±100): the running max moves by large steps.
        {
          latentDim: 512,
          ropeDim: 64,
          numHeads: 4,
          blockSize: 16,
          positions: [100, 101, 102, 103],
          scale: 2,
        },
        // Chunked prefill: several query tokens whose positions start mid-sequence.
        { latentDim: 32, ropeDim: 8, numHeads: 3, blockSize: 4, positions: [45, 46, 47, 48, 49, 50, 51] },
        { latentDim: 512, ropeDim: 64, numHeads: 4, blockSize: 16, positions: [100, 101, 102, 103] },
        { latentDim: 32, ropeDim: 8, numHeads: 2, blockSize: 16, positions: [20, 3, 11] },
        // Dimensions that are not multiples of 4 (scalar tails everywhere).
        { latentDim: 13, ropeDim: 3, numHeads: 3, blockSize: 4, positions: [5, 9] },
        { latentDim: 30, ropeDim: 2, numHeads: 5, blockSize: 1, positions: [40] },
        // More query rows than one row group (128): two walks over the cache.
        { latentDim: 32, ropeDim: 8, numHeads: 48, blockSize: 16, positions: [60, 61, 62] },
      );

      for (const where of PLACES) {
        it(`on ${cases.length} shapes, arrays ${where} the memory`, () => {
          const rng = new Rng(15);
          for (const c of cases) checkMla(c, where, rng);
        });
      }

      function checkMla(c: MlaCase, where: Place, rng: Rng): void {
        const { latentDim, ropeDim, numHeads, blockSize } = c;
        const positions = Int32Array.from(c.positions);
        const numTokens = positions.length;
        const entry = latentDim + ropeDim;
        const maxPos = Math.max(...c.positions);
        const numBlocks = Math.floor(maxPos / blockSize) + 1;
        // A pool with spare blocks; the sequence's blocks are a random choice in random order. Every slot
        // the sequence does not own (or owns past maxPos) holds NaN, so reading one would show.
        const poolBlocks = numBlocks + 3;
        const blockTable = rng.permutation(poolBlocks).slice(0, numBlocks);
        const cache = new Float32Array(poolBlocks * blockSize * entry).fill(Number.NaN);
        for (let p = 0; p <= maxPos; p++) {
          const slot = blockTable[Math.floor(p / blockSize)]! * blockSize + (p % blockSize);
          for (let i = 0; i < entry; i++) cache[slot * entry + i] = rng.uniform(-1, 1);
        }
        const q = rng.array(numTokens * numHeads * entry, -1, 1);
        const scale = c.scale ?? 0.5;
        const expected = new Float32Array(numTokens * numHeads * latentDim);
        ref.mlaAttention(
          expected,
          q,
          cache,
          blockTable,
          positions,
          numTokens,
          numHeads,
          latentDim,
          ropeDim,
          blockSize,
          scale,
        );
        const out = put(where, new Float32Array(expected.length).fill(Number.NaN));
        ops.mlaAttention(
          out,
          put(where, q),
          put(where, cache),
          put(where, blockTable),
          put(where, positions),
          numTokens,
          numHeads,
          latentDim,
          ropeDim,
          blockSize,
          scale,
        );
        // Outputs are softmax-weighted averages of cache values in [-1, 1]. A score's f32 rounding error is
        // a few ulp of its magnitude scale·Σ_i|q_i·c_i| (the dot products sum in 4-lane partial sums), and
        // it changes that weight by the same amount relatively; the output moves by at most twice that
        // (times max|c| = 1). Tolerance 4·2^-24·sMax plus 64 ulp for the f32 accumulation over the context;
        // the largest error seen on these cases is 0.08 of it (about 0.4·2^-24·sMax).
        const sMax = scale * maxScoreMagnitude(q, cache, blockTable, positions, numHeads, entry, blockSize);
        const tol = (4 * sMax + 64) * EPS32;
        assertClose(`mlaAttention ${where} ${JSON.stringify(c)}`, out, expected, () => tol);
      }

      /** max over query rows and their context positions of Σ_i |q_i · c_i|. */
      function maxScoreMagnitude(
        q: Float32Array,
        cache: Float32Array,
        blockTable: Int32Array,
        positions: Int32Array,
        numHeads: number,
        entry: number,
        blockSize: number,
      ): number {
        let m = 0;
        for (let t = 0; t < positions.length; t++) {
          for (let h = 0; h < numHeads; h++) {
            const qo = (t * numHeads + h) * entry;
            for (let p = 0; p <= positions[t]!; p++) {
              const co = (blockTable[Math.floor(p / blockSize)]! * blockSize + (p % blockSize)) * entry;
              let s = 0;
              for (let i = 0; i < entry; i++) s += Math.abs(q[qo + i]! * cache[co + i]!);
              m = Math.max(m, s);
            }
          }
        }
        return m;
      }
    });

    it('topK matches the reference exactly, with ties, infinities, signed zeros and k = n', () => {
      const rng = new Rng(16);
      for (const where of PLACES) {
        for (const n of [1, 2, 5, 8, 64, 1000]) {
          for (const k of new Set([1, Math.min(3, n), Math.min(8, n), n])) {
            for (const m of [1, 3]) {
              // Few distinct values, so that ties are everywhere.
              const x = Float32Array.from({ length: m * n }, () => [-1, -0, 0, 0.5, 2, 7][rng.int(6)]!);
              if (n >= 8) {
                x[1] = Number.POSITIVE_INFINITY;
                x[n - 1] = Number.NEGATIVE_INFINITY;
              }
              if (m > 2) for (let j = 0; j < n; j++) x[2 * n + j] = rng.uniform(-1, 1);
              const expIdx = new Int32Array(m * k);
              const expVal = new Float32Array(m * k);
              ref.topK(expIdx, expVal, x, m, n, k);
              const outIdx = put(where, new Int32Array(m * k));
              const outVal = put(where, new Float32Array(m * k));
              ops.topK(outIdx, outVal, put(where, x), m, n, k);
              assert.deepEqual(
                Array.from(outIdx),
                Array.from(expIdx),
                `topK indices ${where} m=${m} n=${n} k=${k}`,
              );
              assert.deepEqual(
                Array.from(outVal),
                Array.from(expVal),
                `topK values ${where} m=${m} n=${n} k=${k}`,
              );
            }
          }
        }
      }
    });

    it('argmax matches the reference exactly: ties, NaN, infinities, signed zeros, tails', () => {
      const rng = new Rng(18);
      for (const where of PLACES) {
        for (const n of [1, 3, 4, 7, 8, 9, 33, 1000, 129280]) {
          const m = 3;
          // Row 0: few distinct values (ties everywhere); row 1: random with NaNs; row 2: no value above −∞.
          const x = new Float32Array(m * n);
          for (let j = 0; j < n; j++) {
            x[j] = [-1, -0, 0, 0.5, 2][rng.int(5)]!;
            x[n + j] = rng.int(10) === 0 ? Number.NaN : rng.uniform(-5, 5);
            x[2 * n + j] = rng.int(2) === 0 ? Number.NaN : Number.NEGATIVE_INFINITY;
          }
          if (n >= 9) x[n + n - 1] = Number.POSITIVE_INFINITY; // the maximum in the scalar tail
          const expected = new Int32Array(m);
          ref.argmax(expected, x, m, n);
          const out = put(where, new Int32Array(m));
          ops.argmax(out, put(where, x), m, n);
          assert.deepEqual(Array.from(out), Array.from(expected), `argmax ${where} n=${n}`);
        }
      }
    });

    it('mixes arrays inside and outside the memory in one call', () => {
      const rng = new Rng(17);
      const m = 3;
      const d = 37;
      const x = rng.array(m * d);
      const w = rng.array(d);
      const expected = new Float32Array(m * d);
      ref.rmsNorm(expected, x, w, m, d, 1e-5);
      const out = new Float32Array(m * d);
      ops.rmsNorm(out, copyInto(ops, x), w, m, d, 1e-5);
      assertClose('rmsNorm mixed', out, expected, (_, e) => 16 * EPS32 * Math.abs(e));
      const out2 = ops.allocate(m * d);
      ops.rmsNorm(out2, x, copyInto(ops, w), m, d, 1e-5);
      assertClose('rmsNorm mixed 2', out2, expected, (_, e) => 16 * EPS32 * Math.abs(e));
    });
  });
}

describe('WasmOps binding', () => {
  let ops: WasmOps;
  before(async () => {
    ops = await WasmOps.create({ relaxed: false });
  });

  it('recognises its memory across grows, and nothing else', async () => {
    const a = ops.allocate(10);
    assert.equal(ops.isInMemory(a), true);
    assert.equal(ops.isInMemory(new Float32Array(10)), false);
    ops.memory.grow(1); // as another thread or memory manager might
    const b = ops.allocate(10);
    assert.notEqual(a.buffer, b.buffer);
    assert.equal(ops.isInMemory(a), true);
    assert.equal(ops.isInMemory(b), true);
    const other = await WasmOps.create({ relaxed: false });
    assert.equal(ops.isInMemory(other.allocate(4)), false);
    // An array allocated before the grow is still used in place and is correct.
    a.set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    ops.softmax(a, 2, 5);
    const expected = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    ref.softmax(expected, 2, 5);
    assertClose('softmax after grow', a, expected, (_, e) => 1e-6 * e);
  });

  it('allocate returns zero-filled, distinct arrays', () => {
    const a = ops.allocate(100);
    a.fill(5);
    const b = ops.allocate(100);
    assert.ok(b.every((v) => v === 0));
    assert.ok(a.every((v) => v === 5));
    assert.ok(b.byteOffset >= a.byteOffset + a.byteLength || b.byteOffset + b.byteLength <= a.byteOffset);
  });

  it('works in a region given by scratchBase and scratchBytes, and says when it is too small', async () => {
    const memory = new WebAssembly.Memory({ initial: 32, maximum: 65536, shared: true });
    const bytes = readFileSync(new URL('../../kernels/kernels.wasm', import.meta.url));
    const instance = await WebAssembly.instantiate(await WebAssembly.compile(bytes), { env: { memory } });
    const base = 20 * 65536;
    const region = new WasmOps(instance.exports, memory, { scratchBase: base, scratchBytes: 4096 });
    const x = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
    const expected = x.slice();
    ref.softmax(expected, 4, 16);
    region.softmax(x, 4, 16);
    assertClose('softmax in a fixed region', x, expected, (_, e) => 1e-6 * e);
    // Nothing outside the region was touched.
    const before = new Uint8Array(memory.buffer, 0, base);
    assert.ok(before.every((v) => v === 0));
    assert.throws(() => region.softmax(new Float32Array(2048), 1, 2048), WasmOpsError);
    // Open-ended: from scratchBase to the end of memory, growing it when needed.
    const open = new WasmOps(instance.exports, memory, { scratchBase: base });
    const big = new Float32Array(1 << 20).fill(1);
    open.softmax(big, 1, big.length);
    assert.ok(Math.abs(big[0]! - 2 ** -20) < 1e-12);
  });

  it('rejects sizes that do not fit the arrays, with a message that says so', () => {
    assert.throws(
      () => ops.rmsNorm(new Float32Array(4), new Float32Array(3), new Float32Array(2), 2, 2, 1e-6),
      {
        name: 'KernelArgumentError',
        message: /x has 3 elements; the sizes given need at least 4/,
      },
    );
    assert.throws(
      () => ops.topK(new Int32Array(4), new Float32Array(4), new Float32Array(3), 1, 3, 4),
      KernelArgumentError,
    );
    assert.throws(() => ops.softmax(new Float32Array(4), -1, 4), KernelArgumentError);
    const cache = new Float32Array(8 * 4);
    assert.throws(
      () =>
        ops.mlaAttention(
          new Float32Array(3),
          new Float32Array(4),
          cache,
          Int32Array.from([2]),
          Int32Array.from([1]),
          1,
          1,
          3,
          1,
          4,
          1,
        ),
      { name: 'KernelArgumentError', message: /blockTable\[0\] = 2; the cache holds 8 slots/ },
    );
    assert.throws(
      () =>
        ops.rope(
          new Float32Array(8),
          Int32Array.from([5]),
          new Float32Array(8),
          new Float32Array(8),
          1,
          1,
          8,
          0,
          8,
        ),
      {
        name: 'KernelArgumentError',
        message: /positions\[0\] = 5; the cos\/sin tables cover positions 0..1/,
      },
    );
  });
});
