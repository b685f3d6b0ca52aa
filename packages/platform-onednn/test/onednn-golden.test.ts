// The DeepSeek golden suite on the oneDNN platform: both tiny checkpoints (BF16 weights, so the bf16
// matmul in its default split mode), every golden prompt: argmax at every position, top-5 log-probs and
// last-position logits within the golden README's 1e-3 for float32 compute, identical expert choices, and
// the 16 greedy tokens of incremental decoding over a paged cache identical, with their step top-5
// log-probs within 1e-3. (DUET_ONEDNN_BF16_MATH=bf16 rounds activations to bf16 and is not held to it.)

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { loadAddon } from '../dist/addon.js';
import { createOnednnPlatform } from '../dist/index.js';
import {
  argmax,
  assertPrefillMatchesGolden,
  DeepseekForCausalLM,
  fixtureDir,
  type Kernels,
  loadDeepseekConfig,
  loadGolden,
  logSoftmax,
  MlaKvCache,
  openSafetensors,
} from './duet-test-deps.js';
import { skipReason } from './onednn-available.js';

/** The golden README's tolerance for float32 compute (the reference's own variants agree within 1.5e-5). */
const TOL = 1e-3;
const BLOCK = 16;
const NUM_BLOCKS = 24;

async function onednnKernels(): Promise<Kernels> {
  const load = loadAddon();
  if (!('addon' in load)) throw new Error(load.reason);
  return createOnednnPlatform(load.addon).createKernels({ numThreads: 2 });
}

for (const fixture of ['v2-lite-tiny', 'v2-tiny']) {
  describe(`${fixture} on the onednn platform`, { skip: skipReason() }, async () => {
    const dir = fixtureDir(fixture);
    const golden = loadGolden(fixture);
    const config = loadDeepseekConfig(dir);
    const kernels = await onednnKernels();
    const source = openSafetensors(dir);
    const model = new DeepseekForCausalLM(config, { kernels, source, weightDType: 'bf16' });
    source.close();
    after(() => kernels.dispose());
    const V = config.vocabSize;

    for (const p of golden.prompts) {
      test(`${p.name}: prefill, routing and greedy decode match the reference`, async () => {
        const L = p.ids.length;
        const cache = MlaKvCache.forModel(kernels, config, NUM_BLOCKS, BLOCK);
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
        assertPrefillMatchesGolden(logits, p, V, TOL);
        const last = logits.subarray((L - 1) * V);
        let maxDiff = 0;
        for (let i = 0; i < V; i++) maxDiff = Math.max(maxDiff, Math.abs(last[i]! - p.last_logits[i]!));
        assert.ok(maxDiff <= TOL, `last-position logits differ by up to ${maxDiff}`);
        for (const [key, r] of Object.entries(p.routing)) {
          const layer = Number(key.replace('layer_', ''));
          const K = r.experts[0]!.length;
          const got = routing.get(layer);
          assert.ok(got, `routing of layer ${layer} observed`);
          const experts = r.experts.map((_, t) => Array.from(got.subarray(t * K, (t + 1) * K)));
          assert.deepEqual(experts, r.experts, `experts of layer ${layer}`);
        }

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
          if (step + 1 < p.greedy.ids.length) {
            const lp = logSoftmax(lg);
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
