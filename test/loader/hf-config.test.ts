// Tests of config.json parsing: the fixture and real configs, defaults, --hf-overrides, and every error.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isMoeLayer } from '../../src/config/model-config.js';
import { loadDeepseekConfig, ModelConfigError, parseDeepseekConfig } from '../../src/loader/hf-config.js';
import {
  ASSET_CONFIGS,
  fixtureConfigJson,
  V2_LITE_TINY,
  V2_TINY,
  withTempDir,
  writeJson,
} from './fixture-files.js';

/** The fixtures' YaRN mscale, written as in config.json (0.707, not exactly 1/√2). */
const FIXTURE_MSCALE = 707 / 1000;

/** Asserts that parsing throws a ModelConfigError for `field` whose message matches every pattern. */
function expectConfigError(
  json: unknown,
  field: string | null,
  patterns: readonly RegExp[],
  overrides?: Record<string, unknown>,
): void {
  assert.throws(
    () => parseDeepseekConfig(json, overrides),
    (err: unknown) => {
      assert.ok(err instanceof ModelConfigError, `expected ModelConfigError, got ${String(err)}`);
      assert.equal(err.name, 'ModelConfigError');
      assert.equal(err.field, field);
      if (field !== null) assert.match(err.message, new RegExp(`"${field.replace('.', '\\.')}"`));
      for (const p of patterns) assert.match(err.message, p);
      return true;
    },
  );
}

describe('parseDeepseekConfig: fixture and real configs', () => {
  it('reads v2-lite-tiny (direct q_proj, greedy softmax routing, YaRN)', () => {
    const c = loadDeepseekConfig(V2_LITE_TINY);
    assert.equal(c.architecture, 'DeepseekV2ForCausalLM');
    assert.equal(c.modelType, 'deepseek_v2');
    assert.equal(c.vocabSize, 512);
    assert.equal(c.hiddenSize, 64);
    assert.equal(c.numHiddenLayers, 3);
    assert.equal(c.qLoraRank, null);
    assert.equal(c.kvLoraRank, 32);
    assert.deepEqual([c.qkNopeHeadDim, c.qkRopeHeadDim, c.vHeadDim], [16, 8, 16]);
    assert.deepEqual([c.nRoutedExperts, c.nSharedExperts, c.numExpertsPerTok], [8, 1, 2]);
    assert.equal(c.topkMethod, 'greedy');
    assert.equal(c.scoringFunc, 'softmax');
    assert.equal(c.normTopkProb, false);
    assert.equal(c.firstKDenseReplace, 1);
    assert.deepEqual(c.ropeScaling, {
      type: 'yarn',
      factor: 4,
      originalMaxPositionEmbeddings: 64,
      betaFast: 32,
      betaSlow: 1,
      mscale: FIXTURE_MSCALE,
      mscaleAllDim: FIXTURE_MSCALE,
    });
    assert.equal(c.rmsNormEps, 1e-6);
    assert.equal(c.bosTokenId, 500);
    assert.deepEqual(c.eosTokenIds, [501]);
    assert.equal(c.torchDtype, 'bfloat16');
    assert.equal(c.quantization, null);
    assert.deepEqual(
      [0, 1, 2].map((i) => isMoeLayer(c, i)),
      [false, true, true],
    );
  });

  it('reads v2-tiny (q compression, group-limited routing)', () => {
    const c = loadDeepseekConfig(V2_TINY);
    assert.equal(c.qLoraRank, 32);
    assert.deepEqual([c.nRoutedExperts, c.nSharedExperts, c.numExpertsPerTok], [16, 2, 3]);
    assert.deepEqual([c.nGroup, c.topkGroup], [4, 2]);
    assert.equal(c.topkMethod, 'group_limited_greedy');
    assert.equal(c.routedScalingFactor, 2);
    assert.equal(c.firstKDenseReplace, 2);
    assert.equal(c.numHiddenLayers, 4);
    assert.equal(c.ropeScaling?.mscaleAllDim, 1);
  });

  it('reads the real DeepSeek-V2-Lite config', () => {
    const c = loadDeepseekConfig(join(ASSET_CONFIGS, 'deepseek-v2-lite'));
    assert.deepEqual([c.hiddenSize, c.numHiddenLayers, c.vocabSize], [2048, 27, 102400]);
    assert.deepEqual([c.nRoutedExperts, c.numExpertsPerTok, c.moeIntermediateSize], [64, 6, 1408]);
    assert.equal(c.ropeScaling?.factor, 40);
    assert.equal(c.ropeScaling?.originalMaxPositionEmbeddings, 4096);
  });

  it('reads the real DeepSeek-V3 config, keeping its FP8 quantization', () => {
    const c = loadDeepseekConfig(join(ASSET_CONFIGS, 'deepseek-v3'));
    assert.equal(c.architecture, 'DeepseekV3ForCausalLM');
    assert.equal(c.modelType, 'deepseek_v3');
    assert.deepEqual([c.hiddenSize, c.numHiddenLayers, c.numAttentionHeads], [7168, 61, 128]);
    assert.equal(c.qLoraRank, 1536);
    assert.deepEqual([c.nRoutedExperts, c.nGroup, c.topkGroup, c.numExpertsPerTok], [256, 8, 4, 8]);
    assert.equal(c.topkMethod, 'noaux_tc');
    assert.equal(c.scoringFunc, 'sigmoid');
    assert.equal(c.normTopkProb, true);
    assert.equal(c.routedScalingFactor, 2.5);
    assert.equal(c.quantization?.method, 'fp8');
    assert.equal(c.quantization?.fields.quant_method, 'fp8');
    assert.deepEqual(c.eosTokenIds, [1]);
  });
});

describe('parseDeepseekConfig: defaults and lenience', () => {
  it('ignores unknown keys and num_key_value_heads', () => {
    const json = { ...fixtureConfigJson(V2_LITE_TINY), num_key_value_heads: 1, some_future_key: { a: 1 } };
    assert.deepEqual(parseDeepseekConfig(json), loadDeepseekConfig(V2_LITE_TINY));
  });

  it('defaults routing to the Hugging Face code of each model type', () => {
    const v2 = fixtureConfigJson(V2_LITE_TINY);
    for (const k of ['topk_method', 'scoring_func', 'norm_topk_prob', 'n_group', 'topk_group']) delete v2[k];
    const c2 = parseDeepseekConfig(v2);
    assert.deepEqual(
      [c2.topkMethod, c2.scoringFunc, c2.normTopkProb, c2.nGroup, c2.topkGroup],
      ['greedy', 'softmax', false, 1, 1],
    );
    const v3 = JSON.parse(JSON.stringify(fixtureConfigJson(V2_TINY))) as Record<string, unknown>;
    Object.assign(v3, { architectures: ['DeepseekV3ForCausalLM'], model_type: 'deepseek_v3' });
    for (const k of ['topk_method', 'scoring_func', 'norm_topk_prob']) delete v3[k];
    const c3 = parseDeepseekConfig(v3);
    assert.deepEqual([c3.topkMethod, c3.scoringFunc, c3.normTopkProb], ['noaux_tc', 'sigmoid', true]);
  });

  it('fills YaRN defaults and accepts rope_type for type', () => {
    const json = fixtureConfigJson(V2_LITE_TINY);
    json.rope_scaling = { rope_type: 'yarn', factor: 2, original_max_position_embeddings: 128 };
    const c = parseDeepseekConfig(json);
    assert.deepEqual(c.ropeScaling, {
      type: 'yarn',
      factor: 2,
      originalMaxPositionEmbeddings: 128,
      betaFast: 32,
      betaSlow: 1,
      mscale: 1,
      mscaleAllDim: 0,
    });
    json.rope_scaling = null;
    assert.equal(parseDeepseekConfig(json).ropeScaling, null);
  });

  it('treats n_routed_experts null as dense and n_shared_experts null as 0', () => {
    const json = fixtureConfigJson(V2_LITE_TINY);
    json.n_routed_experts = null;
    json.n_shared_experts = null;
    json.num_experts_per_tok = null;
    const c = parseDeepseekConfig(json);
    assert.equal(c.nRoutedExperts, null);
    assert.equal(c.nSharedExperts, 0);
    assert.equal(isMoeLayer(c, 2), false);
  });

  it('reads eos_token_id lists and missing bos/eos', () => {
    const json = fixtureConfigJson(V2_LITE_TINY);
    json.eos_token_id = [501, 502];
    delete json.bos_token_id;
    const c = parseDeepseekConfig(json);
    assert.deepEqual(c.eosTokenIds, [501, 502]);
    assert.equal(c.bosTokenId, null);
  });
});

describe('parseDeepseekConfig: --hf-overrides', () => {
  it('cuts layers', () => {
    const c = loadDeepseekConfig(join(ASSET_CONFIGS, 'deepseek-v2-lite'), { num_hidden_layers: 4 });
    assert.equal(c.numHiddenLayers, 4);
    assert.equal(c.hiddenSize, 2048);
    const v3 = loadDeepseekConfig(join(ASSET_CONFIGS, 'deepseek-v3'), { num_hidden_layers: 5 });
    assert.equal(v3.numHiddenLayers, 5);
  });

  it('merges nested objects one level deep', () => {
    const c = parseDeepseekConfig(fixtureConfigJson(V2_LITE_TINY), { rope_scaling: { factor: 8 } });
    assert.equal(c.ropeScaling?.factor, 8);
    assert.equal(c.ropeScaling?.originalMaxPositionEmbeddings, 64);
    assert.equal(c.ropeScaling?.mscale, FIXTURE_MSCALE);
    assert.equal(
      parseDeepseekConfig(fixtureConfigJson(V2_LITE_TINY), { rope_scaling: null }).ropeScaling,
      null,
    );
  });

  it('validates the merged result', () => {
    expectConfigError(
      loadRawV3(),
      'first_k_dense_replace',
      [/is 3 but num_hidden_layers is 2/, /0\.\.num_hidden_layers/],
      { num_hidden_layers: 2 },
    );
    const ok = parseDeepseekConfig(loadRawV3(), { num_hidden_layers: 2, first_k_dense_replace: 2 });
    assert.equal(ok.numHiddenLayers, 2);
    expectConfigError(fixtureConfigJson(V2_LITE_TINY), 'num_hidden_layers', [/"4" \(a string\)/], {
      num_hidden_layers: '4',
    });
  });
});

function loadRawV3(): Record<string, unknown> {
  return fixtureConfigJson(join(ASSET_CONFIGS, 'deepseek-v3'));
}

describe('parseDeepseekConfig: errors name the field, what was found and what is allowed', () => {
  const base = () => fixtureConfigJson(V2_LITE_TINY);

  it('a missing field', () => {
    const json = base();
    delete json.hidden_size;
    expectConfigError(json, 'hidden_size', [/is missing/, /allowed: a positive integer/]);
    const noKv = base();
    delete noKv.kv_lora_rank;
    expectConfigError(noKv, 'kv_lora_rank', [/is missing/]);
  });

  it('a wrong type or value', () => {
    expectConfigError({ ...base(), hidden_size: '64' }, 'hidden_size', [
      /"64" \(a string\)/,
      /positive integer/,
    ]);
    expectConfigError({ ...base(), q_lora_rank: 0 }, 'q_lora_rank', [/is 0/, /positive integer, or null/]);
    expectConfigError({ ...base(), vocab_size: 1.5 }, 'vocab_size', [/is 1\.5/]);
    expectConfigError({ ...base(), norm_topk_prob: 'yes' }, 'norm_topk_prob', [/true or false/]);
    expectConfigError({ ...base(), topk_method: 'random' }, 'topk_method', [
      /"random"/,
      /"greedy", "group_limited_greedy", "noaux_tc"/,
    ]);
    expectConfigError({ ...base(), scoring_func: 'relu' }, 'scoring_func', [/"softmax", "sigmoid"/]);
    expectConfigError({ ...base(), eos_token_id: 'x' }, 'eos_token_id', [/list of token ids/]);
    expectConfigError(
      { ...base(), rope_scaling: { type: 'yarn', original_max_position_embeddings: 64 } },
      'rope_scaling.factor',
      [/is missing/],
    );
    expectConfigError([1, 2], null, [/an array/, /JSON object/]);
  });

  it('an unsupported architecture', () => {
    const llama = {
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      hidden_size: 4096,
      num_hidden_layers: 32,
      vocab_size: 32000,
    };
    expectConfigError(llama, 'architectures', [
      /LlamaForCausalLM is not supported; supported: DeepseekV2ForCausalLM, DeepseekV3ForCausalLM/,
    ]);
    expectConfigError({ ...base(), model_type: 'deepseek_v3' }, 'model_type', [
      /"deepseek_v3"/,
      /"deepseek_v2"/,
    ]);
  });

  it('an unsupported activation or rope scaling', () => {
    expectConfigError({ ...base(), hidden_act: 'gelu' }, 'hidden_act', [/"gelu"/, /supported: "silu"/]);
    expectConfigError({ ...base(), rope_scaling: { type: 'linear', factor: 2 } }, 'rope_scaling.type', [
      /"linear"/,
      /supported: "yarn"/,
    ]);
    expectConfigError({ ...base(), qk_rope_head_dim: 7 }, 'qk_rope_head_dim', [/is 7/, /even/]);
  });

  it('contradicting fields', () => {
    expectConfigError({ ...base(), num_experts_per_tok: 9 }, 'num_experts_per_tok', [
      /is 9 but n_routed_experts is 8/,
    ]);
    const v2 = fixtureConfigJson(V2_TINY);
    expectConfigError({ ...v2, topk_group: 5 }, 'topk_group', [/is 5 but n_group is 4/]);
    expectConfigError({ ...v2, n_group: 3, topk_group: 2 }, 'n_group', [
      /n_routed_experts \(16\) is not divisible/,
    ]);
    expectConfigError({ ...v2, topk_group: 1, num_experts_per_tok: 5 }, 'num_experts_per_tok', [
      /only topk_group · n_routed_experts \/ n_group = 4/,
    ]);
    expectConfigError({ ...v2, topk_method: 'noaux_tc', n_group: 16, topk_group: 4 }, 'n_group', [
      /at least 2 experts per group/,
    ]);
    expectConfigError({ ...base(), first_k_dense_replace: 4 }, 'first_k_dense_replace', [
      /num_hidden_layers is 3/,
    ]);
    // Greedy routing ignores groups, so indivisible group counts are fine there.
    assert.equal(parseDeepseekConfig({ ...base(), n_group: 3 }).nGroup, 3);
  });
});

describe('loadDeepseekConfig: file errors name the path', () => {
  it('a missing config.json', () => {
    withTempDir((dir) => {
      assert.throws(
        () => loadDeepseekConfig(dir),
        (err: unknown) =>
          err instanceof ModelConfigError &&
          err.message.includes(join(dir, 'config.json')) &&
          /does not exist/.test(err.message),
      );
    });
  });

  it('invalid JSON and invalid fields', () => {
    withTempDir((dir) => {
      writeFileSync(join(dir, 'config.json'), '{"architectures": [');
      assert.throws(() => loadDeepseekConfig(dir), /config\.json: is not valid JSON/);
      writeJson(join(dir, 'config.json'), { ...fixtureConfigJson(V2_LITE_TINY), hidden_size: -1 });
      assert.throws(
        () => loadDeepseekConfig(dir),
        (err: unknown) =>
          err instanceof ModelConfigError &&
          err.source === join(dir, 'config.json') &&
          err.field === 'hidden_size',
      );
    });
  });
});
