// Tests of the checkpoint tensor list: it equals the fixture checkpoints exactly, and has the expected
// size for the real configs; and which checkpoint tensors are ignored.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadDeepseekConfig, parseDeepseekConfig } from '../../src/loader/hf-config.js';
import {
  deepseekTensorSpecs,
  isIgnoredCheckpointTensor,
  numParameters,
} from '../../src/models/deepseek-weights.js';
import { ASSET_CONFIGS, fixtureConfigJson, readHeader, V2_LITE_TINY, V2_TINY } from './fixture-files.js';

function specMap(dir: string, overrides?: Record<string, unknown>): Map<string, readonly number[]> {
  return new Map(deepseekTensorSpecs(loadDeepseekConfig(dir, overrides)).map((s) => [s.name, s.shape]));
}

describe('deepseekTensorSpecs', () => {
  for (const dir of [V2_LITE_TINY, V2_TINY]) {
    it(`lists exactly the tensors of ${dir.split('/').pop()}/model.safetensors, with their shapes`, () => {
      const { entries } = readHeader(join(dir, 'model.safetensors'));
      const inFile = new Map(Object.entries(entries).map(([name, e]) => [name, e.shape]));
      const specs = specMap(dir);
      assert.equal(specs.size, deepseekTensorSpecs(loadDeepseekConfig(dir)).length, 'no duplicate names');
      assert.deepEqual([...specs.keys()].sort(), [...inFile.keys()].sort());
      for (const [name, shape] of specs) assert.deepEqual(shape, inFile.get(name), name);
    });
  }

  it('follows the model order: embeddings, layers, norm, lm_head', () => {
    const names = deepseekTensorSpecs(loadDeepseekConfig(V2_LITE_TINY)).map((s) => s.name);
    assert.equal(names[0], 'model.embed_tokens.weight');
    assert.equal(names[1], 'model.layers.0.input_layernorm.weight');
    assert.deepEqual(names.slice(-2), ['model.norm.weight', 'lm_head.weight']);
  });

  it('omits lm_head when tied, and uses dense MLPs everywhere without routed experts', () => {
    const json = fixtureConfigJson(V2_TINY);
    const tied = deepseekTensorSpecs(parseDeepseekConfig({ ...json, tie_word_embeddings: true }));
    assert.equal(
      tied.some((s) => s.name === 'lm_head.weight'),
      false,
    );
    const dense = deepseekTensorSpecs(parseDeepseekConfig({ ...json, n_routed_experts: null }));
    assert.equal(
      dense.some((s) => s.name.includes('experts') || s.name.includes('mlp.gate.')),
      false,
    );
    assert.deepEqual(dense.find((s) => s.name === 'model.layers.3.mlp.down_proj.weight')?.shape, [64, 128]);
  });

  it('counts the parameters of DeepSeek-V2-Lite (15.7B) and DeepSeek-V3 (671B)', () => {
    const lite = loadDeepseekConfig(join(ASSET_CONFIGS, 'deepseek-v2-lite'));
    assert.equal(numParameters(lite), 15_706_484_224);
    const v3 = loadDeepseekConfig(join(ASSET_CONFIGS, 'deepseek-v3'));
    // 671B without the multi-token-prediction layer, as DeepSeek reports.
    assert.ok(Math.abs(numParameters(v3) / 1e9 - 671) < 0.5, `${numParameters(v3)}`);
  });

  it('gives DeepSeek-V3 its noaux_tc gate bias, q compression and 256 experts per MoE layer', () => {
    const specs = specMap(join(ASSET_CONFIGS, 'deepseek-v3'));
    assert.deepEqual(specs.get('model.layers.3.mlp.gate.e_score_correction_bias'), [256]);
    assert.deepEqual(specs.get('model.layers.3.mlp.gate.weight'), [256, 7168]);
    assert.deepEqual(specs.get('model.layers.60.mlp.experts.255.down_proj.weight'), [7168, 2048]);
    assert.deepEqual(specs.get('model.layers.3.mlp.shared_experts.gate_proj.weight'), [2048, 7168]);
    assert.deepEqual(specs.get('model.layers.0.mlp.gate_proj.weight'), [18432, 7168]);
    assert.deepEqual(specs.get('model.layers.0.self_attn.q_a_proj.weight'), [1536, 7168]);
    assert.deepEqual(specs.get('model.layers.0.self_attn.q_b_proj.weight'), [128 * 192, 1536]);
    assert.deepEqual(specs.get('model.layers.0.self_attn.kv_a_proj_with_mqa.weight'), [576, 7168]);
    assert.deepEqual(specs.get('model.layers.0.self_attn.kv_b_proj.weight'), [128 * 256, 512]);
    assert.deepEqual(specs.get('model.layers.0.self_attn.o_proj.weight'), [7168, 128 * 128]);
    assert.equal(specs.has('model.layers.2.mlp.gate.weight'), false);
    assert.equal(specs.has('model.layers.61.embed_tokens.weight'), false);
  });
});

describe('isIgnoredCheckpointTensor', () => {
  it('ignores the MTP layer, cut layers and rotary buffers, nothing the model needs', () => {
    const v3 = loadDeepseekConfig(join(ASSET_CONFIGS, 'deepseek-v3'));
    assert.equal(isIgnoredCheckpointTensor('model.layers.61.eh_proj.weight', v3), true);
    assert.equal(isIgnoredCheckpointTensor('model.layers.61.shared_head.head.weight', v3), true);
    assert.equal(isIgnoredCheckpointTensor('model.layers.0.self_attn.rotary_emb.inv_freq', v3), true);
    assert.equal(isIgnoredCheckpointTensor('model.layers.60.mlp.gate.weight', v3), false);
    const cut = loadDeepseekConfig(V2_TINY, { num_hidden_layers: 2, first_k_dense_replace: 2 });
    assert.equal(isIgnoredCheckpointTensor('model.layers.2.input_layernorm.weight', cut), true);
    assert.equal(isIgnoredCheckpointTensor('model.layers.1.input_layernorm.weight', cut), false);
    for (const s of deepseekTensorSpecs(v3))
      assert.equal(isIgnoredCheckpointTensor(s.name, v3), false, s.name);
  });
});
