// Tests of the GGUF writer of bench/gguf: f32 → f16 rounding, Q8_0 against its definition, a round trip
// of header, metadata and tensor bytes through the reader, and the deepseek2 layout (names, ggml
// dimensions, the kv_b split and the stacked experts) read back from a written file of a tiny config.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { deepseek2Tensors, writeDeepseek2Gguf } from '../../bench/gguf/deepseek2-gguf.js';
import { type GgufValue, readGgufHeader, tensorBytes, writeGguf } from '../../bench/gguf/gguf-file.js';
import { f32ToF16Bits, quantizeQ8_0 } from '../../bench/gguf/q8-0.js';
import type { DeepseekConfig } from '../../src/config/model-config.js';
import { DummyWeightSource } from '../../src/loader/dummy-weights.js';
import { f16ToF32 } from '../../src/loader/half-float.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { deepseekTensorSpecs } from '../../src/models/deepseek-weights.js';
import { ASSET_CONFIGS } from '../loader/fixture-files.js';

function withTemp<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'duet-gguf-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function half(bits: number): number {
  const out = new Float32Array(1);
  f16ToF32(out, new Uint16Array([bits]));
  return out[0]!;
}

/** A seeded uniform stream on [-1, 1). */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 2 ** 31 - 1;
  };
}

describe('f32ToF16Bits', () => {
  it('returns every half value unchanged (all 63,488 non-NaN patterns)', () => {
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue; // NaN
      assert.equal(f32ToF16Bits(half(h)), h, `0x${h.toString(16)}`);
    }
  });

  it('rounds to nearest, ties to even, overflow to inf, tiny values to zero', () => {
    assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00); // tie: down to the even 1.0
    assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02); // tie: up to the even neighbour
    assert.equal(f32ToF16Bits(1 + 2 ** -11 + 2 ** -20), 0x3c01); // above the tie
    assert.equal(f32ToF16Bits(65520), 0x7c00); // halfway past the largest half: inf
    assert.equal(f32ToF16Bits(65519), 0x7bff);
    assert.equal(f32ToF16Bits(2 ** -25), 0x0000); // tie between 0 and the smallest subnormal
    assert.equal(f32ToF16Bits(3 * 2 ** -26), 0x0001);
    assert.equal(f32ToF16Bits(-2), 0xc000);
    assert.equal(f32ToF16Bits(Number.NaN) & 0x7e00, 0x7e00);
  });
});

describe('quantizeQ8_0', () => {
  /** Decodes Q8_0 blocks to their scales and int8 values. */
  function decode(bytes: Uint8Array): { d: number[]; q: number[] } {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const d: number[] = [];
    const q: number[] = [];
    for (let at = 0; at < bytes.length; at += 34) {
      d.push(half(view.getUint16(at, true)));
      for (let j = 0; j < 32; j++) q.push(view.getInt8(at + 2 + j));
    }
    return { d, q };
  }

  it('stores d = max|x|/127 (as f16) and q = round(x / d), so d·q is within d/2 of x', () => {
    const next = rng(7);
    const x = new Float32Array(32 * 64).map((_, i) => next() * (1 + (i >> 5)));
    const bytes = new Uint8Array(64 * 34);
    quantizeQ8_0(bytes, x);
    const { d, q } = decode(bytes);
    for (let b = 0; b < 64; b++) {
      const block = x.subarray(b * 32, b * 32 + 32);
      const amax = Math.max(...Array.from(block, Math.abs));
      const exact = amax / 127;
      // The scale is amax / 127 rounded to f16: relative error ≤ 2^-11.
      assert.ok(Math.abs(d[b]! - exact) <= exact * 2 ** -11, `block ${b}: d ${d[b]} vs ${exact}`);
      for (let j = 0; j < 32; j++) {
        const qj = q[b * 32 + j]!;
        assert.ok(Math.abs(qj) <= 127);
        // q was rounded against the unrounded scale: |x − exact·q| ≤ exact/2 (+ float32 slack); reading
        // back with the f16 scale adds at most |q|·|d − exact| ≤ 127·|d − exact|.
        const err = Math.abs(block[j]! - d[b]! * qj);
        assert.ok(
          err <= exact / 2 + 127 * Math.abs(d[b]! - exact) + 1e-6 * amax,
          `block ${b} [${j}]: ${err}`,
        );
        if (Math.abs(block[j]!) === amax) assert.equal(Math.abs(qj), 127);
      }
    }
  });

  it('quantizes a block of exact multiples exactly, rounds halves away from zero, and zeros to zero', () => {
    // x = k/2 for k = -16..15: amax 8, d = 8/127, x/d = k·127/16.
    const x = new Float32Array(96);
    for (let j = 0; j < 32; j++) x[j] = (j - 16) / 2;
    x[32] = 127; // block 2: q = round(x · 1) exactly, halves away from zero
    x[33] = 2.5;
    x[34] = -2.5;
    x[35] = 1.5;
    const bytes = new Uint8Array(3 * 34);
    quantizeQ8_0(bytes, x);
    const { d, q } = decode(bytes);
    for (let j = 0; j < 32; j++) {
      const v = Math.fround(Math.fround(x[j]!) * Math.fround(1 / Math.fround(8 / 127)));
      assert.equal(q[j], Math.sign(v) * Math.floor(Math.abs(v) + 0.5), `[${j}]`);
    }
    assert.equal(q[0], -127);
    assert.equal(d[1], 1);
    assert.deepEqual(q.slice(32, 36), [127, 3, -3, 2]);
    assert.equal(d[2], 0);
    assert.deepEqual(q.slice(64), new Array(32).fill(0));
  });

  it('refuses a length that is not whole blocks', () => {
    assert.throws(() => quantizeQ8_0(new Uint8Array(34), new Float32Array(31)), /blocks of 32/);
  });
});

describe('writeGguf / readGgufHeader', () => {
  it('round-trips metadata of every kind, tensor descriptors, aligned offsets and tensor bytes', () => {
    withTemp((dir) => {
      const path = join(dir, 'a.gguf');
      const metadata = new Map<string, GgufValue>([
        ['general.architecture', { type: 'string', value: 'test' }],
        ['a.u32', { type: 'u32', value: 4000000000 }],
        ['a.i32', { type: 'i32', value: -5 }],
        ['a.f32', { type: 'f32', value: 0.25 }],
        ['a.u64', { type: 'u64', value: 2 ** 40 }],
        ['a.bool', { type: 'bool', value: true }],
        ['a.strings', { type: 'array', items: 'string', value: ['x', 'ü', ''] }],
        ['a.ints', { type: 'array', items: 'i32', value: [1, -2, 3] }],
      ]);
      const tensors = [
        { name: 'f', dims: [3, 5], type: 'F32' as const },
        { name: 'b', dims: [7], type: 'BF16' as const },
        { name: 'q', dims: [64, 2], type: 'Q8_0' as const },
      ];
      const data = tensors.map((t, i) =>
        new Uint8Array(tensorBytes(t.dims, t.type)).map((_, k) => (k * 31 + i * 7) & 0xff),
      );
      writeGguf(path, metadata, tensors, (i) => data[i]!);
      const h = readGgufHeader(path);
      assert.equal(h.version, 3);
      for (const [k, v] of metadata) assert.deepEqual(h.metadata.get(k), v.value, k);
      assert.equal(h.dataStart % 32, 0);
      const file = readFileSync(path);
      tensors.forEach((t, i) => {
        const got = h.tensors[i]!;
        assert.deepEqual([got.name, got.dims, got.type], [t.name, t.dims, t.type]);
        assert.equal((got.fileOffset - h.dataStart) % 32, 0);
        assert.deepEqual(
          new Uint8Array(file.subarray(got.fileOffset, got.fileOffset + data[i]!.length)),
          data[i],
        );
      });
      assert.equal(statSync(path).size % 32, 0);
    });
  });

  it('refuses tensor data of the wrong size and Q8_0 rows that are not whole blocks', () => {
    withTemp((dir) => {
      const t = [{ name: 'f', dims: [4], type: 'F32' as const }];
      assert.throws(
        () => writeGguf(join(dir, 'b.gguf'), new Map(), t, () => new Uint8Array(15)),
        /15 bytes given, 16/,
      );
    });
    assert.throws(() => tensorBytes([48, 2], 'Q8_0'), /multiple of 32/);
  });
});

describe('deepseek2 GGUF', () => {
  const config: DeepseekConfig = loadDeepseekConfig(join(ASSET_CONFIGS, 'deepseek-v2-lite'), {
    num_hidden_layers: 2,
    hidden_size: 64,
    intermediate_size: 96,
    moe_intermediate_size: 32,
    n_routed_experts: 4,
    num_experts_per_tok: 2,
    n_shared_experts: 1,
    num_attention_heads: 2,
    num_key_value_heads: 2,
    kv_lora_rank: 32,
    qk_nope_head_dim: 16,
    qk_rope_head_dim: 8,
    v_head_dim: 24,
    vocab_size: 300,
    bos_token_id: 0,
    eos_token_id: 1,
  });

  it('writes MLA as llama.cpp expects: attn_k_b[h][j][n] = kv_b[h·(nope+v) + n][j], attn_v_b = the v rows', () => {
    withTemp((dir) => {
      const path = join(dir, 'm.gguf');
      const source = new DummyWeightSource(deepseekTensorSpecs(config), { seed: 3, dtype: 'f32' });
      writeDeepseek2Gguf(path, config, source, 'F32');
      const h = readGgufHeader(path);
      const file = readFileSync(path);
      const tensor = (name: string) => {
        const t = h.tensors.find((x) => x.name === name);
        assert.ok(t, name);
        const n = t.dims.reduce((a, b) => a * b, 1);
        return {
          dims: t.dims,
          data: new Float32Array(file.buffer.slice(t.fileOffset, t.fileOffset + n * 4)),
        };
      };
      const [heads, nope, v, r] = [2, 16, 24, 32];
      const kv = source.read('model.layers.1.self_attn.kv_b_proj.weight').data as Float32Array;
      const kb = tensor('blk.1.attn_k_b.weight');
      const vb = tensor('blk.1.attn_v_b.weight');
      assert.deepEqual(kb.dims, [nope, r, heads]);
      assert.deepEqual(vb.dims, [r, v, heads]);
      for (let hd = 0; hd < heads; hd++) {
        for (let j = 0; j < r; j++) {
          for (let n = 0; n < nope; n++) {
            assert.equal(kb.data[(hd * r + j) * nope + n], kv[(hd * (nope + v) + n) * r + j]);
          }
          for (let i = 0; i < v; i++) {
            assert.equal(vb.data[(hd * v + i) * r + j], kv[(hd * (nope + v) + nope + i) * r + j]);
          }
        }
      }
      // Experts stacked: expert e's [32, 64] up_proj is slice e of ffn_up_exps (dims [64, 32, 4]).
      const up = tensor('blk.1.ffn_up_exps.weight');
      assert.deepEqual(up.dims, [64, 32, 4]);
      const e2 = source.read('model.layers.1.mlp.experts.2.up_proj.weight').data as Float32Array;
      assert.deepEqual(up.data.subarray(2 * 32 * 64, 3 * 32 * 64), e2);
      assert.deepEqual(tensor('token_embd.weight').dims, [64, 300]);
      assert.deepEqual(tensor('blk.0.ffn_gate.weight').dims, [64, 96]);
      assert.equal(h.metadata.get('general.architecture'), 'deepseek2');
      assert.equal(h.metadata.get('deepseek2.attention.head_count_kv'), 1);
      assert.equal(h.metadata.get('deepseek2.attention.key_length'), r + 8);
      assert.equal(h.metadata.get('deepseek2.attention.key_length_mla'), nope + 8);
      assert.equal(h.metadata.get('deepseek2.attention.value_length_mla'), v);
      assert.equal(h.metadata.get('deepseek2.leading_dense_block_count'), 1);
      assert.equal((h.metadata.get('tokenizer.ggml.tokens') as string[]).length, 300);
    });
  });

  it('Q8_0 quantizes matrices with whole-block rows and keeps norms, router and the others in F32', () => {
    const types = new Map(deepseek2Tensors(config, 'Q8_0').map((t) => [t.name, t.type]));
    assert.equal(types.get('blk.1.ffn_up_exps.weight'), 'Q8_0');
    assert.equal(types.get('blk.1.attn_k_b.weight'), 'F32'); // rows of nope = 16: not whole blocks
    assert.equal(types.get('blk.1.ffn_gate_inp.weight'), 'F32');
    assert.equal(types.get('blk.0.attn_norm.weight'), 'F32');
    assert.equal(types.get('blk.1.ffn_down_exps.weight'), 'Q8_0');
  });
});
