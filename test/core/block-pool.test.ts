// Block pool: allocation, reference counts, double-free detection, LRU free queue, cached-block lookup
// that confirms tokens and parent, and eviction that drops a block's cached content.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BlockPool, BlockPoolError } from '../../src/core/block-pool.js';

describe('BlockPool', () => {
  it('allocates from the head, counts references and reports usage', () => {
    const pool = new BlockPool(4, true);
    assert.deepEqual(pool.freeQueueBlockIds(), [0, 1, 2, 3]);
    const [a, b] = pool.allocate(2);
    assert.deepEqual([a!.blockId, b!.blockId], [0, 1]);
    assert.equal(a!.refCount, 1);
    assert.equal(pool.numFreeBlocks, 2);
    assert.equal(pool.usage, 0.5);
    pool.touch([a!]);
    assert.equal(a!.refCount, 2);
    pool.free([a!, b!]);
    assert.equal(a!.refCount, 1);
    assert.equal(pool.numFreeBlocks, 3);
    assert.throws(() => pool.allocate(4), BlockPoolError);
  });

  it('rejects a double free', () => {
    const pool = new BlockPool(2, true);
    const blocks = pool.allocate(1);
    pool.free(blocks);
    assert.throws(() => pool.free(blocks), { name: 'BlockPoolError', message: /double free of block 0/ });
  });

  it('puts freed uncached blocks at the head and cached ones at the tail, in the order freed', () => {
    const pool = new BlockPool(5, true);
    const [b0, b1, b2, b3] = pool.allocate(4);
    pool.cacheBlock(b0!, 'h0', [1], null);
    pool.cacheBlock(b1!, 'h1', [2], b0!);
    pool.free([b3!, b1!, b0!, b2!]);
    // Uncached 3 then 2 went to the head; cached 1 then 0 to the tail behind the never-used 4.
    assert.deepEqual(pool.freeQueueBlockIds(), [2, 3, 4, 1, 0]);
  });

  it('finds cached blocks only when tokens and the live parent match', () => {
    const pool = new BlockPool(4, true);
    const [p, c] = pool.allocate(2);
    pool.cacheBlock(p!, 'hp', [1, 2], null);
    pool.cacheBlock(c!, 'hc', [3, 4], p!);
    const tokens = [1, 2, 3, 4];
    assert.deepEqual(pool.findCachedBlocks('hp', tokens, 0, 2, null), [p]);
    assert.deepEqual(pool.findCachedBlocks('hc', tokens, 2, 4, [p!]), [c]);
    // Same hash, different tokens (a collision): no hit.
    assert.deepEqual(pool.findCachedBlocks('hc', [1, 2, 3, 5], 2, 4, [p!]), []);
    // Right tokens, wrong parent: no hit.
    assert.deepEqual(pool.findCachedBlocks('hc', tokens, 2, 4, null), []);
    assert.deepEqual(pool.findCachedBlocks('nope', tokens, 0, 2, null), []);
  });

  it('evicts in LRU order when allocating, dropping the hash and orphaning children', () => {
    const pool = new BlockPool(3, true);
    const [p, c, x] = pool.allocate(3);
    pool.cacheBlock(p!, 'hp', [1], null);
    pool.cacheBlock(c!, 'hc', [2], p!);
    pool.cacheBlock(x!, 'hx', [9], null);
    pool.free([c!, p!]); // child first: it should be evicted first
    pool.free([x!]);
    assert.deepEqual(pool.freeQueueBlockIds(), [1, 0, 2]);
    assert.equal(pool.numCachedBlocks, 3);

    // Touching a hit takes it out of the free queue without losing its content.
    pool.touch([x!]);
    assert.deepEqual(pool.freeQueueBlockIds(), [1, 0]);
    pool.free([x!]);

    const [first] = pool.allocate(1);
    assert.equal(first, c, 'least recently freed cached block goes first');
    assert.equal(c!.cached, null);
    assert.equal(pool.numEvictions, 1);
    assert.deepEqual(pool.findCachedBlocks('hc', [2], 0, 1, [p!]), []);

    // Evict the parent, then re-register block 1 under the child's old hash: the stale link is refused.
    const [second] = pool.allocate(1);
    assert.equal(second, p);
    pool.cacheBlock(p!, 'hp', [1], null);
    pool.cacheBlock(c!, 'hc', [2], p!);
    assert.deepEqual(pool.findCachedBlocks('hc', [2], 0, 1, [p!]), [c], 'fresh link is found');
    assert.equal(pool.resetPrefixCache(), false, 'no reset while blocks are held');
    pool.free([c!, p!]);
    assert.equal(pool.resetPrefixCache(), true);
    assert.equal(pool.numCachedBlocks, 0);
  });

  it('refuses a stale parent link after the parent was evicted and recached', () => {
    const pool = new BlockPool(3, true);
    const [p, c] = pool.allocate(2);
    pool.cacheBlock(p!, 'hp', [1], null);
    pool.cacheBlock(c!, 'hc', [2], p!);
    pool.free([p!]); // parent free while the child is still held
    const [reused] = pool.allocate(2).filter((b) => b === p);
    assert.equal(reused, p, 'parent block reused');
    pool.cacheBlock(p!, 'hp', [1], null); // same content again, new generation
    assert.deepEqual(
      pool.findCachedBlocks('hc', [2], 0, 1, [p!]),
      [],
      'child was computed under the old parent',
    );
  });

  it('does nothing on cacheBlock when prefix caching is off', () => {
    const pool = new BlockPool(2, false);
    const [b] = pool.allocate(1);
    pool.cacheBlock(b!, 'h', [1], null);
    assert.equal(b!.cached, null);
    assert.deepEqual(pool.findCachedBlocks('h', [1], 0, 1, null), []);
  });
});
