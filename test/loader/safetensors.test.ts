// Tests of the safetensors weight source: reading the fixture checkpoints byte-exactly, sharded
// checkpoints, dtypes, and each malformed-file error (named, naming the file and tensor).

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, renameSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  CheckpointError,
  CheckpointIndexError,
  CheckpointNotFoundError,
  SafetensorsHeaderError,
  TensorByteSizeError,
  TruncatedCheckpointError,
  UnsupportedDTypeError,
  WeightSourceClosedError,
} from '../../src/loader/checkpoint-errors.js';
import { openSafetensors, openSafetensorsFile } from '../../src/loader/safetensors.js';
import { MissingTensorError, TensorShapeError } from '../../src/loader/weight-source.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  expectError,
  readHeader,
  type TensorBytes,
  V2_LITE_TINY,
  V2_TINY,
  withTempDir,
  writeJson,
} from './fixture-files.js';

function bytesOf(array: Uint16Array | Float32Array | Uint8Array): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

/** Writes `tensors` as a two-shard checkpoint with an index (first half, second half). */
function writeTwoShards(dir: string, tensors: readonly TensorBytes[]): void {
  const half = Math.ceil(tensors.length / 2);
  const shards = [tensors.slice(0, half), tensors.slice(half)];
  const weightMap: Record<string, string> = {};
  shards.forEach((shard, i) => {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    writeFileSync(join(dir, file), encodeSafetensors(shard));
    for (const t of shard) weightMap[t.name] = file;
  });
  writeJson(join(dir, 'model.safetensors.index.json'), {
    metadata: { total_size: 0 },
    weight_map: weightMap,
  });
}

describe('SafetensorsWeightSource on the fixture checkpoints', () => {
  it('lists every tensor with its dtype and shape', () => {
    const path = join(V2_TINY, 'model.safetensors');
    const { entries } = readHeader(path);
    const src = openSafetensors(V2_TINY);
    try {
      assert.deepEqual([...src.names()].sort(), Object.keys(entries).sort());
      for (const [name, e] of Object.entries(entries)) {
        assert.deepEqual(src.info(name), { name, dtype: 'BF16', shape: e.shape });
        assert.equal(src.has(name), true);
      }
      assert.equal(src.has('model.layers.9.input_layernorm.weight'), false);
      assert.equal(src.fileOf('model.norm.weight'), path);
    } finally {
      src.close();
    }
  });

  it('reads BF16 tensors as the exact bit patterns in the file', () => {
    const path = join(V2_LITE_TINY, 'model.safetensors');
    const file = readFileSync(path);
    const { headerLen, entries } = readHeader(path);
    const src = openSafetensors(V2_LITE_TINY);
    try {
      for (const name of [
        'model.embed_tokens.weight',
        'model.layers.1.mlp.experts.7.up_proj.weight',
        'model.norm.weight',
      ]) {
        const e = entries[name]!;
        const w = src.read(name, e.shape);
        assert.equal(w.dtype, 'bf16');
        const expected = file.subarray(8 + headerLen + e.data_offsets[0], 8 + headerLen + e.data_offsets[1]);
        assert.equal(
          w.data.length,
          e.shape.reduce((a, b) => a * b, 1),
        );
        assert.deepEqual(Buffer.from(bytesOf(w.data)), expected);
        // A fresh buffer per read, owned by the caller.
        assert.notEqual(src.read(name).data.buffer, w.data.buffer);
      }
    } finally {
      src.close();
    }
  });

  it('checks the expected shape and names missing tensors', () => {
    const src = openSafetensors(V2_LITE_TINY);
    try {
      expectError(() => src.read('model.norm.weight', [32]), TensorShapeError, [
        'model.norm.weight',
        '[64]',
        '[32]',
      ]);
      expectError(() => src.read('model.layers.0.self_attn.q_a_proj.weight'), MissingTensorError, [
        'model.layers.0.self_attn.q_a_proj.weight',
        V2_LITE_TINY,
      ]);
    } finally {
      src.close();
    }
  });

  it('refuses reads after close', () => {
    const src = openSafetensors(V2_LITE_TINY);
    src.close();
    src.close();
    expectError(() => src.read('model.norm.weight'), WeightSourceClosedError, [
      'model.norm.weight',
      'closed',
    ]);
  });
});

describe('sharded checkpoints', () => {
  it('reads a two-shard copy of a fixture exactly like the single file', () => {
    withTempDir((dir) => {
      const tensors = decodeSafetensors(join(V2_TINY, 'model.safetensors'));
      writeTwoShards(dir, tensors);
      const sharded = openSafetensors(dir);
      const single = openSafetensors(V2_TINY);
      try {
        assert.deepEqual([...sharded.names()].sort(), [...single.names()].sort());
        assert.notEqual(sharded.fileOf(tensors[0]!.name), sharded.fileOf(tensors.at(-1)!.name));
        for (const t of tensors) {
          assert.deepEqual(sharded.info(t.name), single.info(t.name));
          assert.deepEqual(sharded.read(t.name).data, single.read(t.name).data, t.name);
        }
      } finally {
        sharded.close();
        single.close();
      }
    });
  });

  it('names a missing shard', () => {
    withTempDir((dir) => {
      writeTwoShards(dir, decodeSafetensors(join(V2_LITE_TINY, 'model.safetensors')));
      writeJson(join(dir, 'model.safetensors.index.json'), {
        weight_map: { 'model.norm.weight': 'model-00003-of-00003.safetensors' },
      });
      expectError(() => openSafetensors(dir), CheckpointIndexError, [
        'model.safetensors.index.json',
        'model-00003-of-00003.safetensors',
        'missing',
      ]);
    });
  });

  it('names a tensor its shard does not hold, and a malformed index', () => {
    withTempDir((dir) => {
      writeTwoShards(dir, decodeSafetensors(join(V2_LITE_TINY, 'model.safetensors')));
      const indexPath = join(dir, 'model.safetensors.index.json');
      const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
      index.weight_map['model.ghost.weight'] = 'model-00001-of-00002.safetensors';
      writeJson(indexPath, index);
      expectError(() => openSafetensors(dir), CheckpointIndexError, [
        'model.ghost.weight',
        'does not hold it',
      ]);
      writeJson(indexPath, { metadata: {} });
      expectError(() => openSafetensors(dir), CheckpointIndexError, [indexPath, 'weight_map']);
      writeFileSync(indexPath, '{');
      expectError(() => openSafetensors(dir), CheckpointIndexError, [indexPath, 'not valid JSON']);
    });
  });

  it('names the folder when it holds no checkpoint', () => {
    withTempDir((dir) => {
      expectError(() => openSafetensors(dir), CheckpointNotFoundError, [dir, 'model.safetensors']);
    });
  });
});

describe('dtypes', () => {
  it('converts F16 to float32 exactly and returns F32 as is', () => {
    // 1, -2, 0.5, 65504 (max half), 2^-24 (smallest subnormal), -0, inf, NaN, 1/3 rounded to half.
    const halves = new Uint16Array([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000, 0x7c00, 0x7e00, 0x3555]);
    const expected = [1, -2, 0.5, 65504, 2 ** -24, -0, Infinity, Number.NaN, 0.333251953125];
    const f32 = new Float32Array([1.5, -3.25e-8, 7e30]);
    withTempDir((dir) => {
      const path = join(dir, 'model.safetensors');
      writeFileSync(
        path,
        encodeSafetensors([
          { name: 'h', dtype: 'F16', shape: [3, 3], data: bytesOf(halves) },
          { name: 'f', dtype: 'F32', shape: [3], data: bytesOf(f32) },
        ]),
      );
      const src = openSafetensorsFile(path);
      try {
        assert.equal(src.info('h').dtype, 'F16');
        const h = src.read('h', [3, 3]);
        assert.equal(h.dtype, 'f32');
        assert.deepEqual([...h.data], expected); // deepEqual treats NaN as NaN and tells -0 from 0
        const f = src.read('f');
        assert.equal(f.dtype, 'f32');
        assert.deepEqual(f.data, f32);
      } finally {
        src.close();
      }
    });
  });

  it('refuses FP8 and other dtypes, saying which are supported', () => {
    withTempDir((dir) => {
      const path = join(dir, 'model.safetensors');
      writeFileSync(
        path,
        encodeSafetensors([{ name: 'w', dtype: 'F8_E4M3', shape: [4], data: new Uint8Array(4) }]),
      );
      expectError(() => openSafetensorsFile(path), UnsupportedDTypeError, [
        path,
        '"w"',
        'F8_E4M3',
        'FP8 checkpoints',
        'not supported yet',
        'BF16, F16, F32',
      ]);
      writeFileSync(
        path,
        encodeSafetensors([{ name: 'ids', dtype: 'F64', shape: [1], data: new Uint8Array(8) }]),
      );
      expectError(() => openSafetensorsFile(path), UnsupportedDTypeError, [
        '"ids"',
        'F64',
        'supported dtypes: BF16',
      ]);
    });
  });
});

describe('malformed files are refused at open time, naming file and tensor', () => {
  it('a truncated file', () => {
    withTempDir((dir) => {
      const path = join(dir, 'model.safetensors');
      writeFileSync(path, readFileSync(join(V2_LITE_TINY, 'model.safetensors')));
      const size = readFileSync(path).length;
      truncateSync(path, size - 100);
      const { entries } = readHeader(path);
      const last = Object.entries(entries).sort((a, b) => b[1].data_offsets[1] - a[1].data_offsets[1])[0]![0];
      expectError(() => openSafetensors(dir), TruncatedCheckpointError, [
        path,
        `"${last}"`,
        'truncated',
        `${size - 100}`,
      ]);
    });
  });

  it('a header length beyond the file, and malformed header JSON', () => {
    withTempDir((dir) => {
      const path = join(dir, 'model.safetensors');
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(1_000_000n);
      writeFileSync(path, Buffer.concat([len, Buffer.from('{}')]));
      expectError(() => openSafetensorsFile(path), SafetensorsHeaderError, [
        path,
        '1000000-byte header',
        'beyond',
      ]);
      len.writeBigUInt64LE(5n);
      writeFileSync(path, Buffer.concat([len, Buffer.from('{"a":')]));
      expectError(() => openSafetensorsFile(path), SafetensorsHeaderError, [path, 'malformed JSON header']);
      writeFileSync(path, Buffer.from([1, 2, 3]));
      expectError(() => openSafetensorsFile(path), SafetensorsHeaderError, [path, '3 bytes']);
    });
  });

  it('a shape that does not match the byte range', () => {
    withTempDir((dir) => {
      const path = join(dir, 'model.safetensors');
      writeFileSync(
        path,
        encodeSafetensors([{ name: 'w', dtype: 'BF16', shape: [2, 3], data: new Uint8Array(10) }]),
      );
      expectError(() => openSafetensorsFile(path), TensorByteSizeError, [
        path,
        '"w"',
        '[2, 3]',
        '12 bytes',
        '10 bytes',
      ]);
    });
  });

  it('all of them are CheckpointErrors', () => {
    withTempDir((dir) => {
      assert.throws(() => openSafetensors(dir), CheckpointError);
    });
  });
});

/** A safetensors file whose header gives each tensor the stated `data_offsets` (over `dataBytes` of data). */
function craftSafetensors(
  entries: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>,
  dataBytes: number,
): Buffer {
  const json = Buffer.from(JSON.stringify(entries), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, Buffer.alloc(dataBytes)]);
}

describe('finding 9: hostile checkpoints are refused', () => {
  it('finding 9: tensors whose data_offsets overlap are refused, naming both tensors', () => {
    withTempDir((dir) => {
      const path = join(dir, 'model.safetensors');
      // "b" starts inside "a" (bytes 8..16 of 0..16): same size each, so only the overlap is wrong.
      writeFileSync(
        path,
        craftSafetensors(
          {
            a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
            b: { dtype: 'F32', shape: [4], data_offsets: [8, 24] },
          },
          24,
        ),
      );
      expectError(() => openSafetensorsFile(path), SafetensorsHeaderError, [path, '"b"', '"a"', 'overlap']);
      // Two names over the very same bytes are refused too; disjoint and empty tensors are fine.
      writeFileSync(
        path,
        craftSafetensors(
          {
            a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
            b: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
          },
          16,
        ),
      );
      expectError(() => openSafetensorsFile(path), SafetensorsHeaderError, ['overlap']);
      writeFileSync(
        path,
        craftSafetensors(
          {
            a: { dtype: 'F32', shape: [4], data_offsets: [0, 16] },
            e: { dtype: 'F32', shape: [0], data_offsets: [8, 8] },
            b: { dtype: 'F32', shape: [2], data_offsets: [16, 24] },
          },
          24,
        ),
      );
      const ok = openSafetensorsFile(path);
      ok.close();
    });
  });

  it('finding 9: tensors past the end of the file or not sized dtype × shape are refused', () => {
    withTempDir((dir) => {
      const path = join(dir, 'model.safetensors');
      writeFileSync(path, craftSafetensors({ a: { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }, 16));
      expectError(() => openSafetensorsFile(path), TruncatedCheckpointError, [path, '"a"']);
      writeFileSync(path, craftSafetensors({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }, 16));
      expectError(() => openSafetensorsFile(path), TensorByteSizeError, [path, '"a"']);
    });
  });

  it('finding 9: shard names that leave the model folder are refused, naming the shard', () => {
    withTempDir((dir) => {
      const tensors = decodeSafetensors(join(V2_LITE_TINY, 'model.safetensors'));
      writeTwoShards(dir, tensors);
      const indexPath = join(dir, 'model.safetensors.index.json');
      const index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map: Record<string, string> };
      const name = Object.keys(index.weight_map)[0]!;
      const model = join(dir, 'model');
      mkdirSync(model);
      // The escaping names point at a real, valid shard one level up: only the name is wrong.
      renameSync(indexPath, join(model, 'model.safetensors.index.json'));
      for (const f of ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'])
        copyFileSync(join(dir, f), join(model, f));
      for (const shard of [
        '../model-00001-of-00002.safetensors',
        'sub/../../model-00001-of-00002.safetensors',
        join(dir, 'model-00001-of-00002.safetensors'),
      ]) {
        writeJson(join(model, 'model.safetensors.index.json'), {
          weight_map: { ...index.weight_map, [name]: shard },
        });
        expectError(() => openSafetensors(model), CheckpointIndexError, [
          `"${name}"`,
          shard,
          'leaves the model folder',
        ]);
      }
    });
  });
});
