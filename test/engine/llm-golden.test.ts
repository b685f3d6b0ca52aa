// Batch invariance of the engine against the golden reference: all golden prompts submitted together
// through the offline LLM API give the reference's greedy tokens, generated-token and prompt top-5
// log-probs within the golden README's fp32 tolerance (1e-3), under chunked prefill across many small
// blocks, under preemption (a cache too small for every prompt at once) and with prefix-cache hits.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { LLM, type LLMOptions, type RequestOutput } from '../../src/engine/llm.js';
import { fixtureDir, type GoldenPrompt, loadGolden } from '../helpers/golden.js';
import { usablePlatforms } from '../helpers/platforms.js';

// Every usable platform (test/helpers/platforms.ts) runs the same assertions.
const devices = await usablePlatforms();

const TOL = 1e-3;

function checkAgainstGolden(
  outputs: RequestOutput[],
  prompts: GoldenPrompt[],
  withPromptLogprobs: boolean,
): void {
  assert.equal(outputs.length, prompts.length);
  outputs.forEach((out, i) => {
    const p = prompts[i]!;
    const o = out.outputs[0]!;
    assert.deepEqual(o.token_ids, p.greedy.ids, `${p.name}: greedy tokens`);
    o.logprobs!.forEach((lp, step) => {
      assert.deepEqual(
        lp.top_logprobs.map((t) => t.id),
        p.greedy.step_top5_ids[step],
        `${p.name}: top-5 ids at step ${step}`,
      );
      lp.top_logprobs.forEach((t, j) => {
        const d = Math.abs(t.logprob - p.greedy.step_top5_logprobs[step]![j]!);
        assert.ok(d <= TOL, `${p.name}: step ${step} top-5 log-prob differs by ${d}`);
      });
    });
    if (withPromptLogprobs) {
      const pl = out.prompt_logprobs!;
      assert.equal(pl.length, p.ids.length);
      assert.equal(pl[0], null);
      for (let t = 1; t < p.ids.length; t++) {
        // prompt_logprobs[t] is the distribution after positions 0..t-1: golden top-5 at position t-1.
        const got = pl[t]!;
        got.top_logprobs.forEach((x, j) => {
          const d = Math.abs(x.logprob - p.top5_logprobs[t - 1]![j]!);
          assert.ok(d <= TOL, `${p.name}: prompt log-prob at ${t} differs by ${d}`);
          // Rank j holds the golden id, or (a near tie) another id whose log-prob is the golden rank-j
          // log-prob within TOL: platforms that sum in another order may swap two such ids.
          const golden = p.top5_ids[t - 1]![j]!;
          const tie = p.top5_logprobs[t - 1]!.some(
            (g, k) => k !== j && Math.abs(g - p.top5_logprobs[t - 1]![j]!) <= 2 * TOL,
          );
          assert.ok(
            x.id === golden || tie || j === got.top_logprobs.length - 1,
            `${p.name}: prompt top-5 id at ${t}, rank ${j}: ${x.id}, golden ${golden}`,
          );
        });
      }
    }
  });
}

const greedy = { temperature: 0, maxTokens: 16, ignoreEos: true, logprobs: 5 };

for (const [fixture, device] of ['v2-lite-tiny', 'v2-tiny'].flatMap((f) =>
  devices.map((d) => [f, d] as const),
)) {
  describe(`engine batch invariance on ${fixture} (${device})`, () => {
    const golden = loadGolden(fixture);
    const prompts = golden.prompts;
    const inputs = prompts.map((p) => ({ prompt_token_ids: p.ids }));
    const llms: LLM[] = [];
    const make = (o: LLMOptions) => {
      const llm = new LLM({ model: fixtureDir(fixture), numThreads: 2, device, ...o });
      llms.push(llm);
      return llm;
    };
    after(async () => {
      for (const l of llms) await l.close();
    });

    test('chunked prefill over many 16-token blocks (token budget 16)', async () => {
      const llm = make({ blockSize: 16, maxNumBatchedTokens: 16, kvCacheMemory: 8 * 2 ** 20 });
      const outputs = await llm.generate(inputs, { ...greedy, promptLogprobs: 5 });
      checkAgainstGolden(outputs, prompts, true);
    });

    test('preemption: a cache too small for all prompts at once', async () => {
      // The longest prompt needs ceil((150 + 15) / 16) = 11 blocks; 14 blocks cannot hold them all.
      const llm = make({ blockSize: 16, numGpuBlocksOverride: 14, maxNumBatchedTokens: 64 });
      const outputs = await llm.generate(inputs, greedy);
      checkAgainstGolden(outputs, prompts, false);
      const stats = (await llm.engine()).stats();
      assert.ok(stats.numPreemptions > 0, `expected preemptions, got ${stats.numPreemptions}`);
    });

    test('prefix caching: a second pass over the same prompts hits the cache', async () => {
      const llm = make({ blockSize: 16, kvCacheMemory: 8 * 2 ** 20 });
      checkAgainstGolden(await llm.generate(inputs, greedy), prompts, false);
      const before = (await llm.engine()).stats().prefixCacheHits;
      checkAgainstGolden(await llm.generate(inputs, greedy), prompts, false);
      const hits = (await llm.engine()).stats().prefixCacheHits - before;
      // Full blocks of the 33-, 100- and 150-token prompts: 2 + 6 + 9 blocks of 16 tokens.
      assert.ok(hits >= 16 * 17, `expected at least ${16 * 17} prefix-cache hit tokens, got ${hits}`);
    });
  });
}
