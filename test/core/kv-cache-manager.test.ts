// KV cache manager: longest cached prefix (never the whole sequence), slot allocation that fails without
// side effects, caching of computed full blocks only, shared blocks with correct reference counts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KVCacheManager, KVCacheManagerError } from '../../src/core/kv-cache-manager.js';
import { EngineRequest } from '../../src/core/request.js';

let nextIndex = 0;
function makeRequest(id: string, prompt: number[], maxTokens = 4): EngineRequest {
  return new EngineRequest({ requestId: id, promptTokenIds: prompt, maxTokens }, nextIndex++);
}

/** Allocates and "computes" the request's whole prompt, then caches its full blocks. */
function prefill(kv: KVCacheManager, r: EngineRequest): number[] {
  const computed = kv.getComputedBlocks(r);
  const ids = kv.allocateSlots(r, r.numTokens - computed.numTokens, computed);
  assert.ok(ids !== null);
  r.numComputedTokens = r.numTokens;
  kv.cacheComputedBlocks(r);
  return kv.getBlockIds(r.requestId);
}

describe('KVCacheManager', () => {
  it('rejects block sizes outside 1..256', () => {
    assert.throws(() => new KVCacheManager({ blockSize: 0, numBlocks: 4, enablePrefixCaching: true }), {
      name: 'KVCacheManagerError',
      message: /1\.\.256, got 0/,
    });
    assert.throws(() => new KVCacheManager({ blockSize: 257, numBlocks: 4, enablePrefixCaching: true }));
  });

  it('allocates exactly the blocks needed and returns null without side effects when short', () => {
    const kv = new KVCacheManager({ blockSize: 4, numBlocks: 3, enablePrefixCaching: true });
    const a = makeRequest('a', [1, 2, 3, 4, 5]);
    assert.deepEqual(kv.allocateSlots(a, 5), [0, 1]);
    a.numComputedTokens = 5;
    assert.deepEqual(kv.allocateSlots(a, 3), [], 'positions 5..7 fit in block 1');
    a.numComputedTokens = 8;
    const b = makeRequest('b', [9, 9, 9, 9, 9]);
    assert.equal(kv.allocateSlots(b, 5), null, 'b needs 2 blocks, 1 is free');
    assert.deepEqual(kv.getBlockIds('b'), []);
    assert.equal(kv.numFreeBlocks, 1);
    assert.deepEqual(kv.allocateSlots(a, 1), [2]);
    kv.free(a);
    assert.equal(kv.numFreeBlocks, 3);
    assert.equal(kv.usage, 0);
  });

  it('hits the longest cached prefix in full blocks and shares the blocks', () => {
    const kv = new KVCacheManager({ blockSize: 4, numBlocks: 10, enablePrefixCaching: true });
    const a = makeRequest('a', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const aBlocks = prefill(kv, a);
    assert.equal(kv.pool.numCachedBlocks, 2, 'two full blocks cached, the partial third not');

    const b = makeRequest('b', [1, 2, 3, 4, 5, 6, 7, 8, 42, 43, 44]);
    const hit = kv.getComputedBlocks(b);
    assert.equal(hit.numTokens, 8);
    const bBlocks = prefill(kv, b);
    assert.deepEqual(bBlocks.slice(0, 2), aBlocks.slice(0, 2));
    assert.notEqual(bBlocks[2], aBlocks[2]);
    assert.equal(kv.pool.getBlock(aBlocks[0]!).refCount, 2);
    assert.equal(kv.pool.getBlock(aBlocks[2]!).refCount, 1);

    // A different first block breaks the chain even though the second block's tokens match.
    const c = makeRequest('c', [0, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(kv.getComputedBlocks(c).numTokens, 0);

    kv.free(a);
    assert.equal(kv.pool.getBlock(aBlocks[0]!).refCount, 1, 'still held by b');
    kv.free(b);
    assert.equal(kv.numFreeBlocks, 10);
    // Freed cached blocks can still be hit.
    const d = makeRequest('d', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert.equal(kv.getComputedBlocks(d).numTokens, 8);
  });

  it('never returns the whole sequence as computed', () => {
    const kv = new KVCacheManager({ blockSize: 4, numBlocks: 10, enablePrefixCaching: true });
    prefill(kv, makeRequest('a', [1, 2, 3, 4, 5, 6, 7, 8]));
    const same = makeRequest('b', [1, 2, 3, 4, 5, 6, 7, 8]);
    assert.equal(kv.getComputedBlocks(same).numTokens, 4, 'the last block is recomputed for logits');
    const one = makeRequest('c', [1, 2, 3, 4]);
    assert.equal(kv.getComputedBlocks(one).numTokens, 0);
  });

  it('counts free hit blocks against the free-block budget', () => {
    const kv = new KVCacheManager({ blockSize: 2, numBlocks: 3, enablePrefixCaching: true });
    const a = makeRequest('a', [1, 2, 3, 4, 5]);
    prefill(kv, a);
    kv.free(a); // blocks 0,1 cached and free, 2 free
    const b = makeRequest('b', [1, 2, 3, 4, 5, 6, 7, 8]);
    const hit = kv.getComputedBlocks(b);
    assert.equal(hit.numTokens, 4);
    // b needs 2 hit blocks (both in the free queue) + 2 new ones = 4 > 3.
    assert.equal(kv.allocateSlots(b, 4, hit), null);
    assert.equal(kv.numFreeBlocks, 3, 'nothing was touched');
    assert.ok(kv.allocateSlots(b, 2, hit) !== null, 'a chunk that needs one new block fits');
  });

  it('caches only blocks whose KV is computed', () => {
    const kv = new KVCacheManager({ blockSize: 2, numBlocks: 8, enablePrefixCaching: true });
    const a = makeRequest('a', [1, 2, 3, 4, 5, 6]);
    kv.allocateSlots(a, 6);
    a.numComputedTokens = 3;
    kv.cacheComputedBlocks(a);
    assert.equal(kv.pool.numCachedBlocks, 1);
    a.numComputedTokens = 6;
    kv.cacheComputedBlocks(a);
    assert.equal(kv.pool.numCachedBlocks, 3);
  });

  it('refuses a prefix hit for a request that already holds blocks', () => {
    const kv = new KVCacheManager({ blockSize: 2, numBlocks: 8, enablePrefixCaching: true });
    const a = makeRequest('a', [1, 2, 3]);
    prefill(kv, a);
    const b = makeRequest('b', [1, 2, 3]);
    const hit = kv.getComputedBlocks(b);
    kv.allocateSlots(b, 1, hit);
    assert.throws(() => kv.allocateSlots(b, 1, hit), KVCacheManagerError);
  });

  it('has no hits with prefix caching off', () => {
    const kv = new KVCacheManager({ blockSize: 2, numBlocks: 8, enablePrefixCaching: false });
    prefill(kv, makeRequest('a', [1, 2, 3, 4, 5]));
    assert.equal(kv.pool.numCachedBlocks, 0);
    assert.equal(kv.getComputedBlocks(makeRequest('b', [1, 2, 3, 4, 5])).numTokens, 0);
  });
});
