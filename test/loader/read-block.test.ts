// Tests of `WeightSource.readBlock` on safetensors files and dummy weights: every block equals the same
// block of the full `read` (bit for bit: no arithmetic is involved), a safetensors block reads only its
// own bytes (or, for close column blocks, the span from its first byte to its last), and ranges outside
// the tensor fail with a named error.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { RawWeight } from '../../src/kernels/kernels.js';
import { WeightSourceClosedError } from '../../src/loader/checkpoint-errors.js';
import { DummyWeightSource } from '../../src/loader/dummy-weights.js';
import { loadDeepseekConfig, parseDeepseekConfig } from '../../src/loader/hf-config.js';
import { openSafetensorsFile, type SafetensorsWeightSource } from '../../src/loader/safetensors.js';
import {
  MissingTensorError,
  type Slice,
  TensorBlockError,
  TensorShapeError,
  type WeightSource,
} from '../../src/loader/weight-source.js';
import { deepseekTensorSpecs } from '../../src/models/deepseek-weights.js';
import {
  ASSET_CONFIGS,
  encodeSafetensors,
  expectError,
  fixtureConfigJson,
  V2_TINY,
  withTempDir,
} from './fixture-files.js';

/** Rows × cols of a full row-major [R, C] matrix, copied: the reference a block read must equal. */
function blockOf(raw: RawWeight, C: number, rows: Slice, cols: Slice): RawWeight {
  const out =
    raw.dtype === 'bf16'
      ? new Uint16Array(rows.count * cols.count)
      : new Float32Array(rows.count * cols.count);
  for (let r = 0; r < rows.count; r++) {
    const from = (rows.start + r) * C + cols.start;
    out.set(raw.data.subarray(from, from + cols.count), r * cols.count);
  }
  return raw.dtype === 'bf16'
    ? { dtype: 'bf16', data: out as Uint16Array }
    : { dtype: 'f32', data: out as Float32Array };
}

/** Asserts `readBlock` gives exactly `blockOf(read)` for each block (cols absent: all columns). */
function checkBlocks(
  src: WeightSource,
  name: string,
  [R, C]: [number, number],
  blocks: readonly [Slice, Slice | undefined][],
): void {
  const full = src.read(name);
  for (const [rows, cols] of blocks) {
    const got = src.readBlock(name, [R, C], rows, cols);
    const want = blockOf(full, C, rows, cols ?? { start: 0, count: C });
    const what = `${name} rows ${JSON.stringify(rows)} cols ${JSON.stringify(cols)}`;
    assert.equal(got.dtype, want.dtype, what);
    assert.equal(got.data.length, rows.count * (cols?.count ?? C), what);
    assert.deepEqual(got.data, want.data, what);
  }
}

/** Whole tensor, row slices, column slices, both, single rows and columns, and empty blocks of [R, C]. */
function standardBlocks(R: number, C: number): [Slice, Slice | undefined][] {
  const all = { start: 0, count: R };
  const half = Math.floor(R / 2);
  return [
    [all, undefined],
    [all, { start: 0, count: C }],
    [{ start: 1, count: R - 2 }, undefined],
    [{ start: half, count: R - half }, undefined],
    [all, { start: 1, count: C - 3 }],
    [all, { start: Math.floor(C / 2), count: C - Math.floor(C / 2) }],
    [
      { start: 1, count: R - 1 },
      { start: 2, count: Math.ceil(C / 3) },
    ],
    [
      { start: R - 1, count: 1 },
      { start: C - 1, count: 1 },
    ],
    [{ start: 0, count: 0 }, undefined],
    [{ start: R, count: 0 }, undefined],
    [all, { start: 3, count: 0 }],
  ];
}

/** Range errors every source must give for a [R, C] tensor `name`. */
function checkRangeErrors(src: WeightSource, name: string, [R, C]: [number, number]): void {
  const all = { start: 0, count: R };
  expectError(() => src.readBlock(name, [R, C], { start: 1, count: R }), TensorBlockError, [
    name,
    `rows [1, ${R + 1})`,
    `[${R}, ${C}]`,
    'allowed:',
  ]);
  expectError(() => src.readBlock(name, [R, C], all, { start: C - 1, count: 2 }), TensorBlockError, [
    `columns [${C - 1}, ${C + 1})`,
  ]);
  expectError(() => src.readBlock(name, [R, C], { start: -1, count: 1 }), TensorBlockError, ['rows [-1, 0)']);
  expectError(() => src.readBlock(name, [R, C], { start: 0.5, count: 1 }), TensorBlockError, ['allowed:']);
  expectError(() => src.readBlock(name, [R, C], all, { start: 0, count: -1 }), TensorBlockError, ['columns']);
  expectError(() => src.readBlock(name, [R + 1, C], all), TensorShapeError, [name, `[${R}, ${C}]`]);
  expectError(() => src.readBlock('no.such.weight', [R, C], all), MissingTensorError, ['no.such.weight']);
}

/** Seeded bytes. */
function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s & 0xff;
  }
  return out;
}

/** Finite float32 values as bytes (random bytes may spell NaNs, which deepEqual compares fine, but read less well). */
function floatBytes(n: number, seed: number): Uint8Array {
  const bytes = randomBytes(n * 4, seed);
  const f = new Float32Array(bytes.buffer);
  for (let i = 0; i < n; i++) if (!Number.isFinite(f[i]!)) f[i] = i;
  return bytes;
}

describe('SafetensorsWeightSource.readBlock', () => {
  // Shapes chosen to take each read strategy: small rows (spans of rows through a scratch buffer), rows
  // so far apart that each is read alone (the skipped bytes exceed 64 KiB), rows too long for two in a
  // 1 MiB span, and several spans (600 rows of 2,400 bytes: 436 per span).
  const tensors: { name: string; dtype: string; shape: [number, number]; width: number; seed: number }[] = [
    { name: 'small.bf16', dtype: 'BF16', shape: [7, 13], width: 2, seed: 1 },
    { name: 'small.f32', dtype: 'F32', shape: [5, 9], width: 4, seed: 2 },
    { name: 'small.f16', dtype: 'F16', shape: [6, 10], width: 2, seed: 3 },
    { name: 'far.bf16', dtype: 'BF16', shape: [4, 40_000], width: 2, seed: 4 },
    { name: 'long.f32', dtype: 'F32', shape: [3, 140_000], width: 4, seed: 5 },
    { name: 'spans.f32', dtype: 'F32', shape: [600, 600], width: 4, seed: 6 },
  ];
  const withFile = (fn: (src: SafetensorsWeightSource) => void) =>
    withTempDir((dir) => {
      const path = join(dir, 'blocks.safetensors');
      writeFileSync(
        path,
        encodeSafetensors(
          tensors.map((t) => {
            const n = t.shape[0] * t.shape[1];
            const data = t.dtype === 'F32' ? floatBytes(n, t.seed) : randomBytes(n * t.width, t.seed);
            return { name: t.name, dtype: t.dtype, shape: t.shape, data };
          }),
        ),
      );
      const src = openSafetensorsFile(path);
      try {
        fn(src);
      } finally {
        src.close();
      }
    });

  it('gives the block of the full read for bf16, f32 and f16 tensors, on every read path', () => {
    withFile((src) => {
      for (const t of tensors) checkBlocks(src, t.name, t.shape, standardBlocks(...t.shape));
      // f16 becomes float32 as in `read`; bf16 stays bf16 bits.
      assert.equal(src.readBlock('small.f16', [6, 10], { start: 1, count: 2 }).dtype, 'f32');
      assert.equal(src.readBlock('small.bf16', [7, 13], { start: 1, count: 2 }).dtype, 'bf16');
    });
  });

  it('staged reads give the same blocks, in one reused buffer that the next staged read overwrites', () => {
    withFile((src) => {
      for (const t of tensors) {
        for (const [rows, cols] of standardBlocks(...t.shape)) {
          const plain = src.readBlock(t.name, t.shape, rows, cols);
          const staged = src.readBlock(t.name, t.shape, rows, cols, true);
          assert.deepEqual(staged, plain, `${t.name} rows ${rows.start}+${rows.count}`);
        }
      }
      const first = src.readBlock('spans.f32', [600, 600], { start: 0, count: 600 }, undefined, true);
      const copy = first.data.slice();
      const second = src.readBlock('small.f32', [5, 9], { start: 0, count: 5 }, undefined, true);
      // One buffer: the second block sits where the first began (the documented reuse).
      assert.equal(second.data.buffer, first.data.buffer);
      assert.notDeepEqual(first.data.subarray(0, 45), copy.subarray(0, 45));
      // An unstaged read is a fresh array, untouched by later staged reads.
      const own = src.readBlock('small.f32', [5, 9], { start: 0, count: 5 });
      const ownValues = own.data.slice();
      src.readBlock('spans.f32', [600, 600], { start: 0, count: 600 }, undefined, true);
      assert.notEqual(own.data.buffer, second.data.buffer);
      assert.deepEqual(own.data, ownValues);
    });
  });

  it('reads only the block: a row range is its own bytes, a column block at most its first-to-last span', () => {
    withFile((src) => {
      const bytesOf = (f: () => unknown) => {
        const before = src.bytesRead;
        f();
        return src.bytesRead - before;
      };
      // Rows 200..299 of [600, 600] f32: exactly 100 rows of 2,400 bytes.
      assert.equal(
        bytesOf(() => src.readBlock('spans.f32', [600, 600], { start: 200, count: 100 })),
        240_000,
      );
      // Rows far apart are read one by one: exactly 4 × 10 elements of 2 bytes.
      const far = { start: 0, count: 4 };
      assert.equal(
        bytesOf(() => src.readBlock('far.bf16', [4, 40_000], far, { start: 100, count: 10 })),
        80,
      );
      const long = { start: 0, count: 3 };
      assert.equal(
        bytesOf(() => src.readBlock('long.f32', [3, 140_000], long, { start: 5, count: 7 })),
        84,
      );
      // Close rows: spans from a span's first block byte to its last, here 436 rows (the most in 1 MiB) and
      // then 164: (435 rows + 300 columns) + (163 rows + 300 columns) of f32.
      const right = { start: 300, count: 300 };
      const spanBytes = bytesOf(() =>
        src.readBlock('spans.f32', [600, 600], { start: 0, count: 600 }, right),
      );
      assert.equal(spanBytes, (435 * 600 + 300 + 163 * 600 + 300) * 4);
      assert.ok(spanBytes < 600 * 600 * 4);
      // An empty block reads nothing.
      assert.equal(
        bytesOf(() => src.readBlock('spans.f32', [600, 600], { start: 5, count: 0 })),
        0,
      );
    });
  });

  it('rejects ranges outside the tensor, a wrong shape and a closed source with named errors', () => {
    withFile((src) => {
      checkRangeErrors(src, 'small.bf16', [7, 13]);
      src.close();
      expectError(() => src.readBlock('small.f32', [5, 9], { start: 0, count: 1 }), WeightSourceClosedError, [
        'small.f32',
      ]);
    });
  });
});

describe('DummyWeightSource.readBlock', () => {
  // hidden 63 and vocab 2081: an odd-width embedding of 131,103 elements in three generation chunks, so
  // rows start at odd and even offsets and cross chunk boundaries.
  const odd = parseDeepseekConfig({ ...fixtureConfigJson(V2_TINY), hidden_size: 63, vocab_size: 2081 });
  const lite4 = loadDeepseekConfig(join(ASSET_CONFIGS, 'deepseek-v2-lite'), { num_hidden_layers: 4 });

  for (const dtype of ['bf16', 'f32'] as const) {
    it(`gives the block of the full read (${dtype}), across chunk boundaries and odd offsets`, () => {
      const src = new DummyWeightSource(deepseekTensorSpecs(odd), { seed: 11, dtype });
      checkBlocks(
        src,
        'model.embed_tokens.weight',
        [2081, 63],
        [
          ...standardBlocks(2081, 63),
          // The rows around the first chunk boundary (element 65,536 is in row 1040), odd and even columns.
          [
            { start: 1039, count: 3 },
            { start: 17, count: 30 },
          ],
          [
            { start: 1040, count: 1 },
            { start: 0, count: 63 },
          ],
          [
            { start: 1040, count: 1 },
            { start: 15, count: 2 },
          ],
          [
            { start: 1040, count: 1 },
            { start: 16, count: 1 },
          ],
          [
            { start: 1000, count: 1081 },
            { start: 31, count: 32 },
          ],
          [{ start: 2, count: 2078 }, undefined],
        ],
      );
    });
  }

  it('gives the blocks the tensor-parallel ranks of V2-Lite read: halves of rows and of columns', () => {
    const src = new DummyWeightSource(deepseekTensorSpecs(lite4), { seed: 5, dtype: 'bf16' });
    // A 2048 × 1408 expert down_proj (44 chunks): rank 1's columns; a 1408 × 2048 gate_proj: rank 1's rows.
    checkBlocks(
      src,
      'model.layers.1.mlp.experts.3.down_proj.weight',
      [2048, 1408],
      [
        [
          { start: 0, count: 2048 },
          { start: 704, count: 704 },
        ],
        [
          { start: 0, count: 2048 },
          { start: 0, count: 704 },
        ],
      ],
    );
    checkBlocks(
      src,
      'model.layers.1.mlp.experts.3.gate_proj.weight',
      [1408, 2048],
      [[{ start: 704, count: 704 }, undefined]],
    );
  });

  it('rejects ranges outside the tensor and a wrong shape with named errors', () => {
    checkRangeErrors(
      new DummyWeightSource(deepseekTensorSpecs(odd), { seed: 1, dtype: 'bf16' }),
      'model.embed_tokens.weight',
      [2081, 63],
    );
  });
});
