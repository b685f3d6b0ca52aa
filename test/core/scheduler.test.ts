// Scheduler basics: limits, chunked prefill with exact positions, decodes before prefills, admission
// checks with vLLM's wording, finishing by length and by the engine, aborts, and the step protocol.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ContextLengthExceededError,
  KVCacheCapacityError,
  SchedulerConfigError,
} from '../../src/core/errors.js';
import { Scheduler } from '../../src/core/scheduler.js';
import { checkInvariants, FakeRunner, fakeToken, step } from './harness.js';

const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

describe('Scheduler', () => {
  it('chunks a long prompt over several steps with exact positions, then decodes', () => {
    const s = new Scheduler({
      maxNumSeqs: 4,
      maxNumBatchedTokens: 8,
      maxModelLen: 64,
      blockSize: 4,
      numBlocks: 16,
    });
    const runner = new FakeRunner(s);
    const prompt = range(100, 20);
    s.addRequest({ requestId: 'a', promptTokenIds: prompt, maxTokens: 3 });
    const chunks = [0, 1, 2].map(() => step(s, runner).out.scheduledRequests[0]!);
    assert.deepEqual(
      chunks.map((c) => [c.startPosition, c.numScheduledTokens, c.samplesToken, c.kind]),
      [
        [0, 8, false, 'new'],
        [8, 8, false, 'continuing'],
        [16, 4, true, 'continuing'],
      ],
    );
    assert.deepEqual(chunks[1]!.tokenIds, prompt.slice(8, 16));
    assert.deepEqual(chunks[0]!.blockIds, [0, 1]);
    assert.deepEqual(chunks[1]!.newBlockIds, [2, 3]);
    assert.deepEqual(chunks[2]!.blockIds, [0, 1, 2, 3, 4]);
    const decode = step(s, runner).out.scheduledRequests[0]!;
    assert.deepEqual([decode.startPosition, decode.tokenIds], [20, [fakeToken('a', 0)]]);
    assert.equal(decode.samplesToken, true);
  });

  it('respects the token budget and maxNumSeqs, and schedules decodes before new prefills', () => {
    const s = new Scheduler({
      maxNumSeqs: 3,
      maxNumBatchedTokens: 10,
      maxModelLen: 64,
      blockSize: 4,
      numBlocks: 32,
    });
    const runner = new FakeRunner(s);
    for (const id of ['a', 'b']) s.addRequest({ requestId: id, promptTokenIds: range(1, 3), maxTokens: 20 });
    const first = step(s, runner).out;
    assert.deepEqual(
      first.scheduledRequests.map((r) => r.requestId),
      ['a', 'b'],
    );
    s.addRequest({ requestId: 'long', promptTokenIds: range(50, 30), maxTokens: 2 });
    s.addRequest({ requestId: 'late', promptTokenIds: range(90, 2), maxTokens: 2 });
    const second = step(s, runner).out;
    assert.deepEqual(
      second.scheduledRequests.map((r) => [r.requestId, r.numScheduledTokens]),
      [
        ['a', 1],
        ['b', 1],
        ['long', 8],
      ],
      'decodes first, the prompt gets the rest of the budget',
    );
    assert.equal(second.totalNumScheduledTokens, 10);
    const third = step(s, runner).out;
    assert.deepEqual(
      third.scheduledRequests.map((r) => [r.requestId, r.numScheduledTokens]),
      [
        ['a', 1],
        ['b', 1],
        ['long', 8],
      ],
      'maxNumSeqs = 3 keeps "late" waiting',
    );
    assert.deepEqual(s.waitingRequestIds(), ['late']);
  });

  it('without chunked prefill a prompt waits until the whole of it fits the budget', () => {
    const s = new Scheduler({
      maxNumSeqs: 4,
      maxNumBatchedTokens: 16,
      maxModelLen: 16,
      blockSize: 4,
      numBlocks: 32,
      enableChunkedPrefill: false,
    });
    const runner = new FakeRunner(s);
    s.addRequest({ requestId: 'a', promptTokenIds: range(1, 10), maxTokens: 4 });
    s.addRequest({ requestId: 'b', promptTokenIds: range(50, 10), maxTokens: 4 });
    const first = step(s, runner).out;
    assert.deepEqual(
      first.scheduledRequests.map((r) => [r.requestId, r.numScheduledTokens]),
      [['a', 10]],
      'b (10 tokens) does not fit the 6 left and is not chunked',
    );
    const second = step(s, runner).out;
    assert.deepEqual(
      second.scheduledRequests.map((r) => [r.requestId, r.numScheduledTokens]),
      [
        ['a', 1],
        ['b', 10],
      ],
    );
  });

  it('rejects bad configs with the setting named', () => {
    const ok = { maxNumSeqs: 1, maxNumBatchedTokens: 8, maxModelLen: 8, blockSize: 4, numBlocks: 4 };
    assert.throws(() => new Scheduler({ ...ok, blockSize: 512 }), {
      name: 'SchedulerConfigError',
      message: /blockSize/,
    });
    assert.throws(() => new Scheduler({ ...ok, maxNumSeqs: 0 }), SchedulerConfigError);
    assert.throws(() => new Scheduler({ ...ok, maxModelLen: 16, enableChunkedPrefill: false }), {
      message: /maxNumBatchedTokens \(8\) must be >= maxModelLen \(16\)/,
    });
  });

  it('rejects a request longer than the context with vLLM wording, and one bigger than the cache', () => {
    const s = new Scheduler({
      maxNumSeqs: 2,
      maxNumBatchedTokens: 64,
      maxModelLen: 100,
      blockSize: 8,
      numBlocks: 4,
    });
    assert.throws(
      () => s.addRequest({ requestId: 'x', promptTokenIds: range(1, 90), maxTokens: 20 }),
      (e: unknown) => {
        assert.ok(e instanceof ContextLengthExceededError);
        assert.equal(
          e.message,
          "This model's maximum context length is 100 tokens. However, you requested 110 tokens " +
            '(90 in the messages, 20 in the completion). Please reduce the length of the messages or completion.',
        );
        assert.deepEqual([e.maxModelLen, e.numPromptTokens, e.maxTokens], [100, 90, 20]);
        return true;
      },
    );
    assert.throws(
      () => s.addRequest({ requestId: 'y', promptTokenIds: range(1, 30), maxTokens: 4 }),
      (e: unknown) =>
        e instanceof KVCacheCapacityError &&
        /needs up to 33 tokens .*5 blocks.* holds 4 blocks/.test(e.message),
    );
    // 32 positions of KV exactly fill the cache: accepted.
    s.addRequest({ requestId: 'z', promptTokenIds: range(1, 30), maxTokens: 3 });
    assert.throws(
      () => s.addRequest({ requestId: 'z', promptTokenIds: [1], maxTokens: 1 }),
      /already in use/,
    );
    assert.throws(() => s.addRequest({ requestId: 'e', promptTokenIds: [], maxTokens: 1 }), /empty prompt/);
    assert.throws(() => s.addRequest({ requestId: 'm', promptTokenIds: [1], maxTokens: 0 }), /max_tokens/);
    assert.throws(
      () => s.addRequest({ requestId: 't', promptTokenIds: [1, -2], maxTokens: 1 }),
      /token id -2/,
    );
    assert.equal(s.numUnfinishedRequests, 1);
  });

  it('finishes by length at max_tokens and by the engine with its reason', () => {
    const s = new Scheduler({
      maxNumSeqs: 4,
      maxNumBatchedTokens: 64,
      maxModelLen: 64,
      blockSize: 4,
      numBlocks: 16,
    });
    const runner = new FakeRunner(s);
    s.addRequest({ requestId: 'a', promptTokenIds: [1, 2, 3], maxTokens: 2 });
    s.addRequest({ requestId: 'b', promptTokenIds: [4, 5, 6], maxTokens: 10 });
    const r1 = step(s, runner).results;
    assert.deepEqual(
      r1.map((r) => [r.requestId, r.newTokenIds, r.finishReason]),
      [
        ['a', [fakeToken('a', 0)], null],
        ['b', [fakeToken('b', 0)], null],
      ],
    );
    const out = s.schedule();
    const result = runner.execute(out);
    const results = s.updateFromOutput({ ...result, finished: new Map([['b', 'stop' as const]]) });
    assert.deepEqual(
      results.map((r) => [r.requestId, r.finishReason, r.numOutputTokens]),
      [
        ['a', 'length', 2],
        ['b', 'stop', 2],
      ],
    );
    assert.equal(s.hasUnfinishedRequests(), false);
    assert.equal(s.kvCacheManager.numFreeBlocks, 16);
    assert.deepEqual(s.schedule().finishedRequestIds, ['a', 'b'], 'finished ids reported once, next step');
    assert.deepEqual(s.schedule().finishedRequestIds, []);
  });

  it('aborts waiting, running and in-flight requests, returning their blocks at once', () => {
    const s = new Scheduler({
      maxNumSeqs: 1,
      maxNumBatchedTokens: 64,
      maxModelLen: 64,
      blockSize: 4,
      numBlocks: 16,
    });
    const runner = new FakeRunner(s);
    s.addRequest({ requestId: 'run', promptTokenIds: range(1, 9), maxTokens: 5 });
    s.addRequest({ requestId: 'wait', promptTokenIds: range(1, 9), maxTokens: 5 });
    step(s, runner);
    assert.equal(s.kvCacheManager.numFreeBlocks, 13);
    assert.equal(s.abort('wait'), true);
    assert.deepEqual(s.waitingRequestIds(), []);
    const out = s.schedule();
    assert.deepEqual(out.finishedRequestIds, ['wait']);
    const result = runner.execute(out);
    assert.equal(s.abort('run'), true, 'abort while the step runs');
    assert.equal(s.kvCacheManager.numFreeBlocks, 16);
    assert.deepEqual(s.updateFromOutput(result), [], 'the in-flight sampled token is ignored');
    assert.equal(s.abort('run'), false, 'not live any more');
    assert.deepEqual(s.schedule().finishedRequestIds, ['run']);
    checkInvariants(s);
  });

  it('enforces the schedule → update protocol', () => {
    const s = new Scheduler({
      maxNumSeqs: 2,
      maxNumBatchedTokens: 4,
      maxModelLen: 64,
      blockSize: 4,
      numBlocks: 16,
    });
    s.addRequest({ requestId: 'a', promptTokenIds: range(1, 6), maxTokens: 2 });
    s.addRequest({ requestId: 'b', promptTokenIds: range(1, 1), maxTokens: 2 });
    s.schedule(); // a: a 4-token chunk, b not admitted (budget spent)
    assert.throws(() => s.schedule(), { name: 'SchedulerContractError' });
    assert.throws(
      () => s.updateFromOutput({ sampledTokenIds: new Map([['a', [5]]]) }),
      /a, which was not due/,
    );
    s.updateFromOutput({ sampledTokenIds: new Map() });
    s.schedule(); // a: last 2 prompt tokens (samples), b: its one token (samples)
    assert.throws(
      () => s.updateFromOutput({ sampledTokenIds: new Map([['zzz', [5]]]) }),
      /zzz, which was not due/,
    );
    assert.throws(
      () => s.updateFromOutput({ sampledTokenIds: new Map([['a', [5]]]) }),
      /no token was sampled for request b/,
    );
    const results = s.updateFromOutput({
      sampledTokenIds: new Map([
        ['a', [5]],
        ['b', [6]],
      ]),
    });
    assert.deepEqual(
      results.map((r) => r.newTokenIds),
      [[5], [6]],
      'failed updates changed nothing',
    );
  });
});
