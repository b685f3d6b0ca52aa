// Randomized soak test of the scheduler: seeded arrivals, aborts (also mid-step), EOS finishes and
// max_tokens finishes over thousands of steps on a cache small enough to force preemption and eviction.
// After every schedule and update the invariant checker runs; the fake runner checks every step's tokens,
// positions and the simulated KV behind each block table; at the end every block must be free and every
// request's output must be exactly what the fake model produces for it.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FinishReason } from '../../src/core/request.js';
import { Scheduler } from '../../src/core/scheduler.js';
import type { SchedulerConfigInput } from '../../src/core/scheduler-config.js';
import { checkInvariants, FakeRunner, fakeToken, makeRng, randInt } from './harness.js';

const EOS = 7;

interface RunSummary {
  numSteps: number;
  numPreemptions: number;
  prefixCacheHits: number;
  numEvictions: number;
  numAborted: number;
}

function soak(seed: number, config: SchedulerConfigInput, numRequests: number): RunSummary {
  const rng = makeRng(seed);
  const scheduler = new Scheduler(config);
  const runner = new FakeRunner(scheduler, EOS);
  const { maxModelLen, maxNumBatchedTokens, maxNumSeqs, numBlocks } = scheduler.config;
  // A few shared prefixes so that prompts share cached blocks.
  const prefixes = [0, 1, 2].map(() =>
    Array.from({ length: randInt(rng, 4, 40) }, () => randInt(rng, 8, 999)),
  );
  const specs = new Map<string, { maxTokens: number }>();
  const outputs = new Map<string, number[]>();
  const reasons = new Map<string, FinishReason>();
  let numAdded = 0;
  let numSteps = 0;

  while (numAdded < numRequests || scheduler.hasUnfinishedRequests()) {
    assert.ok(numSteps < 100_000, 'the run makes progress');
    if (numAdded < numRequests && rng() < 0.35) {
      const id = `r${numAdded++}`;
      const prefix = prefixes[randInt(rng, 0, prefixes.length - 1)]!;
      const prompt = prefix.slice(0, randInt(rng, 0, prefix.length));
      for (let n = randInt(rng, prompt.length === 0 ? 1 : 0, 12); n > 0; n--)
        prompt.push(randInt(rng, 8, 999));
      const maxTokens = randInt(rng, 1, Math.min(24, maxModelLen - prompt.length));
      scheduler.addRequest({ requestId: id, promptTokenIds: prompt, maxTokens });
      specs.set(id, { maxTokens });
      outputs.set(id, []);
    }
    if (rng() < 0.02 && scheduler.hasUnfinishedRequests()) {
      const live = [...scheduler.runningRequestIds(), ...scheduler.waitingRequestIds()];
      const victim = live[randInt(rng, 0, live.length - 1)]!;
      assert.equal(scheduler.abort(victim), true);
      reasons.set(victim, 'abort');
      checkInvariants(scheduler);
    }

    const out = scheduler.schedule();
    numSteps++;
    const sum = out.scheduledRequests.reduce((acc, s) => acc + s.numScheduledTokens, 0);
    assert.equal(out.totalNumScheduledTokens, sum);
    assert.ok(sum <= maxNumBatchedTokens, 'token budget respected');
    assert.ok(out.scheduledRequests.length <= maxNumSeqs, 'sequence limit respected');
    assert.equal(new Set(out.scheduledRequests.map((s) => s.requestId)).size, out.scheduledRequests.length);
    const waitingNow = scheduler.waitingRequestIds();
    const numPreempted = out.preemptedRequestIds.length;
    assert.deepEqual(
      new Set(waitingNow.slice(0, numPreempted)),
      new Set(out.preemptedRequestIds),
      'preempted go first',
    );
    checkInvariants(scheduler);
    if (out.scheduledRequests.length === 0) {
      assert.equal(scheduler.runningRequestIds().length, 0, 'an idle step only when nothing runs');
      continue;
    }

    const result = runner.execute(out);
    if (rng() < 0.03) {
      // Abort while the step "runs": its sampled token must be ignored.
      const victim = out.scheduledRequests[randInt(rng, 0, out.scheduledRequests.length - 1)]!.requestId;
      scheduler.abort(victim);
      reasons.set(victim, 'abort');
    }
    for (const r of scheduler.updateFromOutput(result)) {
      outputs.get(r.requestId)!.push(...r.newTokenIds);
      assert.equal(outputs.get(r.requestId)!.length, r.numOutputTokens);
      if (r.finishReason !== null) reasons.set(r.requestId, r.finishReason);
    }
    checkInvariants(scheduler);
  }

  // Everything finished: all blocks free, no tables, each output exactly the fake model's sequence.
  const pool = scheduler.kvCacheManager.pool;
  assert.equal(pool.numFreeBlocks, numBlocks);
  assert.equal([...scheduler.kvCacheManager.requestIds()].length, 0);
  let numAborted = 0;
  for (const [id, { maxTokens }] of specs) {
    const got = outputs.get(id)!;
    const expected: number[] = [];
    for (let k = 0; k < maxTokens; k++) {
      expected.push(fakeToken(id, k));
      if (expected[k] === EOS) break;
    }
    const reason = reasons.get(id);
    if (reason === 'abort') {
      numAborted++;
      assert.deepEqual(got, expected.slice(0, got.length), `${id}: aborted output is a prefix`);
    } else {
      assert.deepEqual(got, expected, `${id}: complete output`);
      assert.equal(reason, expected.at(-1) === EOS ? 'stop' : 'length', `${id}: finish reason`);
    }
  }
  const stats = scheduler.stats();
  return {
    numSteps,
    numPreemptions: stats.numPreemptions,
    prefixCacheHits: stats.prefixCacheHits,
    numEvictions: stats.numPrefixCacheEvictions,
    numAborted,
  };
}

describe('scheduler soak (seeded, invariants checked every step)', () => {
  const base = { maxNumSeqs: 6, maxNumBatchedTokens: 16, maxModelLen: 64 };

  it('block size 4, chunked prefill and prefix caching on', () => {
    for (const seed of [1, 2, 3]) {
      const s = soak(seed, { ...base, blockSize: 4, numBlocks: 20 }, 800);
      assert.ok(s.numSteps > 1000, `thousands of steps (${s.numSteps})`);
      assert.ok(s.numPreemptions > 0, 'the small cache forces preemptions');
      assert.ok(s.prefixCacheHits > 0, 'shared prefixes hit the cache');
      assert.ok(s.numEvictions > 0, 'cached blocks get evicted');
      assert.ok(s.numAborted > 0, 'some requests were aborted');
    }
  });

  it('block size 1 and block size 3', () => {
    soak(11, { ...base, blockSize: 1, numBlocks: 70 }, 500);
    soak(12, { ...base, blockSize: 3, numBlocks: 24 }, 500);
  });

  it('prefix caching off', () => {
    const s = soak(21, { ...base, blockSize: 4, numBlocks: 20, enablePrefixCaching: false }, 500);
    assert.equal(s.prefixCacheHits, 0);
    assert.ok(s.numPreemptions > 0);
  });

  it('chunked prefill off (whole prompts only)', () => {
    const s = soak(
      31,
      { ...base, maxNumBatchedTokens: 64, blockSize: 4, numBlocks: 20, enableChunkedPrefill: false },
      500,
    );
    assert.ok(s.numPreemptions > 0);
  });

  it('large blocks (16) on a six-block cache', () => {
    const s = soak(41, { ...base, maxModelLen: 80, blockSize: 16, numBlocks: 6 }, 500);
    assert.ok(s.numPreemptions > 0);
  });
});
