// Tests of seeded dummy weights: exactly the spec'd tensors, deterministic per seed and name, the same
// values in bf16 and f32, and the intended scales. Real V2-Lite and V3 configs are checked on a few small
// tensors only (their big tensors would take seconds and gigabytes).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { bf16ToF32 } from '../../src/kernels/kernels.js';
import { DummyWeightSource } from '../../src/loader/dummy-weights.js';
import { loadDeepseekConfig, parseDeepseekConfig } from '../../src/loader/hf-config.js';
import { MissingTensorError, TensorShapeError } from '../../src/loader/weight-source.js';
import { deepseekTensorSpecs } from '../../src/models/deepseek-weights.js';
import { ASSET_CONFIGS, fixtureConfigJson, V2_TINY } from './fixture-files.js';

const V2_LITE = join(ASSET_CONFIGS, 'deepseek-v2-lite');
const V3 = join(ASSET_CONFIGS, 'deepseek-v3');

function asF32(w: ReturnType<DummyWeightSource['read']>): Float32Array {
  if (w.dtype === 'f32') return w.data;
  const out = new Float32Array(w.data.length);
  bf16ToF32(out, w.data);
  return out;
}

function stats(x: Float32Array): { mean: number; std: number; min: number; max: number } {
  let s = 0;
  let ss = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of x) {
    s += v;
    ss += v * v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const mean = s / x.length;
  return { mean, std: Math.sqrt(ss / x.length - mean * mean), min, max };
}

describe('DummyWeightSource', () => {
  const lite4 = loadDeepseekConfig(V2_LITE, { num_hidden_layers: 4 });
  // A 2048-wide router (131,072 elements: two generation chunks), an expert, a norm.
  const small = [
    'model.layers.1.mlp.gate.weight',
    'model.layers.2.mlp.experts.5.down_proj.weight',
    'model.layers.0.self_attn.kv_a_layernorm.weight',
  ];

  it('holds exactly the tensors of deepseekTensorSpecs, with their shapes', () => {
    const src = new DummyWeightSource(deepseekTensorSpecs(lite4), { seed: 1, dtype: 'bf16' });
    const specs = deepseekTensorSpecs(lite4);
    assert.deepEqual(
      src.names(),
      specs.map((s) => s.name),
    );
    for (const s of specs)
      assert.deepEqual(src.info(s.name), { name: s.name, dtype: 'BF16', shape: s.shape });
    assert.equal(
      new DummyWeightSource(deepseekTensorSpecs(lite4), { seed: 1, dtype: 'f32' }).info('model.norm.weight')
        .dtype,
      'F32',
    );
    for (const name of small) {
      const w = src.read(name, src.info(name).shape);
      assert.equal(w.dtype, 'bf16');
      assert.equal(
        w.data.length,
        src.info(name).shape.reduce((a, b) => a * b, 1),
      );
    }
  });

  it('is deterministic for a seed and differs across seeds and tensor names', () => {
    const a = new DummyWeightSource(deepseekTensorSpecs(lite4), { seed: 42, dtype: 'bf16' });
    const b = new DummyWeightSource(deepseekTensorSpecs(lite4), { seed: 42, dtype: 'bf16' });
    const c = new DummyWeightSource(deepseekTensorSpecs(lite4), { seed: 43, dtype: 'bf16' });
    for (const name of small) {
      const wa = a.read(name).data;
      assert.deepEqual(b.read(name).data, wa, name);
      assert.deepEqual(a.read(name).data, wa, 'rereading gives the same values');
      const wc = c.read(name).data;
      let same = 0;
      for (let i = 0; i < wa.length; i++) if (wa[i] === wc[i]) same++;
      // Norm weights take ~17 distinct bf16 values near 1, so chance agreement is high there; elsewhere rare.
      assert.ok(
        same < wa.length * (name.includes('norm') ? 0.3 : 0.05),
        `${name}: ${same}/${wa.length} equal`,
      );
    }
    const e0 = a.read('model.layers.2.mlp.experts.0.up_proj.weight').data;
    const e1 = a.read('model.layers.2.mlp.experts.1.up_proj.weight').data;
    assert.notDeepEqual(e0, e1);
    // Big seeds use their high bits too.
    const hi1 = new DummyWeightSource(deepseekTensorSpecs(lite4), { seed: 2 ** 40, dtype: 'bf16' }).read(
      small[0]!,
    ).data;
    const hi2 = new DummyWeightSource(deepseekTensorSpecs(lite4), { seed: 2 ** 41, dtype: 'bf16' }).read(
      small[0]!,
    ).data;
    assert.notDeepEqual(hi1, hi2);
  });

  it('gives the same values in f32 as in bf16, including odd lengths across chunks', () => {
    // hidden 63 and vocab 2081: odd-length norms, and an embedding of 131,103 elements (three chunks).
    const odd = parseDeepseekConfig({ ...fixtureConfigJson(V2_TINY), hidden_size: 63, vocab_size: 2081 });
    const b = new DummyWeightSource(deepseekTensorSpecs(odd), { seed: 7, dtype: 'bf16' });
    const f = new DummyWeightSource(deepseekTensorSpecs(odd), { seed: 7, dtype: 'f32' });
    for (const name of [
      'model.embed_tokens.weight',
      'model.norm.weight',
      'model.layers.2.mlp.experts.3.gate_proj.weight',
    ]) {
      const wb = b.read(name);
      const wf = f.read(name);
      assert.equal(wf.dtype, 'f32');
      assert.deepEqual(asF32(wb), wf.data, name);
    }
  });

  it('scales tensors as documented', () => {
    const src = new DummyWeightSource(deepseekTensorSpecs(lite4), { seed: 3, dtype: 'bf16' });
    // A linear weight [2048, 1408]: uniform with std 1/sqrt(1408). With 2.9M samples the sample std is
    // within 0.1% of the true one; bf16 rounding adds < 0.4% relative error: 2% is generous but honest.
    const down = stats(asF32(src.read('model.layers.2.mlp.experts.5.down_proj.weight')));
    const target = 1 / Math.sqrt(1408);
    assert.ok(Math.abs(down.std / target - 1) < 0.02, `std ${down.std} vs ${target}`);
    assert.ok(Math.abs(down.mean) < target * 0.01, `mean ${down.mean}`);
    assert.ok(down.max <= Math.sqrt(3) * target * 1.004 && down.min >= -Math.sqrt(3) * target * 1.004);
    // Norm weights: 1 ± 1/16 (bf16 steps near 1 are 2^-7 and 2^-8).
    const norm = stats(asF32(src.read('model.layers.0.input_layernorm.weight')));
    assert.ok(
      norm.min >= 1 - 1 / 16 - 2 ** -8 && norm.max <= 1 + 1 / 16 + 2 ** -7,
      `${norm.min}..${norm.max}`,
    );
    assert.ok(Math.abs(norm.mean - 1) < 0.01, `mean ${norm.mean}`);
    // Embeddings: std 1 (32,768 samples of the tiny config: the sample std is within ~0.5%).
    const tiny = loadDeepseekConfig(V2_TINY);
    const emb = stats(
      asF32(
        new DummyWeightSource(deepseekTensorSpecs(tiny), { seed: 3, dtype: 'bf16' }).read(
          'model.embed_tokens.weight',
        ),
      ),
    );
    assert.ok(Math.abs(emb.std - 1) < 0.03, `embedding std ${emb.std}`);
  });

  it('covers DeepSeek-V3: its spec list, a gate bias and a small tensor', () => {
    const v3 = loadDeepseekConfig(V3);
    const src = new DummyWeightSource(deepseekTensorSpecs(v3), { seed: 0, dtype: 'bf16' });
    assert.equal(src.names().length, deepseekTensorSpecs(v3).length);
    // Per layer: 2 norms and 7 MLA tensors; then a dense MLP (3) or gate, bias, 256 experts · 3, shared (3).
    assert.equal(src.names().length, 1 + 3 * (9 + 3) + 58 * (9 + 2 + 256 * 3 + 3) + 2);
    const bias = stats(asF32(src.read('model.layers.10.mlp.gate.e_score_correction_bias', [256])));
    assert.ok(
      bias.max <= 1 / 32 + 1e-3 && bias.min >= -1 / 32 - 1e-3 && bias.std > 0.01,
      JSON.stringify(bias),
    );
    const kvNorm = src.read('model.layers.60.self_attn.kv_a_layernorm.weight', [512]);
    assert.equal(kvNorm.data.length, 512);
    const qa = stats(asF32(src.read('model.layers.0.self_attn.q_a_proj.weight', [1536, 7168])));
    assert.ok(Math.abs(qa.std * Math.sqrt(7168) - 1) < 0.02, `q_a_proj std ${qa.std}`);
  });

  it('names missing tensors and wrong shapes, and refuses bad options', () => {
    const src = new DummyWeightSource(deepseekTensorSpecs(lite4), { seed: 1, dtype: 'bf16' });
    assert.throws(() => src.read('model.layers.4.input_layernorm.weight'), MissingTensorError);
    assert.throws(() => src.read('model.layers.0.self_attn.q_a_proj.weight'), MissingTensorError);
    assert.throws(() => src.read('model.norm.weight', [2047]), TensorShapeError);
    assert.throws(
      () => new DummyWeightSource(deepseekTensorSpecs(lite4), { seed: 0.5, dtype: 'bf16' }),
      /seed 0\.5.*safe integer/,
    );
    assert.throws(
      () => new DummyWeightSource(deepseekTensorSpecs(lite4), { seed: 1, dtype: 'fp8' as 'bf16' }),
      /dtype "fp8".*bf16, f32/,
    );
  });
});
