// Prefix caching through the scheduler: a second request with the same prefix reuses the first one's
// blocks (hit counts right, blocks shared with refCount 2), the last token is always computed, and when
// free blocks run out the least recently freed cached blocks are evicted and can no longer be hit.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Scheduler } from '../../src/core/scheduler.js';
import { FakeRunner, step } from './harness.js';

function drain(s: Scheduler, runner: FakeRunner): void {
  for (let i = 0; i < 1000 && s.hasUnfinishedRequests(); i++) step(s, runner);
  assert.equal(s.hasUnfinishedRequests(), false);
}

describe('Scheduler prefix caching', () => {
  it('reuses the blocks of a shared prefix while the first request still runs', () => {
    const s = new Scheduler({
      maxNumSeqs: 4,
      maxNumBatchedTokens: 64,
      maxModelLen: 64,
      blockSize: 4,
      numBlocks: 16,
    });
    const runner = new FakeRunner(s);
    const shared = [1, 2, 3, 4, 5, 6, 7, 8];
    s.addRequest({ requestId: 'a', promptTokenIds: [...shared, 9, 10], maxTokens: 4 });
    const first = step(s, runner).out.scheduledRequests[0]!;
    s.addRequest({ requestId: 'b', promptTokenIds: [...shared, 20, 21, 22], maxTokens: 4 });
    const out = step(s, runner).out;
    const b = out.scheduledRequests.find((r) => r.requestId === 'b')!;
    assert.equal(b.kind, 'new');
    assert.equal(b.startPosition, 8);
    assert.deepEqual(b.tokenIds, [20, 21, 22]);
    assert.deepEqual(b.blockIds.slice(0, 2), first.blockIds.slice(0, 2));
    assert.deepEqual(b.newBlockIds, b.blockIds, 'hit blocks are new to this request too');
    const pool = s.kvCacheManager.pool;
    assert.equal(pool.getBlock(first.blockIds[0]!).refCount, 2);
    assert.equal(pool.getBlock(first.blockIds[2]!).refCount, 1);
    assert.equal(s.getRequest('b')!.numCachedTokens, 8);
    const stats = s.stats();
    assert.deepEqual([stats.prefixCacheQueries, stats.prefixCacheHits], [10 + 11, 8]);
    drain(s, runner);
    assert.equal(s.kvCacheManager.numFreeBlocks, 16);
  });

  it('leaves the last prompt token to compute when the whole prompt is cached', () => {
    const s = new Scheduler({
      maxNumSeqs: 4,
      maxNumBatchedTokens: 64,
      maxModelLen: 64,
      blockSize: 4,
      numBlocks: 16,
    });
    const runner = new FakeRunner(s);
    const prompt = [1, 2, 3, 4, 5, 6, 7, 8];
    s.addRequest({ requestId: 'a', promptTokenIds: prompt, maxTokens: 1 });
    drain(s, runner);
    s.addRequest({ requestId: 'b', promptTokenIds: prompt, maxTokens: 1 });
    const b = step(s, runner).out.scheduledRequests[0]!;
    assert.deepEqual([b.startPosition, b.numScheduledTokens, b.samplesToken], [4, 4, true]);
  });

  it('evicts the least recently freed cached blocks first and drops their hashes', () => {
    const s = new Scheduler({
      maxNumSeqs: 4,
      maxNumBatchedTokens: 64,
      maxModelLen: 64,
      blockSize: 2,
      numBlocks: 6,
    });
    const runner = new FakeRunner(s);
    const p1 = [1, 2, 3, 4, 5];
    const p2 = [6, 7, 8, 9, 10];
    s.addRequest({ requestId: 'p1', promptTokenIds: p1, maxTokens: 1 });
    drain(s, runner); // p1 held blocks 0,1,2; 0,1 full and cached
    s.addRequest({ requestId: 'p2', promptTokenIds: p2, maxTokens: 1 });
    drain(s, runner); // p2 took 2 (uncached, at the head), 3, 4; 2,3 cached
    const pool = s.kvCacheManager.pool;
    assert.deepEqual(pool.freeQueueBlockIds(), [4, 5, 1, 0, 3, 2]);
    assert.equal(pool.numCachedBlocks, 4);

    // q needs 5 fresh blocks: the uncached 4 and 5, then p1's blocks (freed first), then p2's tail block.
    s.addRequest({ requestId: 'q', promptTokenIds: [40, 41, 42, 43, 44, 45, 46, 47, 48], maxTokens: 1 });
    const q = step(s, runner).out.scheduledRequests[0]!;
    assert.deepEqual(q.blockIds, [4, 5, 1, 0, 3]);
    assert.equal(s.stats().numPrefixCacheEvictions, 3);

    drain(s, runner);
    s.addRequest({ requestId: 'p2again', promptTokenIds: p2, maxTokens: 1 });
    s.addRequest({ requestId: 'p1again', promptTokenIds: p1, maxTokens: 1 });
    const out = step(s, runner).out;
    const byId = new Map(out.scheduledRequests.map((r) => [r.requestId, r]));
    assert.equal(byId.get('p1again')!.startPosition, 0, "p1's blocks were evicted");
    assert.equal(byId.get('p2again')!.startPosition, 2, "p2's first block survived");
    assert.equal(byId.get('p2again')!.blockIds[0], 2);
    drain(s, runner);
    assert.equal(s.kvCacheManager.numFreeBlocks, 6);
  });
});
