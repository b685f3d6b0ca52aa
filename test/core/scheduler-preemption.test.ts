// Preemption by recompute: the newest running request is the victim, it goes to the front of the waiting
// queue with nothing computed but its outputs kept, resumes with a recompute chunk of prompt + outputs,
// and finishes with exactly the tokens it would have produced without preemption.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Scheduler } from '../../src/core/scheduler.js';
import type { ScheduledRequest, SchedulerOutput } from '../../src/core/scheduler-output.js';
import { FakeRunner, fakeToken, step } from './harness.js';

const expectedOutputs = (id: string, n: number): number[] =>
  Array.from({ length: n }, (_, k) => fakeToken(id, k));

/** One step that also appends each request's new tokens to `outputs`. */
function recordStep(s: Scheduler, runner: FakeRunner, outputs: Map<string, number[]>): SchedulerOutput {
  const { out, results } = step(s, runner);
  for (const r of results) outputs.set(r.requestId, [...(outputs.get(r.requestId) ?? []), ...r.newTokenIds]);
  return out;
}

/** Runs to completion; returns every step's scheduled requests by id. */
function runToEnd(
  s: Scheduler,
  runner: FakeRunner,
  outputs: Map<string, number[]>,
): Map<string, ScheduledRequest>[] {
  const steps: Map<string, ScheduledRequest>[] = [];
  while (s.hasUnfinishedRequests()) {
    assert.ok(steps.length < 1000, 'finishes');
    const out = recordStep(s, runner, outputs);
    steps.push(new Map(out.scheduledRequests.map((r) => [r.requestId, r])));
  }
  return steps;
}

/** Three 3-token prompts with max_tokens 6 on a 6-block cache of 2-token blocks, no prefix caching. */
function tightScheduler(): Scheduler {
  const s = new Scheduler({
    maxNumSeqs: 4,
    maxNumBatchedTokens: 64,
    maxModelLen: 64,
    blockSize: 2,
    numBlocks: 6,
    enablePrefixCaching: false,
  });
  for (const id of ['A', 'B', 'C']) s.addRequest({ requestId: id, promptTokenIds: [1, 2, 3], maxTokens: 6 });
  return s;
}

describe('Scheduler preemption', () => {
  it('preempts the newest running request first and resumes it with prompt + outputs', () => {
    const s = tightScheduler();
    const runner = new FakeRunner(s);
    const outputs = new Map<string, number[]>();

    // Steps 1-2: all three fit (2 blocks each, the cache is full after step 1).
    recordStep(s, runner, outputs);
    recordStep(s, runner, outputs);
    assert.equal(s.kvCacheManager.numFreeBlocks, 0);

    // Step 3: A needs a third block; C, the newest, is preempted; then B also gets one of C's blocks.
    const third = recordStep(s, runner, outputs);
    assert.deepEqual(third.preemptedRequestIds, ['C']);
    assert.deepEqual(
      third.scheduledRequests.map((r) => r.requestId),
      ['A', 'B'],
    );
    const c = s.getRequest('C')!;
    assert.equal(c.status, 'preempted');
    assert.equal(c.numComputedTokens, 0);
    assert.equal(c.numPreemptions, 1);
    assert.deepEqual(c.outputTokenIds, expectedOutputs('C', 2), 'outputs survive preemption');
    assert.deepEqual(s.waitingRequestIds(), ['C']);
    assert.equal(s.stats().numPreemptedWaiting, 1);

    // Step 4: no room to resume C. Step 5: A needs a fourth block: B (now the newest) is preempted and
    // goes in front of C.
    const fourth = recordStep(s, runner, outputs);
    assert.deepEqual(fourth.preemptedRequestIds, []);
    assert.deepEqual(s.waitingRequestIds(), ['C']);
    const fifth = recordStep(s, runner, outputs);
    assert.deepEqual(fifth.preemptedRequestIds, ['B']);
    assert.deepEqual(s.waitingRequestIds(), ['B', 'C']);
    assert.deepEqual(s.runningRequestIds(), ['A']);

    const steps = runToEnd(s, runner, outputs);
    for (const id of ['A', 'B', 'C']) {
      assert.deepEqual(outputs.get(id), expectedOutputs(id, 6), `${id} finishes with all its tokens`);
    }
    // C's first step after resuming recomputes prompt + its two outputs and samples the next token.
    const resumed = steps.map((m) => m.get('C')).find((r) => r !== undefined && r.kind === 'resumed')!;
    assert.deepEqual(resumed.tokenIds, [1, 2, 3, ...expectedOutputs('C', 2)]);
    assert.equal(resumed.startPosition, 0);
    assert.equal(resumed.samplesToken, true);
    assert.deepEqual(resumed.newBlockIds, resumed.blockIds);
    assert.equal(s.stats().numPreemptions, 2);
    assert.equal(s.kvCacheManager.numFreeBlocks, 6);
  });

  it('resumes from its own cached blocks when they survive', () => {
    // A (2 blocks) and B (3 blocks) fill the cache; A's next block preempts B, whose partial last block
    // (uncached) goes to the head of the free queue and is what A takes. B's two full blocks stay cached
    // until A finishes, and B resumes from them.
    const s = new Scheduler({
      maxNumSeqs: 4,
      maxNumBatchedTokens: 64,
      maxModelLen: 64,
      blockSize: 4,
      numBlocks: 5,
    });
    const runner = new FakeRunner(s);
    s.addRequest({ requestId: 'A', promptTokenIds: [1, 2, 3, 4, 5, 6, 7, 8], maxTokens: 5 });
    s.addRequest({ requestId: 'B', promptTokenIds: [11, 12, 13, 14, 15, 16, 17, 18, 19], maxTokens: 12 });
    let preemptedAt = -1;
    for (let i = 0; i < 40 && preemptedAt < 0; i++) {
      if (step(s, runner).out.preemptedRequestIds.includes('B')) preemptedAt = i;
    }
    assert.ok(preemptedAt >= 0, 'B gets preempted');
    const b = s.getRequest('B')!;
    const numKnown = b.numTokens;
    const hitsBefore = s.stats().prefixCacheHits;
    let resumed: ScheduledRequest | undefined;
    for (let i = 0; i < 40 && resumed === undefined; i++) {
      resumed = step(s, runner).out.scheduledRequests.find((r) => r.requestId === 'B');
    }
    assert.ok(resumed !== undefined);
    assert.equal(resumed.kind, 'resumed');
    assert.ok(
      resumed.startPosition >= 8,
      `B's first two full blocks are hit (start ${resumed.startPosition})`,
    );
    assert.equal(resumed.startPosition + resumed.numScheduledTokens, numKnown);
    assert.equal(s.stats().prefixCacheHits - hitsBefore, resumed.startPosition);

    runToEnd(s, runner, new Map());
    assert.equal(s.kvCacheManager.numFreeBlocks, 5);
  });

  it('aborts a preempted request: it leaves the queue and the others finish', () => {
    const s = tightScheduler();
    const runner = new FakeRunner(s);
    const outputs = new Map<string, number[]>();
    for (let i = 0; i < 3; i++) recordStep(s, runner, outputs);
    assert.equal(s.getRequest('C')?.status, 'preempted');
    assert.equal(s.abort('C'), true);
    assert.deepEqual(s.waitingRequestIds(), []);
    assert.equal(s.stats().numWaiting, 0);
    const steps = runToEnd(s, runner, outputs);
    assert.ok(steps.every((m) => !m.has('C')));
    assert.deepEqual(outputs.get('A'), expectedOutputs('A', 6));
    assert.deepEqual(outputs.get('B'), expectedOutputs('B', 6));
    assert.equal(s.kvCacheManager.numFreeBlocks, 6);
  });
});
