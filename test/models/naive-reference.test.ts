// Configurations beyond the golden checkpoints. The naive float64 implementation in
// test/helpers/naive-deepseek.ts is first checked against the official reference's golden outputs; then
// Duet's model (reference and wasm kernels) must agree with it on DeepSeek-V3-style configs with dummy
// weights: sigmoid scoring with noaux_tc and group limits, q compression, v_head_dim != qk_nope_head_dim,
// and softmax group-limited routing without q compression. Tolerance: 1e-3 on logits (the golden fp32
// tolerance; float32 vs float64 differences here are ~1e-5), identical expert choices.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { DeepseekConfig } from '../../src/config/model-config.js';
import type { Kernels } from '../../src/kernels/kernels.js';
import { MlaKvCache } from '../../src/layers/mla-kv-cache.js';
import { DummyWeightSource } from '../../src/loader/dummy-weights.js';
import { loadDeepseekConfig, parseDeepseekConfig } from '../../src/loader/hf-config.js';
import { openSafetensors } from '../../src/loader/safetensors.js';
import { DeepseekForCausalLM } from '../../src/models/deepseek.js';
import { deepseekTensorSpecs } from '../../src/models/deepseek-weights.js';
import { argmax, fixtureDir, loadGolden } from '../helpers/golden.js';
import { naiveForward } from '../helpers/naive-deepseek.js';
import { kernelSetsToTest } from '../helpers/platforms.js';

const TOL = 1e-3;

async function duetPrefill(
  config: DeepseekConfig,
  kernels: Kernels,
  model: DeepseekForCausalLM,
  ids: number[],
  chunk: number,
): Promise<{ logits: Float32Array; routing: Map<number, number[][]> }> {
  const T = ids.length;
  const bs = 4;
  const numBlocks = Math.ceil(T / bs) + 1;
  const cache = MlaKvCache.forModel(kernels, config, numBlocks, bs);
  const blockTable = Int32Array.from({ length: numBlocks }, (_, i) => numBlocks - 1 - i);
  const V = config.vocabSize;
  const logits = new Float32Array(T * V);
  const routing = new Map<number, number[][]>();
  for (let start = 0; start < T; start += chunk) {
    const n = Math.min(chunk, T - start);
    const positions = Int32Array.from({ length: n }, (_, i) => start + i);
    const out = await model.forward(
      {
        numTokens: n,
        tokenIds: Int32Array.from(ids.slice(start, start + n)),
        positions,
        slotMapping: positions.map((p) => blockTable[Math.floor(p / bs)]! * bs + (p % bs)),
        seqs: [{ queryStart: 0, queryLen: n, blockTable }],
        logitsIndices: Int32Array.from({ length: n }, (_, i) => i),
      },
      cache,
      {
        onRouting: (layer, experts, _w, k) => {
          const rows = routing.get(layer) ?? [];
          for (let t = 0; t < n; t++) rows.push(Array.from(experts.subarray(t * k, (t + 1) * k)));
          routing.set(layer, rows);
        },
      },
    );
    logits.set(out, start * V);
  }
  return { logits, routing };
}

describe('the naive float64 implementation matches the official reference', () => {
  for (const fixture of ['v2-lite-tiny', 'v2-tiny']) {
    test(fixture, () => {
      const dir = fixtureDir(fixture);
      const config = loadDeepseekConfig(dir);
      const src = openSafetensors(dir);
      const p = loadGolden(fixture).prompts.find((x) => x.name === 'p33_text')!;
      const out = naiveForward(config, src, p.ids);
      src.close();
      out.logits.forEach((row, t) => assert.equal(argmax(row), p.argmax[t], `argmax at ${t}`));
      const last = out.logits[p.ids.length - 1]!;
      last.forEach((v, i) => assert.ok(Math.abs(v - p.last_logits[i]!) <= TOL, `logit ${i}`));
      for (const [key, r] of Object.entries(p.routing)) {
        assert.deepEqual(out.routing.get(Number(key.replace('layer_', ''))), r.experts, key);
      }
    });
  }
});

const v3Json = JSON.parse(
  readFileSync(
    join(fixtureDir('v2-tiny'), '..', '..', '..', 'assets', 'configs', 'deepseek-v3', 'config.json'),
    'utf8',
  ),
);
const tiny = {
  vocab_size: 512,
  hidden_size: 64,
  intermediate_size: 128,
  moe_intermediate_size: 32,
  num_hidden_layers: 3,
  first_k_dense_replace: 1,
  num_attention_heads: 4,
  kv_lora_rank: 32,
  qk_nope_head_dim: 16,
  qk_rope_head_dim: 8,
  v_head_dim: 24,
  n_routed_experts: 16,
  num_experts_per_tok: 4,
  n_group: 4,
  topk_group: 2,
  max_position_embeddings: 256,
  rope_scaling: { original_max_position_embeddings: 64, factor: 4 },
};
const variants: [string, Record<string, unknown>][] = [
  ['V3 style: sigmoid, noaux_tc, q compression, v_head_dim 24 != qk_nope 16', { ...tiny, q_lora_rank: 32 }],
  [
    'V2 style: softmax group-limited, direct q, v_head_dim 24 != qk_nope 16',
    {
      ...tiny,
      q_lora_rank: null,
      scoring_func: 'softmax',
      topk_method: 'group_limited_greedy',
      norm_topk_prob: false,
      routed_scaling_factor: 1.5,
    },
  ],
];
// The reference kernels and every usable platform's (test/helpers/platforms.ts).
const kernelSets = await kernelSetsToTest(2);

for (const [name, overrides] of variants) {
  for (const [kname, make] of kernelSets) {
    describe(`${name} (${kname} kernels) agrees with the naive implementation`, async () => {
      const config = parseDeepseekConfig(v3Json, overrides);
      const kernels = await make();
      after(() => kernels.dispose());
      const src = new DummyWeightSource(deepseekTensorSpecs(config), { seed: 7, dtype: 'bf16' });
      const model = new DeepseekForCausalLM(config, { kernels, source: src, weightDType: 'bf16' });
      const ids = Array.from({ length: 21 }, (_, i) => (i * 37 + 11) % config.vocabSize);
      const naive = naiveForward(config, src, ids);
      const V = config.vocabSize;
      for (const chunk of [21, 5]) {
        test(`prefill in chunks of ${chunk}: logits within ${TOL}, same experts`, async () => {
          const duet = await duetPrefill(config, kernels, model, ids, chunk);
          let maxDiff = 0;
          naive.logits.forEach((row, t) => {
            row.forEach((v, i) => {
              maxDiff = Math.max(maxDiff, Math.abs(v - duet.logits[t * V + i]!));
            });
          });
          assert.ok(maxDiff <= TOL, `max |Δlogit| ${maxDiff}`);
          for (const [layer, rows] of naive.routing)
            assert.deepEqual(duet.routing.get(layer), rows, `layer ${layer}`);
        });
      }
    });
  }
}
