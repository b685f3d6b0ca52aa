// The GGUF writer of bench/gguf on a V3-style model: the embedded speaking model (q LoRA, sigmoid noaux_tc
// routing with a score-correction bias and expert groups, a shared expert, a leading dense layer, YaRN, its
// own byte-level BPE tokenizer) written as F32 / BF16 / Q8_0 and read back with the writer's own header
// reader: every key llama.cpp's deepseek2 reads for such a model, the exact tensor list with its ggml
// dimensions and types, tensor bytes equal to the checkpoint's values, the tokenizer block, and the
// refusal of configs llama.cpp would run as another model.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  checkLlamaCppCanRun,
  Deepseek2GgufError,
  deepseek2Tensors,
  writeDeepseek2Gguf,
} from '../../bench/gguf/deepseek2-gguf.js';
import { type GgufHeader, readGgufHeader } from '../../bench/gguf/gguf-file.js';
import { byteLevelBpeVocab, GgufVocabError } from '../../bench/gguf/gguf-vocab.js';
import type { DeepseekConfig } from '../../src/config/model-config.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { openWeights } from '../../src/loader/model-folder.js';
import { deepseekCheckpointLayout } from '../../src/models/deepseek-weights.js';
import { embeddedModelDir } from '../../src/models/model-loader.js';

const MODEL = embeddedModelDir();
const config = loadDeepseekConfig(MODEL);
const tokenizerJson = JSON.parse(readFileSync(join(MODEL, 'tokenizer.json'), 'utf8')) as {
  model: { vocab: Record<string, number>; merges: string[] };
};
const vocabOptions = { vocabSize: 4096, bosTokenId: 0, eosTokenId: 1, addBos: true };

describe('deepseek2 GGUF of a V3-style model (the speaking model)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'duet-gguf-v3-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Writes the model as `fileType` with its tokenizer; returns the parsed header and the file. */
  function write(fileType: 'F32' | 'BF16' | 'Q8_0'): { h: GgufHeader; file: Buffer } {
    const path = join(dir, `m-${fileType}.gguf`);
    const source = openWeights(MODEL, config, deepseekCheckpointLayout(config), 'safetensors');
    try {
      writeDeepseek2Gguf(path, config, source, fileType, byteLevelBpeVocab(tokenizerJson, vocabOptions));
    } finally {
      source.close();
    }
    return { h: readGgufHeader(path), file: readFileSync(path) };
  }
  const f32 = write('F32');

  it('writes every key llama.cpp reads for q LoRA, V3 routing, groups, shared experts, dense lead and YaRN', () => {
    const m = f32.h.metadata;
    const expected: Record<string, unknown> = {
      'general.architecture': 'deepseek2',
      'general.file_type': 0,
      'deepseek2.block_count': 4,
      'deepseek2.context_length': 512,
      'deepseek2.embedding_length': 128,
      'deepseek2.feed_forward_length': 384,
      'deepseek2.attention.head_count': 4,
      'deepseek2.attention.head_count_kv': 1, // MLA as MQA over the compressed kv
      'deepseek2.attention.q_lora_rank': 64,
      'deepseek2.attention.kv_lora_rank': 64,
      'deepseek2.attention.key_length': 64 + 16,
      'deepseek2.attention.value_length': 64,
      'deepseek2.attention.key_length_mla': 32 + 16,
      'deepseek2.attention.value_length_mla': 32,
      'deepseek2.leading_dense_block_count': 1,
      'deepseek2.vocab_size': 4096,
      'deepseek2.expert_feed_forward_length': 96,
      'deepseek2.expert_count': 8,
      'deepseek2.expert_used_count': 2,
      'deepseek2.expert_shared_count': 1,
      'deepseek2.expert_weights_scale': 2.5,
      'deepseek2.expert_weights_norm': true,
      'deepseek2.expert_gating_func': 2, // sigmoid
      'deepseek2.expert_group_count': 4,
      'deepseek2.expert_group_used_count': 2,
      'deepseek2.rope.dimension_count': 16,
      'deepseek2.rope.freq_base': 10000,
      'deepseek2.rope.scaling.type': 'yarn',
      'deepseek2.rope.scaling.factor': 4,
      'deepseek2.rope.scaling.original_context_length': 128,
    };
    for (const [k, v] of Object.entries(expected)) assert.equal(m.get(k), v, k);
    // f32 keys are stored in float32: compared at float32 precision.
    assert.equal(m.get('deepseek2.attention.layer_norm_rms_epsilon'), Math.fround(1e-6));
    assert.equal(m.get('deepseek2.rope.scaling.yarn_log_multiplier'), Math.fround(0.1)); // 0.1 · mscale_all_dim
  });

  it('writes the model tokenizer: 4096 tokens in id order, BOS / EOS as CONTROL, every merge, GPT-2 pre-tokenizer', () => {
    const m = f32.h.metadata;
    const tokens = m.get('tokenizer.ggml.tokens') as string[];
    const types = m.get('tokenizer.ggml.token_type') as number[];
    assert.equal(tokens.length, 4096);
    for (const [content, id] of Object.entries(tokenizerJson.model.vocab)) assert.equal(tokens[id], content);
    assert.equal(tokens[0], '<|begin_of_text|>');
    assert.equal(tokens[1], '<|end_of_text|>');
    assert.deepEqual(types.slice(0, 3), [3, 3, 1]);
    assert.equal(types.filter((t) => t === 1).length, 4094);
    assert.deepEqual(m.get('tokenizer.ggml.merges'), tokenizerJson.model.merges);
    assert.equal(m.get('tokenizer.ggml.model'), 'gpt2');
    assert.equal(m.get('tokenizer.ggml.pre'), 'gpt-2');
    assert.equal(m.get('tokenizer.ggml.bos_token_id'), 0);
    assert.equal(m.get('tokenizer.ggml.eos_token_id'), 1);
    assert.equal(m.get('tokenizer.ggml.add_bos_token'), true);
  });

  it('writes exactly the tensors llama.cpp loads, with their ggml dimensions', () => {
    const dims = new Map(f32.h.tensors.map((t) => [t.name, t.dims]));
    const expected = new Map<string, number[]>([
      ['token_embd.weight', [128, 4096]],
      ['output_norm.weight', [128]],
      ['output.weight', [128, 4096]],
    ]);
    for (let i = 0; i < 4; i++) {
      const b = `blk.${i}.`;
      expected.set(`${b}attn_norm.weight`, [128]);
      expected.set(`${b}attn_q_a.weight`, [128, 64]);
      expected.set(`${b}attn_q_a_norm.weight`, [64]);
      expected.set(`${b}attn_q_b.weight`, [64, 4 * 48]);
      expected.set(`${b}attn_kv_a_mqa.weight`, [128, 64 + 16]);
      expected.set(`${b}attn_kv_a_norm.weight`, [64]);
      expected.set(`${b}attn_k_b.weight`, [32, 64, 4]);
      expected.set(`${b}attn_v_b.weight`, [64, 32, 4]);
      expected.set(`${b}attn_output.weight`, [4 * 32, 128]);
      expected.set(`${b}ffn_norm.weight`, [128]);
      if (i === 0) {
        expected.set(`${b}ffn_gate.weight`, [128, 384]);
        expected.set(`${b}ffn_up.weight`, [128, 384]);
        expected.set(`${b}ffn_down.weight`, [384, 128]);
        continue;
      }
      expected.set(`${b}ffn_gate_inp.weight`, [128, 8]);
      expected.set(`${b}exp_probs_b.bias`, [8]);
      expected.set(`${b}ffn_gate_exps.weight`, [128, 96, 8]);
      expected.set(`${b}ffn_up_exps.weight`, [128, 96, 8]);
      expected.set(`${b}ffn_down_exps.weight`, [96, 128, 8]);
      expected.set(`${b}ffn_gate_shexp.weight`, [128, 96]);
      expected.set(`${b}ffn_up_shexp.weight`, [128, 96]);
      expected.set(`${b}ffn_down_shexp.weight`, [96, 128]);
    }
    assert.deepEqual(new Map([...dims].sort()), new Map([...expected].sort()));
  });

  it('stores the checkpoint values: F32 exactly, BF16 bit for bit, routing bias and norms in F32', () => {
    const source = openWeights(MODEL, config, deepseekCheckpointLayout(config), 'safetensors');
    try {
      const bf16 = write('BF16');
      /** The raw bytes of tensor `name` in a written file. */
      const bytes = ({ h, file }: { h: GgufHeader; file: Buffer }, name: string, bytesPer: number) => {
        const t = h.tensors.find((x) => x.name === name);
        assert.ok(t, name);
        const n = t.dims.reduce((a, b) => a * b, 1);
        return file.buffer.slice(
          file.byteOffset + t.fileOffset,
          file.byteOffset + t.fileOffset + n * bytesPer,
        );
      };
      for (const [gguf, hf] of [
        ['blk.2.attn_q_a.weight', 'model.layers.2.self_attn.q_a_proj.weight'],
        ['blk.2.attn_q_b.weight', 'model.layers.2.self_attn.q_b_proj.weight'],
        ['blk.3.ffn_up_shexp.weight', 'model.layers.3.mlp.shared_experts.up_proj.weight'],
      ] as const) {
        const w = source.read(hf);
        assert.equal(w.dtype, 'bf16', hf);
        const bits = w.data as Uint16Array;
        assert.deepEqual(new Uint16Array(bytes(bf16, gguf, 2)), bits, gguf);
        const widened = new Float32Array(bits.length);
        new Uint32Array(widened.buffer).set(Array.from(bits, (b) => b << 16));
        assert.deepEqual(new Float32Array(bytes(f32, gguf, 4)), widened, gguf);
      }
      const bias = source.read('model.layers.1.mlp.gate.e_score_correction_bias');
      assert.equal(bias.dtype, 'f32');
      assert.deepEqual(new Float32Array(bytes(bf16, 'blk.1.exp_probs_b.bias', 4)), bias.data);
      const types = new Map(bf16.h.tensors.map((t) => [t.name, t.type]));
      assert.equal(types.get('blk.1.exp_probs_b.bias'), 'F32');
      assert.equal(types.get('blk.1.attn_q_a_norm.weight'), 'F32');
      assert.equal(types.get('blk.1.ffn_gate_inp.weight'), 'F32');
      assert.equal(types.get('blk.1.attn_q_b.weight'), 'BF16');
    } finally {
      source.close();
    }
  });

  it('Q8_0 quantizes every matrix of this model (all rows are whole blocks of 32)', () => {
    for (const t of deepseek2Tensors(config, 'Q8_0')) {
      const isVector = t.dims.length === 1 || t.name.endsWith('ffn_gate_inp.weight');
      assert.equal(t.type, isVector ? 'F32' : 'Q8_0', t.name);
    }
  });
});

describe('configs llama.cpp would run as another model are refused', () => {
  const yarn = config.ropeScaling!;
  const cases: [string, DeepseekConfig, RegExp][] = [
    [
      'mscale ≠ mscale_all_dim',
      { ...config, ropeScaling: { ...yarn, mscale: 0.75 } },
      /mscale 0\.75 and mscale_all_dim 1/,
    ],
    [
      'beta_fast ≠ 32',
      { ...config, ropeScaling: { ...yarn, betaFast: 16 } },
      /beta_fast 32 and beta_slow 1; this config has 16 and 1/,
    ],
    [
      'group_limited_greedy with a group limit',
      { ...config, topkMethod: 'group_limited_greedy' },
      /topk_method "group_limited_greedy" with n_group 4 > topk_group 2/,
    ],
    ['moe_layer_freq 2', { ...config, moeLayerFreq: 2 }, /moe_layer_freq 1; this config has 2/],
  ];
  for (const [what, c, message] of cases) {
    it(what, () => {
      assert.throws(
        () => checkLlamaCppCanRun(c),
        (e: unknown) => e instanceof Deepseek2GgufError && message.test(e.message),
      );
      assert.throws(() => deepseek2Tensors(c, 'F32'), Deepseek2GgufError);
    });
  }
  it('accepts the speaking model and YaRN with mscale = mscale_all_dim ≠ 1 (as V2-Lite has)', () => {
    checkLlamaCppCanRun(config);
    checkLlamaCppCanRun({ ...config, ropeScaling: { ...yarn, mscale: 0.75, mscaleAllDim: 0.75 } });
  });
});

describe('byteLevelBpeVocab', () => {
  const base = {
    model: { type: 'BPE', vocab: { a: 2, b: 3, ab: 4 }, merges: [['a', 'b']] },
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, use_regex: true },
    added_tokens: [{ id: 0, content: '<s>', special: true }],
  };
  it('fills ids the tokenizer lacks with UNUSED placeholders and writes pair merges as "a b"', () => {
    const m = byteLevelBpeVocab(base, { vocabSize: 6, bosTokenId: 0, eosTokenId: null, addBos: false });
    assert.deepEqual(m.get('tokenizer.ggml.tokens')?.value, ['<s>', '[PAD1]', 'a', 'b', 'ab', '[PAD5]']);
    assert.deepEqual(m.get('tokenizer.ggml.token_type')?.value, [3, 5, 1, 1, 1, 5]);
    assert.deepEqual(m.get('tokenizer.ggml.merges')?.value, ['a b']);
    assert.equal(m.has('tokenizer.ggml.eos_token_id'), false);
  });
  it('refuses another model type, another pre-tokenizer, and ids outside the vocabulary', () => {
    const o = { vocabSize: 6, bosTokenId: 0, eosTokenId: 1, addBos: false };
    const refused = (json: unknown, message: RegExp) =>
      assert.throws(
        () => byteLevelBpeVocab(json, o),
        (e: unknown) => e instanceof GgufVocabError && message.test(e.message),
      );
    refused({ ...base, model: { ...base.model, type: 'Unigram' } }, /model.type is "Unigram"; only BPE/);
    refused({ ...base, pre_tokenizer: { type: 'Metaspace' } }, /only ByteLevel/);
    refused({ ...base, model: { ...base.model, vocab: { a: 6 } } }, /token "a" has id 6, outside \[0, 6\)/);
    refused({ ...base, model: { ...base.model, merges: [1] } }, /merges\[0\] is neither/);
    refused({}, /no "model"/);
  });
});
