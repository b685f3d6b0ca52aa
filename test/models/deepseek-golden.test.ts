// The DeepSeek forward pass against the official reference's outputs on the two tiny golden checkpoints:
// argmax at every position, top-5 log-probs within 1e-3, last-position logits within 1e-3, identical
// expert choices, and the 16 greedy tokens of incremental decoding (over a paged cache with a shuffled
// block table) identical with step top-5 log-probs within 1e-3. The 1e-3 tolerance is the golden
// README's for float32 compute (the reference's own variants agree within 1.5e-5).

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { MlaKvCache } from '../../src/layers/mla-kv-cache.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { openSafetensors } from '../../src/loader/safetensors.js';
import { DeepseekForCausalLM } from '../../src/models/deepseek.js';
import { argmax, fixtureDir, loadGolden, logSoftmax } from '../helpers/golden.js';
import { kernelSetsToTest } from '../helpers/platforms.js';

const TOL = 1e-3;
const BLOCK = 16;
const NUM_BLOCKS = 24;

// The reference kernels and every usable platform's (test/helpers/platforms.ts).
const kernelSets = await kernelSetsToTest(2);

for (const fixture of ['v2-lite-tiny', 'v2-tiny']) {
  for (const [kernelName, makeKernels] of kernelSets) {
    describe(`${fixture} on ${kernelName} kernels`, async () => {
      const dir = fixtureDir(fixture);
      const golden = loadGolden(fixture);
      const config = loadDeepseekConfig(dir);
      const kernels = await makeKernels();
      const source = openSafetensors(dir);
      const model = new DeepseekForCausalLM(config, { kernels, source, weightDType: 'bf16' });
      source.close();
      after(() => kernels.dispose());
      const V = config.vocabSize;

      for (const p of golden.prompts) {
        test(`${p.name}: prefill logits, routing and greedy decode match the reference`, async () => {
          const L = p.ids.length;
          const cache = MlaKvCache.forModel(kernels, config, NUM_BLOCKS, BLOCK);
          // A shuffled block table: positions land in scattered blocks.
          const blockTable = Int32Array.from({ length: NUM_BLOCKS }, (_, i) => (i * 7 + 3) % NUM_BLOCKS);
          const slot = (pos: number) => blockTable[Math.floor(pos / BLOCK)]! * BLOCK + (pos % BLOCK);
          const routing = new Map<number, Int32Array>();
          const logits = await model.forward(
            {
              numTokens: L,
              tokenIds: Int32Array.from(p.ids),
              positions: Int32Array.from({ length: L }, (_, i) => i),
              slotMapping: Int32Array.from({ length: L }, (_, i) => slot(i)),
              seqs: [{ queryStart: 0, queryLen: L, blockTable }],
              logitsIndices: Int32Array.from({ length: L }, (_, i) => i),
            },
            cache,
            { onRouting: (layer, experts) => routing.set(layer, experts.slice()) },
          );
          for (let t = 0; t < L; t++) {
            const row = logits.subarray(t * V, (t + 1) * V);
            assert.equal(argmax(row), p.argmax[t], `argmax at position ${t}`);
            const lp = logSoftmax(row);
            p.top5_ids[t]!.forEach((id, j) => {
              const d = Math.abs(lp[id]! - p.top5_logprobs[t]![j]!);
              assert.ok(d <= TOL, `top-5 log-prob of ${id} at position ${t} differs by ${d}`);
            });
          }
          const last = logits.subarray((L - 1) * V);
          let maxDiff = 0;
          for (let i = 0; i < V; i++) maxDiff = Math.max(maxDiff, Math.abs(last[i]! - p.last_logits[i]!));
          assert.ok(maxDiff <= TOL, `last-position logits differ by up to ${maxDiff}`);
          for (const [key, r] of Object.entries(p.routing)) {
            const layer = Number(key.replace('layer_', ''));
            const K = r.experts[0]!.length;
            const got = routing.get(layer);
            assert.ok(got, `routing of layer ${layer} observed`);
            assert.deepEqual(
              r.experts.map((_, t) => Array.from(got.subarray(t * K, (t + 1) * K))),
              r.experts,
              `experts of layer ${layer}`,
            );
          }

          // Greedy decoding, one token per step over the cache written by the prefill.
          let next = argmax(last);
          const generated: number[] = [];
          for (let step = 0; step < p.greedy.ids.length; step++) {
            generated.push(next);
            const pos = L + step;
            const lg = await model.forward(
              {
                numTokens: 1,
                tokenIds: Int32Array.of(next),
                positions: Int32Array.of(pos),
                slotMapping: Int32Array.of(slot(pos)),
                seqs: [{ queryStart: 0, queryLen: 1, blockTable }],
                logitsIndices: Int32Array.of(0),
              },
              cache,
            );
            const lp = logSoftmax(lg);
            if (step + 1 < p.greedy.ids.length) {
              p.greedy.step_top5_ids[step + 1]!.forEach((id, j) => {
                const d = Math.abs(lp[id]! - p.greedy.step_top5_logprobs[step + 1]![j]!);
                assert.ok(d <= TOL, `greedy step ${step + 1}: log-prob of ${id} differs by ${d}`);
              });
            }
            next = argmax(lg);
          }
          assert.deepEqual(generated, p.greedy.ids, 'greedy tokens');
        });
      }
    });
  }
}
