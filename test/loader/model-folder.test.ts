// Tests of model folders: resolving them (with clear errors), generation defaults, and opening weights in
// each load format, including the checks of a checkpoint against its config.

import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { LoadFormat } from '../../src/config/engine-config.js';
import type { DeepseekConfig } from '../../src/config/model-config.js';
import {
  CheckpointNotFoundError,
  UnexpectedTensorError,
  UnsupportedQuantizationError,
} from '../../src/loader/checkpoint-errors.js';
import { DummyWeightSource } from '../../src/loader/dummy-weights.js';
import { parseGenerationConfig } from '../../src/loader/generation-config.js';
import { loadDeepseekConfig, ModelConfigError, parseDeepseekConfig } from '../../src/loader/hf-config.js';
import {
  ModelFolderError,
  type OpenWeightsOptions,
  openWeights as openWeightsOf,
  resolveModelFolder,
} from '../../src/loader/model-folder.js';
import { SafetensorsWeightSource } from '../../src/loader/safetensors.js';
import { MissingTensorError, TensorShapeError } from '../../src/loader/weight-source.js';
import { deepseekCheckpointLayout, deepseekTensorSpecs } from '../../src/models/deepseek-weights.js';
import { fixtureConfigJson, V2_LITE_TINY, V2_TINY, withTempDir, writeJson } from './fixture-files.js';

/** `openWeights` with DeepSeek's checkpoint layout, as the model loader calls it. */
function openWeights(dir: string, config: DeepseekConfig, format: LoadFormat, opts?: OpenWeightsOptions) {
  return openWeightsOf(dir, config, deepseekCheckpointLayout(config), format, opts);
}

describe('resolveModelFolder', () => {
  it('resolves a fixture folder with its generation defaults', () => {
    const f = resolveModelFolder(V2_LITE_TINY);
    assert.equal(f.dir, V2_LITE_TINY);
    assert.equal(f.configPath, join(V2_LITE_TINY, 'config.json'));
    assert.deepEqual(f.generationDefaults, { doSample: false, bosTokenId: 500, eosTokenIds: [501] });
    assert.equal(f.hasSafetensors, true);
  });

  it('names the path of a missing folder, a file, and a folder without config.json', () => {
    withTempDir((dir) => {
      const missing = join(dir, 'nope');
      assert.throws(
        () => resolveModelFolder(missing),
        (e: unknown) =>
          e instanceof ModelFolderError && e.message.includes(missing) && /does not exist/.test(e.message),
      );
      writeFileSync(join(dir, 'file.txt'), 'x');
      assert.throws(() => resolveModelFolder(join(dir, 'file.txt')), /file\.txt" is not a folder/);
      assert.throws(
        () => resolveModelFolder(dir),
        (e: unknown) =>
          e instanceof ModelFolderError && e.path === dir && /has no config\.json/.test(e.message),
      );
      writeJson(join(dir, 'config.json'), fixtureConfigJson(V2_LITE_TINY));
      const f = resolveModelFolder(dir);
      assert.equal(f.generationDefaults, null);
      assert.equal(f.hasSafetensors, false);
    });
  });
});

describe('generation_config.json', () => {
  it('reads every sampling default, with null as absent', () => {
    const g = parseGenerationConfig({
      temperature: 0.6,
      top_p: 0.95,
      top_k: 20,
      min_p: 0.05,
      repetition_penalty: 1.1,
      max_new_tokens: 512,
      do_sample: true,
      bos_token_id: 0,
      eos_token_id: [1, 2],
      pad_token_id: null,
      transformers_version: '4.46.3',
      top_a: null,
    });
    assert.deepEqual(g, {
      temperature: 0.6,
      topP: 0.95,
      topK: 20,
      minP: 0.05,
      repetitionPenalty: 1.1,
      maxNewTokens: 512,
      doSample: true,
      bosTokenId: 0,
      eosTokenIds: [1, 2],
    });
    assert.deepEqual(parseGenerationConfig({ temperature: null }), {});
  });

  it('names the file and field of a bad value', () => {
    withTempDir((dir) => {
      writeJson(join(dir, 'config.json'), fixtureConfigJson(V2_LITE_TINY));
      const path = join(dir, 'generation_config.json');
      writeJson(path, { top_p: 1.5 });
      assert.throws(
        () => resolveModelFolder(dir),
        (e: unknown) =>
          e instanceof ModelConfigError &&
          e.field === 'top_p' &&
          e.message.includes(path) &&
          e.message.includes('1.5') &&
          e.message.includes('(0, 1]'),
      );
      writeFileSync(path, '{');
      assert.throws(() => resolveModelFolder(dir), /generation_config\.json: is not valid JSON/);
    });
  });
});

describe('openWeights', () => {
  it('auto and safetensors open the checkpoint and check it against the config', () => {
    const config = loadDeepseekConfig(V2_TINY);
    for (const format of ['auto', 'safetensors'] as const) {
      const src = openWeights(V2_TINY, config, format);
      try {
        assert.ok(src instanceof SafetensorsWeightSource);
        assert.deepEqual(
          [...src.names()].sort(),
          deepseekTensorSpecs(config)
            .map((s) => s.name)
            .sort(),
        );
      } finally {
        src.close();
      }
    }
  });

  it('dummy generates the config tensors without a checkpoint', () => {
    withTempDir((dir) => {
      const config = loadDeepseekConfig(V2_TINY);
      const src = openWeights(dir, config, 'dummy', { seed: 5, dummyDType: 'f32' });
      assert.ok(src instanceof DummyWeightSource);
      assert.equal(src.read('model.norm.weight').dtype, 'f32');
      assert.deepEqual(
        src.read('model.norm.weight').data,
        new DummyWeightSource(deepseekTensorSpecs(config), { seed: 5, dtype: 'f32' }).read(
          'model.norm.weight',
        ).data,
      );
      assert.equal(openWeights(dir, config, 'dummy').info('model.norm.weight').dtype, 'BF16');
    });
  });

  it('without a checkpoint, suggests --load-format dummy', () => {
    withTempDir((dir) => {
      const config = loadDeepseekConfig(V2_TINY);
      for (const format of ['auto', 'safetensors'] as const) {
        assert.throws(
          () => openWeights(dir, config, format),
          (e: unknown) =>
            e instanceof CheckpointNotFoundError &&
            e.message.includes(dir) &&
            e.message.includes('--load-format dummy'),
        );
      }
      assert.throws(() => openWeights(dir, config, 'pt' as 'auto'), /"pt" is not supported; supported: auto/);
    });
  });

  it('skips layers cut away by --hf-overrides', () => {
    const config = loadDeepseekConfig(V2_TINY, { num_hidden_layers: 3 });
    const src = openWeights(V2_TINY, config, 'auto');
    try {
      assert.equal(src.has('model.layers.3.input_layernorm.weight'), false);
      assert.equal(src.names().length, deepseekTensorSpecs(config).length);
      assert.equal(src.read('model.layers.2.mlp.gate.weight', [16, 64]).data.length, 16 * 64);
    } finally {
      src.close();
    }
  });

  it('refuses a quantized (FP8) config for safetensors, naming the method', () => {
    const config = parseDeepseekConfig({
      ...fixtureConfigJson(V2_LITE_TINY),
      quantization_config: { quant_method: 'fp8', fmt: 'e4m3', weight_block_size: [128, 128] },
    });
    assert.throws(
      () => openWeights(V2_LITE_TINY, config, 'auto'),
      (e: unknown) =>
        e instanceof UnsupportedQuantizationError && /"fp8"/.test(e.message) && /dummy/.test(e.message),
    );
    assert.equal(openWeights(V2_LITE_TINY, config, 'dummy').has('model.norm.weight'), true);
  });

  it('names what disagrees between config and checkpoint', () => {
    withTempDir((dir) => {
      copyFileSync(join(V2_LITE_TINY, 'model.safetensors'), join(dir, 'model.safetensors'));
      const json = fixtureConfigJson(V2_LITE_TINY);
      assert.throws(
        () => openWeights(dir, parseDeepseekConfig({ ...json, q_lora_rank: 32 }), 'auto'),
        (e: unknown) =>
          e instanceof MissingTensorError && e.tensorName === 'model.layers.0.self_attn.q_a_proj.weight',
      );
      assert.throws(
        () => openWeights(dir, parseDeepseekConfig({ ...json, v_head_dim: 8 }), 'auto'),
        (e: unknown) =>
          e instanceof TensorShapeError && e.tensorName === 'model.layers.0.self_attn.kv_b_proj.weight',
      );
      assert.throws(
        () => openWeights(dir, parseDeepseekConfig({ ...json, n_shared_experts: 0 }), 'auto'),
        (e: unknown) =>
          e instanceof UnexpectedTensorError &&
          e.message.includes('model.layers.1.mlp.shared_experts') &&
          e.message.includes('6 tensor(s)'),
      );
    });
  });
});
