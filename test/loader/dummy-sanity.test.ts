// Checks that dummy weights keep a DeepSeek model numerically sane through many layers: a plain,
// single-token forward pass (at one position, attention reduces to the token's own value vector) over
// dummy weights of V2-Lite- and V3-shaped configs must keep the residual stream at a moderate scale and
// give finite, unsaturated logits. This exercises the scales of `dummyInit`, not any model code.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DeepseekConfig } from '../../src/config/model-config.js';
import { isMoeLayer } from '../../src/config/model-config.js';
import { DummyWeightSource } from '../../src/loader/dummy-weights.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { deepseekTensorSpecs } from '../../src/models/deepseek-weights.js';
import { ASSET_CONFIGS } from './fixture-files.js';

/** y[n] = w[n, k] · x[k]. */
function matvec(w: Float32Array, x: Float32Array, n: number, k: number): Float32Array {
  const y = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let acc = 0;
    for (let j = 0; j < k; j++) acc += w[i * k + j]! * x[j]!;
    y[i] = acc;
  }
  return y;
}

function rmsNorm(x: Float32Array, w: Float32Array, eps: number): Float32Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]!);
}

function rms(x: Float32Array): number {
  let ss = 0;
  for (const v of x) ss += v * v;
  return Math.sqrt(ss / x.length);
}

/** Single-token forward; returns the residual RMS after each layer and the logits. */
function forward(
  c: DeepseekConfig,
  src: DummyWeightSource,
  token: number,
): { layerRms: number[]; logits: Float32Array } {
  const W = (name: string) => src.read(name).data as Float32Array;
  const H = c.hiddenSize;
  const heads = c.numAttentionHeads;
  let x = W('model.embed_tokens.weight').slice(token * H, (token + 1) * H);
  const mlp = (p: string, h: Float32Array, inter: number): Float32Array => {
    const g = matvec(W(`${p}gate_proj.weight`), h, inter, H);
    const u = matvec(W(`${p}up_proj.weight`), h, inter, H);
    const a = g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]!);
    return matvec(W(`${p}down_proj.weight`), a, H, inter);
  };
  const layerRms: number[] = [];
  for (let l = 0; l < c.numHiddenLayers; l++) {
    const p = `model.layers.${l}.`;
    // Attention at a single position: softmax over one key is 1, so the output is o_proj(v).
    let h = rmsNorm(x, W(`${p}input_layernorm.weight`), c.rmsNormEps);
    const kvA = matvec(W(`${p}self_attn.kv_a_proj_with_mqa.weight`), h, c.kvLoraRank + c.qkRopeHeadDim, H);
    const latent = rmsNorm(
      kvA.slice(0, c.kvLoraRank),
      W(`${p}self_attn.kv_a_layernorm.weight`),
      c.rmsNormEps,
    );
    const perHead = c.qkNopeHeadDim + c.vHeadDim;
    const kv = matvec(W(`${p}self_attn.kv_b_proj.weight`), latent, heads * perHead, c.kvLoraRank);
    const v = new Float32Array(heads * c.vHeadDim);
    for (let hd = 0; hd < heads; hd++) {
      v.set(kv.subarray(hd * perHead + c.qkNopeHeadDim, (hd + 1) * perHead), hd * c.vHeadDim);
    }
    const attn = matvec(W(`${p}self_attn.o_proj.weight`), v, H, heads * c.vHeadDim);
    x = x.map((xv, i) => xv + attn[i]!);
    h = rmsNorm(x, W(`${p}post_attention_layernorm.weight`), c.rmsNormEps);
    let ffn: Float32Array;
    if (!isMoeLayer(c, l) || c.nRoutedExperts === null) {
      ffn = mlp(`${p}mlp.`, h, c.intermediateSize);
    } else {
      // Routing as DeepSeek's reference does it (bias only for choosing; sigmoid weights renormalised).
      const E = c.nRoutedExperts;
      const logits = matvec(W(`${p}mlp.gate.weight`), h, E, H);
      let scores: number[];
      if (c.scoringFunc === 'softmax') {
        const m = Math.max(...logits);
        const e = [...logits].map((z) => Math.exp(z - m));
        const s = e.reduce((a, b) => a + b, 0);
        scores = e.map((z) => z / s);
      } else {
        scores = [...logits].map((z) => 1 / (1 + Math.exp(-z)));
      }
      const bias = c.topkMethod === 'noaux_tc' ? W(`${p}mlp.gate.e_score_correction_bias`) : null;
      const choice = scores.map((s, e) => s + (bias?.[e] ?? 0));
      const chosen = choice
        .map((s, e) => [s, e] as const)
        .sort((a, b) => b[0] - a[0])
        .slice(0, c.numExpertsPerTok)
        .map(([, e]) => e);
      let weights = chosen.map((e) => scores[e]!);
      if (c.scoringFunc === 'sigmoid') {
        const s = weights.reduce((a, b) => a + b, 0);
        weights = weights.map((w) => w / s);
      }
      ffn = new Float32Array(H);
      chosen.forEach((e, j) => {
        const y = mlp(`${p}mlp.experts.${e}.`, h, c.moeIntermediateSize);
        for (let i = 0; i < H; i++) ffn[i]! += weights[j]! * c.routedScalingFactor * y[i]!;
      });
      if (c.nSharedExperts > 0) {
        const y = mlp(`${p}mlp.shared_experts.`, h, c.moeIntermediateSize * c.nSharedExperts);
        for (let i = 0; i < H; i++) ffn[i]! += y[i]!;
      }
    }
    x = x.map((xv, i) => xv + ffn[i]!);
    layerRms.push(rms(x));
  }
  const final = rmsNorm(x, W('model.norm.weight'), c.rmsNormEps);
  return { layerRms, logits: matvec(W('lm_head.weight'), final, c.vocabSize, H) };
}

/** Real configs, narrowed (smaller widths keep the plain loops fast) but 16 layers deep. */
const SHRINK = {
  num_hidden_layers: 16,
  hidden_size: 256,
  intermediate_size: 512,
  moe_intermediate_size: 128,
  vocab_size: 2000,
  kv_lora_rank: 64,
  num_attention_heads: 4,
  n_routed_experts: 16,
  num_experts_per_tok: 4,
};

describe('dummy weights keep the model numerically sane', () => {
  const cases = [
    ['V2-Lite', loadDeepseekConfig(join(ASSET_CONFIGS, 'deepseek-v2-lite'), SHRINK)],
    [
      'V3',
      loadDeepseekConfig(join(ASSET_CONFIGS, 'deepseek-v3'), {
        ...SHRINK,
        q_lora_rank: 96,
        n_group: 4,
        topk_group: 2,
      }),
    ],
  ] as const;
  for (const [label, config] of cases) {
    it(`${label}-shaped, 16 layers: moderate residual stream, finite unsaturated logits`, () => {
      const src = new DummyWeightSource(deepseekTensorSpecs(config), { seed: 11, dtype: 'f32' });
      for (const token of [0, 1234]) {
        const { layerRms, logits } = forward(config, src, token);
        console.log(label, token, layerRms.map((v) => v.toFixed(2)).join(' '), rms(logits));
        // The embedding starts at RMS ~1; each sublayer adds O(1), so after 16 layers the stream should
        // be well inside [0.5, 20] (exploding or vanishing weights would leave this range by far).
        for (const r of layerRms)
          assert.ok(r > 0.5 && r < 20, `${label} layer RMS ${layerRms.map((v) => v.toFixed(2))}`);
        assert.ok(logits.every(Number.isFinite));
        // Logits near N(0, 1): std within [0.3, 3], and softmax far from one-hot.
        const sd = rms(logits);
        assert.ok(sd > 0.3 && sd < 3, `${label} logit RMS ${sd}`);
        const m = Math.max(...logits);
        const z = logits.reduce((a, v) => a + Math.exp(v - m), 0);
        assert.ok(1 / z < 0.5, `${label} top probability ${1 / z}`);
      }
    });
  }
});
