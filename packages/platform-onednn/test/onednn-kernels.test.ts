// The oneDNN kernel set's `linear` against Duet's TypeScript reference twins: f32 and bf16 weights within
// float32 summation bounds (stated at each check), int8 W8A8 bit for bit (the int32 sums exactly, the
// dequantized outputs to the last bit, both schemes). Odd shapes exercise oneDNN's tails; activations
// both in the WebAssembly kernels' shared memory and in ordinary arrays. Also: the checks that keep bad
// arguments out of native code, and that each m gets one cached primitive.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadAddon } from '../dist/addon.js';
import { createOnednnPlatform, type OnednnKernels, OnednnKernelsError } from '../dist/index.js';
import {
  assertClose,
  EPS32,
  type Int8LinearData,
  type Int8Scheme,
  int8Accumulate,
  int8Linear,
  type Kernels,
  quantizeDynamic,
  ReferenceKernels,
  Rng,
} from './duet-test-deps.js';
import { skipReason } from './onednn-available.js';

const ref = new ReferenceKernels();
const SHAPES: readonly [m: number, n: number, k: number][] = [
  [1, 33, 70],
  [3, 64, 128],
  [17, 100, 257],
  [64, 256, 512],
  // More than the addon's 64 exact rows: run as 96 rows and then 4 (see ROW_STEP in the addon).
  [100, 48, 96],
];

/** Σ_c |x[i, c]| · |w[j, c]|, the scale of the rounding error of out[i, j]. `x`: [m, k]; `w`: [n, k]. */
function absProducts(x: Float32Array, w: Float32Array, m: number, n: number, k: number): Float64Array {
  const s = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let a = 0;
      for (let c = 0; c < k; c++) a += Math.abs(x[i * k + c]! * w[j * k + c]!);
      s[i * n + j] = a;
    }
  }
  return s;
}

function roundToBf16(w: Float32Array): Float32Array {
  const u = new Uint32Array(w.slice().buffer);
  for (let i = 0; i < u.length; i++) u[i] = (u[i]! + 0x7fff + ((u[i]! >>> 16) & 1)) & 0xffff0000;
  return new Float32Array(u.buffer);
}

function int8Data(rng: Rng, len: number): Int8Array {
  const a = new Int8Array(len);
  for (let i = 0; i < len; i++) {
    const u = rng.next();
    a[i] = u < 0.1 ? -128 : u < 0.2 ? 127 : rng.int(256) - 128;
  }
  return a;
}

/** Random activations with a row of zeros and a row of large values (which set amax or clamp). */
function activations(rng: Rng, m: number, k: number): Float32Array {
  const x = rng.array(m * k, -3, 3);
  if (m > 2) x.fill(0, k, 2 * k);
  if (m > 3) for (let c = 0; c < k; c++) x[3 * k + c] = (c % 2 ? 1 : -1) * 1e4 * rng.next();
  return x;
}

describe('oneDNN linear against the reference twins', { skip: skipReason() }, () => {
  let kernels: OnednnKernels;
  let kernelsBf16: OnednnKernels;
  before(async () => {
    const load = loadAddon();
    if (!('addon' in load)) throw new Error(load.reason);
    kernels = await createOnednnPlatform(load.addon).createKernels({ numThreads: 2 });
    kernelsBf16 = await createOnednnPlatform(load.addon).createKernels({
      numThreads: 1,
      computeDType: 'bfloat16',
    });
  });
  after(async () => {
    await kernels?.dispose();
    await kernelsBf16?.dispose();
  });

  /** x in ordinary memory and in the WebAssembly memory that `allocate` hands out. */
  function inputs(k: Kernels, x: Float32Array): Float32Array[] {
    const shared = k.allocate(x.length);
    shared.set(x);
    return [x, shared];
  }

  it('f32 weights: within the float32 summation bound', () => {
    const rng = new Rng(1);
    for (const [m, n, k] of SHAPES) {
      const x = rng.array(m * k);
      const w = rng.array(n * k);
      const expected = new Float32Array(m * n);
      ref.linear(expected, x, ref.prepareLinear({ dtype: 'f32', data: w }, n, k, 'f32'), m);
      const scale = absProducts(x, w, m, n, k);
      const pw = kernels.prepareLinear({ dtype: 'f32', data: w }, n, k, 'f32');
      for (const xi of inputs(kernels, x)) {
        const out = new Float32Array(m * n);
        kernels.linear(out, xi, pw, m);
        // Any summation order of k float32 products: |error| <= k·2^-24·Σ|x·w| (plus the final rounding).
        assertClose(`f32 m=${m} n=${n} k=${k}`, out, expected, (i) => (k + 1) * EPS32 * scale[i]!);
      }
      kernels.freeLinear(pw);
    }
  });

  it('bf16 weights, split activations: float32-grade against float32 activations', () => {
    const rng = new Rng(2);
    for (const [m, n, k] of SHAPES) {
      const x = rng.array(m * k);
      const w = roundToBf16(rng.array(n * k));
      const expected = new Float32Array(m * n);
      ref.linear(expected, x, ref.prepareLinear({ dtype: 'f32', data: w }, n, k, 'bf16'), m);
      const scale = absProducts(x, w, m, n, k);
      const pw = kernels.prepareLinear({ dtype: 'f32', data: w }, n, k, 'bf16');
      assert.equal(pw.dtype, 'bf16');
      const out = new Float32Array(m * n);
      kernels.linear(out, x, pw, m);
      // Head + tail represent x to 2^-17 relative, the products of bf16 values are exact in float32, and
      // the sums of the head and tail halves round in float32: 2^-17 + (k + 2)·2^-24, times Σ|x·w|.
      assertClose(`bf16 split m=${m}`, out, expected, (i) => (2 ** -17 + (k + 2) * EPS32) * scale[i]!);
      kernels.freeLinear(pw);
    }
  });

  it('bf16 weights, bf16 activations: within bf16 rounding of the activations', () => {
    const rng = new Rng(3);
    const [m, n, k] = [9, 48, 300];
    const x = rng.array(m * k);
    // bf16 patterns of magnitude 2^-7 .. 2^2: random sign, exponent and 7-bit mantissa.
    const bits = new Uint16Array(n * k).map(
      () => (rng.int(2) << 15) | ((120 + rng.int(10)) << 7) | rng.int(128),
    );
    const w = new Float32Array(n * k);
    new Uint32Array(w.buffer).set(Array.from(bits, (b) => b << 16));
    const expected = new Float32Array(m * n);
    ref.linear(expected, x, ref.prepareLinear({ dtype: 'bf16', data: bits }, n, k, 'bf16'), m);
    const scale = absProducts(x, w, m, n, k);
    const pw = kernelsBf16.prepareLinear({ dtype: 'bf16', data: bits }, n, k, 'bf16');
    const out = new Float32Array(m * n);
    kernelsBf16.linear(out, x, pw, m);
    // Each activation rounded to bf16 (relative 2^-9), then float32 sums: (2^-9 + (k + 1)·2^-24)·Σ|x·w|.
    assertClose('bf16 activations', out, expected, (i) => (2 ** -9 + (k + 1) * EPS32) * scale[i]!);
    kernelsBf16.freeLinear(pw);
  });

  it('int8 weights: the int32 sums equal the reference exactly', () => {
    const rng = new Rng(4);
    for (const [m, n, k] of SHAPES) {
      const data = int8Data(rng, n * k);
      const xq = int8Data(rng, m * k);
      const expected = new Int32Array(m * n);
      int8Accumulate(expected, Int32Array.from(xq), data, m, n, k);
      const pw = kernels.prepareInt8Linear(
        { data, scheme: { kind: 'dynamic', weightScale: new Float32Array(n).fill(1) } },
        n,
        k,
      );
      const acc = new Int32Array(m * n);
      kernels.int8Sums(acc, xq, pw, m);
      assert.deepEqual(acc, expected, `int32 sums m=${m} n=${n} k=${k}`);
      kernels.freeLinear(pw);
    }
  });

  for (const kind of ['dynamic', 'static'] as const) {
    it(`int8 weights, ${kind} scheme: outputs equal the reference bit for bit`, () => {
      const rng = new Rng(kind === 'dynamic' ? 5 : 6);
      for (const [m, n, k] of SHAPES) {
        const scheme: Int8Scheme =
          kind === 'dynamic'
            ? { kind, weightScale: rng.array(n, 1e-3, 2e-2) }
            : {
                kind,
                inputScale: rng.uniform(0.005, 0.05),
                inputOffset: rng.int(256) - 128,
                quantBias: Int32Array.from({ length: n }, () => rng.int(200001) - 100000),
                deqScale: rng.array(n, 1e-5, 1e-3),
              };
        const weight: Int8LinearData = { data: int8Data(rng, n * k), scheme };
        const x = activations(rng, m, k);
        const expected = new Float32Array(m * n);
        int8Linear(expected, x, weight, m, n, k);
        const pw = kernels.prepareInt8Linear(weight, n, k);
        for (const xi of inputs(kernels, x)) {
          const out = new Float32Array(m * n);
          kernels.linear(out, xi, pw, m);
          // No tolerance: the same float32 operations in the same order.
          assertClose(`int8 ${kind} m=${m} n=${n} k=${k}`, out, expected, () => 0);
        }
        kernels.freeLinear(pw);
      }
    });
  }

  it('int8 weights, activations per token group: the WebAssembly kernels run them, bit for bit the reference', () => {
    const rng = new Rng(8);
    for (const [m, n, k] of SHAPES) {
      const weight: Int8LinearData = {
        data: int8Data(rng, n * k),
        scheme: { kind: 'dynamic', weightScale: rng.array(n, 1e-3, 2e-2), groupSize: 32 },
      };
      const x = activations(rng, m, k);
      const expected = new Float32Array(m * n);
      int8Linear(expected, x, weight, m, n, k);
      const pw = kernels.prepareInt8Linear(weight, n, k);
      // oneDNN 2.6 has no per-group source scales: the weight is the WebAssembly kernels' own.
      assert.match(kernels.implInfo(pw, m), /^wasm-/);
      for (const xi of inputs(kernels, x)) {
        const out = new Float32Array(m * n);
        kernels.linear(out, xi, pw, m);
        // No tolerance: the same float32 operations in the same order.
        assertClose(`int8 groups of 32 m=${m} n=${n} k=${k}`, out, expected, () => 0);
      }
      kernels.freeLinear(pw);
    }
  });

  it('int8 dynamic: a row with a NaN gives NaN outputs, as the reference', () => {
    const rng = new Rng(7);
    const [m, n, k] = [2, 16, 32];
    const weight: Int8LinearData = {
      data: int8Data(rng, n * k),
      scheme: { kind: 'dynamic', weightScale: rng.array(n, 1e-3, 2e-2) },
    };
    const x = rng.array(m * k);
    x[k + 5] = Number.NaN;
    const scales = new Float32Array(m);
    quantizeDynamic(new Int32Array(m * k), scales, x, m, k);
    const expected = new Float32Array(m * n);
    int8Linear(expected, x, weight, m, n, k);
    const out = new Float32Array(m * n);
    const pw = kernels.prepareInt8Linear(weight, n, k);
    kernels.linear(out, x, pw, m);
    assertClose('int8 NaN row', out, expected, () => 0);
    assert.ok(Number.isNaN(out[n]!) && Number.isNaN(scales[1]!));
    kernels.freeLinear(pw);
  });

  it('rejects arguments that would reach past an array, and a freed weight', () => {
    const pw = kernels.prepareLinear({ dtype: 'f32', data: new Float32Array(8 * 4) }, 8, 4, 'f32');
    const out = new Float32Array(16);
    assert.throws(() => kernels.linear(out, new Float32Array(7), pw, 2), OnednnKernelsError);
    assert.throws(() => kernels.linear(new Float32Array(15), new Float32Array(8), pw, 2), /out has 15/);
    assert.throws(() => kernels.linear(out, new Float32Array(8), pw, 1.5), /m = 1.5/);
    assert.throws(
      () => kernels.prepareLinear({ dtype: 'f32', data: new Float32Array(5) }, 2, 3, 'f32'),
      /expected n·k = 6/,
    );
    kernels.freeLinear(pw);
    assert.throws(() => kernels.linear(out, new Float32Array(8), pw, 2), /freed/);
  });

  it('the addon itself refuses short arrays, wrong array types and weights of another kind', () => {
    const load = loadAddon();
    if (!('addon' in load)) throw new Error(load.reason);
    const ctx = new load.addon.Context(1);
    const w = ctx.prepare(0, new Float32Array(12), 3, 4);
    const out = new Float32Array(6);
    assert.throws(() => ctx.linearF32(out, new Float32Array(7), w, 2), /x: 7 elements, at least 8 needed/);
    assert.throws(() => ctx.linearF32(new Float32Array(5), new Float32Array(8), w, 2), /out: 5 elements/);
    assert.throws(() => ctx.linearF32(out, new Float32Array(8), w, -1), /m must be an integer >= 0/);
    assert.throws(() => ctx.prepare(1, new Float32Array(12), 3, 4), /wrong array type/);
    assert.throws(() => ctx.prepare(0, new Float32Array(11), 3, 4), /11 elements, at least 12/);
    assert.throws(() => ctx.linearBf16(out, new Float32Array(8), w, 2, true), /another kind/);
    ctx.free(w);
    assert.throws(() => ctx.linearF32(out, new Float32Array(8), w, 2), /freed/);
  });

  it('caches one primitive per row count and shape', () => {
    const pw = kernels.prepareLinear({ dtype: 'f32', data: new Float32Array(64 * 48) }, 64, 48, 'f32');
    const out = new Float32Array(5 * 64);
    const before = kernels.numCachedPrimitives();
    for (let r = 0; r < 3; r++) for (const m of [1, 5]) kernels.linear(out, new Float32Array(5 * 48), pw, m);
    assert.equal(kernels.numCachedPrimitives(), before + 2);
    // oneDNN's own name for what runs: a JIT brgemm kernel here, some gemm elsewhere, never the reference.
    assert.doesNotMatch(kernels.implInfo(pw, 5), /ref/);
    kernels.freeLinear(pw);
  });

  it('row counts past 64 reuse primitives: 1 to 200 rows need 68, not 200', () => {
    // Up to 64 rows: one primitive per count. More: the largest multiple of 32 and the rest, so 65 – 200
    // rows add only 96, 128, 160 and 192 (every rest is a count of at most 31 already made).
    // A shape no other test uses (primitives are cached by shape, not by weight).
    const pw = kernels.prepareLinear({ dtype: 'f32', data: new Float32Array(64 * 40) }, 64, 40, 'f32');
    const out = new Float32Array(200 * 64);
    const x = new Float32Array(200 * 40);
    const before = kernels.numCachedPrimitives();
    for (let m = 1; m <= 200; m++) kernels.linear(out, x, pw, m);
    assert.equal(kernels.numCachedPrimitives(), before + 68);
    kernels.freeLinear(pw);
  });
});
