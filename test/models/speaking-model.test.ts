// The embedded default model (assets/default-model, trained by tools/speaking-model) against the PyTorch
// model that trained it: the reference in test/fixtures/speaking-model/reference.json was computed by
// tools/speaking-model/export.py in float32 from the stored BF16 weights, which is what Duet computes.
// Checked: argmax at every position, top-5 log-probs and last-position logits within 1e-3 (the golden
// README's float32 tolerance: both sides accumulate in float32 in different orders, which moves logits
// by ~1e-5), the tokenizer's ids for the reference texts, and the greedy completion of "And God said"
// through the offline API with no --model.

import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { LLM } from '../../src/engine/llm.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { openSafetensors } from '../../src/loader/safetensors.js';
import { DeepseekForCausalLM } from '../../src/models/deepseek.js';
import { embeddedModelDir } from '../../src/models/model-loader.js';
import { prefillPrompt } from '../../src/models/prefill-prompt.js';
import { loadTokenizer } from '../../src/tokenizer/tokenizer.js';
import { argmax, fixtureDir, logSoftmax } from '../helpers/golden.js';
import { kernelSetsToTest } from '../helpers/platforms.js';

const TOL = 1e-3;

interface ReferencePrompt {
  readonly name: string;
  /** What `ids` encode after BOS (null where the ids came from token files, not text). */
  readonly text: string | null;
  readonly ids: number[];
  readonly argmax: number[];
  readonly top1_top2_logit_gaps: number[];
  readonly top5_ids: number[][];
  readonly top5_logprobs: number[][];
  readonly last_logits: number[];
}

interface Reference {
  readonly prompts: ReferencePrompt[];
  readonly greedy: { prompt_ids: number[]; ids: number[]; min_top1_top2_logit_gap: number };
}

const reference = JSON.parse(
  readFileSync(join(fixtureDir('speaking-model'), 'reference.json'), 'utf8'),
) as Reference;
const dir = embeddedModelDir();

// The reference kernels and every usable platform's (test/helpers/platforms.ts).
const kernelSets = await kernelSetsToTest(2);

describe('the embedded default model', () => {
  test('is a DeepSeek-V3-architecture checkpoint of at most 20 MB', () => {
    const config = loadDeepseekConfig(dir);
    assert.ok(config.qLoraRank !== null, 'q compression (q_lora_rank)');
    assert.equal(config.scoringFunc, 'sigmoid');
    assert.equal(config.topkMethod, 'noaux_tc');
    assert.ok((config.nRoutedExperts ?? 0) >= 8, 'at least 8 routed experts');
    assert.ok(config.nSharedExperts >= 1, 'a shared expert');
    assert.ok(config.firstKDenseReplace >= 1, 'a dense first layer');
    assert.ok(config.ropeScaling !== null, 'a YaRN rope config');
    assert.ok(statSync(join(dir, 'model.safetensors')).size <= 20 * 2 ** 20);
  });

  test('its tokenizer gives the ids the recipe trained on (BOS first)', () => {
    const tokenizer = loadTokenizer(dir);
    assert.equal(tokenizer.vocabSize, 4096);
    for (const p of reference.prompts) {
      if (p.text === null) continue;
      assert.deepEqual(tokenizer.encode(p.text), p.ids, p.name);
      assert.equal(tokenizer.decode(p.ids, { skipSpecialTokens: true }), p.text);
    }
    const chat = tokenizer.applyChatTemplate([{ role: 'user', content: 'Hello!' }], {
      addGenerationPrompt: true,
    });
    assert.equal(chat, '<|begin_of_text|>Question: Hello!\nAnswer:');
  });

  for (const [kernelName, makeKernels] of kernelSets) {
    describe(`on ${kernelName} kernels`, async () => {
      const config = loadDeepseekConfig(dir);
      const kernels = await makeKernels();
      const source = openSafetensors(dir);
      const model = new DeepseekForCausalLM(config, { kernels, source, weightDType: 'bf16' });
      source.close();
      after(() => kernels.dispose());
      const V = config.vocabSize;

      for (const p of reference.prompts) {
        test(`${p.name}: logits match the PyTorch model`, async () => {
          const L = p.ids.length;
          const logits = await prefillPrompt(config, kernels, model, p.ids);
          for (let t = 0; t < L; t++) {
            const row = logits.subarray(t * V, (t + 1) * V);
            // A top-2 gap within twice the tolerance is a tie at float32 noise: either of the two may win.
            if (p.top1_top2_logit_gaps[t]! > 2 * TOL)
              assert.equal(argmax(row), p.argmax[t], `argmax at ${t}`);
            else assert.ok(p.top5_ids[t]!.slice(0, 2).includes(argmax(row)), `argmax at ${t} (a near tie)`);
            const lp = logSoftmax(row);
            p.top5_ids[t]!.forEach((id, j) => {
              const d = Math.abs(lp[id]! - p.top5_logprobs[t]![j]!);
              assert.ok(d <= TOL, `top-5 log-prob ${j + 1} at ${t} off by ${d}`);
            });
          }
          const last = logits.subarray((L - 1) * V);
          let maxDiff = 0;
          for (let i = 0; i < V; i++) maxDiff = Math.max(maxDiff, Math.abs(last[i]! - p.last_logits[i]!));
          assert.ok(maxDiff <= TOL, `last-position logits differ by up to ${maxDiff}`);
        });
      }
    });
  }

  test('with no --model, completes "And God said" greedily as the PyTorch model does', async () => {
    // Duet's logits agree with the reference's within TOL (checked above), so a top-1/top-2 gap over
    // 2 * TOL fixes the argmax (the same rule as the per-position near ties above). The reference's
    // smallest gap over the 32 steps is above that, so the greedy tokens must be identical, not merely close.
    assert.ok(reference.greedy.min_top1_top2_logit_gap > 2 * TOL);
    const llm = new LLM({ numThreads: 2, kvCacheMemory: 8 * 2 ** 20 });
    try {
      const [out] = await llm.generate(['And God said'], { temperature: 0, maxTokens: 32, ignoreEos: true });
      assert.deepEqual(out!.prompt_token_ids, reference.greedy.prompt_ids);
      assert.deepEqual(out!.outputs[0]!.token_ids, reference.greedy.ids);
      // English words of the training text's kind: letters, spaces and punctuation, and "LORD" or "God".
      const text = out!.outputs[0]!.text;
      assert.match(text, /^[A-Za-z ,.;:'!?\n]+$/);
      assert.match(text, /\b(LORD|God|unto)\b/);
    } finally {
      await llm.close();
    }
  });
});
