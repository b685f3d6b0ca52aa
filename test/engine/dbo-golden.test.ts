// Dual-batch overlap keeps the golden results (issue 6, acceptance 1): with DBO on and -tp 2 (ranks as
// worker threads over shared memory), in both MoE modes with expert parallelism (allgather and alltoall),
// every golden prompt of both tiny checkpoints gives the golden greedy tokens, and the golden top-5
// log-probs within 1e-3 (the fixtures' fp32 tolerance: splitting changes only the order of float sums).
//
// The runs are shaped so that every kind of split happens, and the rank-0 trace proves it did:
// - a step budget of 64 tokens chunks the long prompts, and a prefill threshold of 1 splits each chunk,
//   often inside a prompt, so the second micro-batch continues a prefill whose first part the first
//   micro-batch wrote to the KV cache in the same step;
// - a decode threshold of 2 (at most the number of prompts) splits the decode steps, where all five
//   prompts decode together;
// - so every step of 2 or more tokens splits (thresholds 1 / 2: a 1-token step cannot).
// A second shape keeps the default prefill threshold (256: the one prefill step of all 291 prompt tokens
// splits) with a decode threshold of 5 = the number of prompts (the threshold is inclusive).

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { DBO_ORDERS } from '../../src/dbo/dbo-order.js';
import { LLM, type LLMOptions } from '../../src/engine/llm.js';
import { fixtureDir, type Golden, loadGolden } from '../helpers/golden.js';
import { usablePlatforms } from '../helpers/platforms.js';

// Every usable platform (test/helpers/platforms.ts) runs the same assertions.
const devices = await usablePlatforms();

/** The fixtures' fp32 tolerance on log-probs (test/fixtures/GOLDEN_README.md). */
const TOL = 1e-3;

interface StepSpan {
  readonly tokens: number;
  readonly split: boolean;
  readonly splitToken?: number;
  readonly reason?: string;
  readonly order?: string;
}

/** The step spans of a rank's trace, in order (src/dbo/tracer.ts writes them on the steps lane). */
function readSteps(path: string): StepSpan[] {
  const trace = JSON.parse(readFileSync(path, 'utf8')) as {
    traceEvents: { cat: string; ph: string; ts: number; args?: StepSpan }[];
  };
  return trace.traceEvents
    .filter((e) => e.cat === 'step' && e.ph === 'X')
    .sort((a, b) => a.ts - b.ts)
    .map((e) => e.args!);
}

function assertGolden(golden: Golden, outputs: Awaited<ReturnType<LLM['generate']>>): void {
  outputs.forEach((out, i) => {
    const p = golden.prompts[i]!;
    const o = out.outputs[0]!;
    assert.deepEqual(o.token_ids, p.greedy.ids, `${p.name}: greedy tokens`);
    o.logprobs!.forEach((lp, step) => {
      assert.deepEqual(
        lp.top_logprobs.map((t) => t.id),
        p.greedy.step_top5_ids[step],
        `${p.name} step ${step}: top-5 ids`,
      );
      lp.top_logprobs.forEach((t, j) => {
        const want = p.greedy.step_top5_logprobs[step]![j]!;
        assert.ok(
          Math.abs(t.logprob - want) <= TOL,
          `${p.name} step ${step} top ${j}: logprob ${t.logprob} vs golden ${want}`,
        );
      });
    });
  });
}

const MOE_MODES: [string, LLMOptions][] = [
  ['EP allgather', { enableExpertParallel: true, moeComm: 'allgather' }],
  ['EP alltoall', { enableExpertParallel: true, moeComm: 'alltoall' }],
];

for (const [fixture, device] of (['v2-tiny', 'v2-lite-tiny'] as const).flatMap((f) =>
  devices.map((d) => [f, d] as const),
)) {
  describe(`DBO with -tp 2 on ${fixture} (${device}): golden greedy tokens and log-probs`, () => {
    const golden = loadGolden(fixture);
    const inputs = golden.prompts.map((p) => ({ prompt_token_ids: p.ids }));
    const params = { temperature: 0, maxTokens: 16, ignoreEos: true, logprobs: 5 };
    const traceRoot = mkdtempSync(join(tmpdir(), 'duet-dbo-golden-'));
    after(() => rmSync(traceRoot, { recursive: true, force: true }));
    const base: LLMOptions = {
      model: fixtureDir(fixture),
      blockSize: 16,
      kvCacheMemory: 8 * 2 ** 20,
      numThreads: 2,
      device,
      tensorParallelSize: 2,
      enableDbo: true,
      // Every eligible step must split: the automatic off-switch would keep some steps whole.
      dboAutoOff: false,
    };

    for (const [mode, moe] of MOE_MODES) {
      for (const dboOrder of DBO_ORDERS) {
        test(`${mode}, order ${dboOrder}, thresholds 1 / 2 and 64-token steps: every step of 2+ tokens splits`, async () => {
          const traceDir = join(traceRoot, `${mode.replace(' ', '-')}-${dboOrder}-all`);
          const llm = new LLM({
            ...base,
            ...moe,
            dboOrder,
            maxNumBatchedTokens: 64,
            dboPrefillTokenThreshold: 1,
            dboDecodeTokenThreshold: 2,
            traceDir,
          });
          let stats: { steps: number; splitSteps: number; overlapMs: number };
          try {
            assertGolden(golden, await llm.generate(inputs, params));
            stats = { ...(await llm.engine()).dboStats };
          } finally {
            await llm.close();
          }
          const steps = readSteps(join(traceDir, 'rank-0.trace.json'));
          assert.equal(steps.length, stats.steps, 'one trace span per step');
          for (const [i, s] of steps.entries()) {
            assert.equal(s.split, s.tokens >= 2, `step ${i} of ${s.tokens} tokens: split ${s.split}`);
          }
          assert.equal(stats.splitSteps, steps.filter((s) => s.tokens >= 2).length);
          assert.ok(
            steps.some((s) => s.split && /inside a prefill/.test(s.reason ?? '')),
            'some step is split inside a prompt',
          );
          // Prefills take 3 steps at most (291 prompt tokens, 64 a step); then all five prompts decode
          // together: steps of exactly 5 tokens, each split at a request boundary.
          const decodes = steps.filter((s) => s.tokens === golden.prompts.length);
          assert.ok(decodes.length >= 10, `${decodes.length} steps of 5 decodes`);
          assert.ok(decodes.every((s) => s.split && /request boundary/.test(s.reason ?? '')));
          // Every split step ran the order asked for, on both ranks: the driver's plan travels with the
          // batch, and the other rank ran the same splits in the same order.
          assert.ok(steps.filter((s) => s.split).every((s) => s.order?.startsWith(`${dboOrder}: A `)));
          const plan = (s: StepSpan) => ({
            tokens: s.tokens,
            split: s.split,
            at: s.splitToken,
            order: s.order,
          });
          assert.deepEqual(readSteps(join(traceDir, 'rank-1.trace.json')).map(plan), steps.map(plan));
        });
      }

      test(`${mode}, default prefill threshold, decode threshold 5 (= number of prompts)`, async () => {
        const llm = new LLM({ ...base, ...moe, dboDecodeTokenThreshold: golden.prompts.length });
        try {
          assertGolden(golden, await llm.generate(inputs, params));
          const stats = (await llm.engine()).dboStats;
          // One prefill step of all 291 prompt tokens (>= 256), then 15 decode steps of all five prompts
          // (>= 5): each splits.
          assert.deepEqual(
            { steps: stats.steps, splitSteps: stats.splitSteps },
            { steps: 16, splitSteps: 16 },
          );
        } finally {
          await llm.close();
        }
      });
    }
  });
}
