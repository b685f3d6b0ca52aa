// Block hashing: deterministic, sensitive to every token, to order and to the parent chain.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { extendBlockHashes, hashBlockTokens } from '../../src/core/prefix-hash.js';

describe('hashBlockTokens', () => {
  it('is deterministic and 16 hex digits', () => {
    const h = hashBlockTokens(null, [1, 2, 3, 4], 0, 4);
    assert.equal(h, hashBlockTokens(null, [1, 2, 3, 4], 0, 4));
    assert.match(h, /^[0-9a-f]{16}$/);
  });

  it('depends on every token, on order, on the range and on the parent', () => {
    const base = hashBlockTokens(null, [1, 2, 3, 4], 0, 4);
    const variants = [
      hashBlockTokens(null, [1, 2, 3, 5], 0, 4),
      hashBlockTokens(null, [2, 1, 3, 4], 0, 4),
      hashBlockTokens(null, [1, 2, 3, 4], 0, 3),
      hashBlockTokens(null, [9, 1, 2, 3, 4], 1, 5) === base ? 'same-range-ok' : 'different',
      hashBlockTokens(base, [1, 2, 3, 4], 0, 4),
      hashBlockTokens(null, [1, 2, 3, 4 + 2 ** 32], 0, 4),
    ];
    assert.equal(variants[3], 'same-range-ok', 'only the range [start, end) counts');
    for (const v of [variants[0], variants[1], variants[2], variants[4], variants[5]])
      assert.notEqual(v, base);
  });

  it('spreads sequential inputs without collisions (10,000 single-token blocks)', () => {
    const seen = new Set<string>();
    for (let t = 0; t < 10_000; t++) seen.add(hashBlockTokens(null, [t], 0, 1));
    assert.equal(seen.size, 10_000);
  });
});

describe('extendBlockHashes', () => {
  it('hashes full blocks only, chaining each to the previous one, and extends incrementally', () => {
    const tokens = [5, 6, 7, 8, 9, 10, 11];
    const hashes: string[] = [];
    extendBlockHashes(hashes, tokens, 3);
    assert.equal(hashes.length, 2, 'the trailing partial block gets no hash');
    assert.equal(hashes[0], hashBlockTokens(null, tokens, 0, 3));
    assert.equal(hashes[1], hashBlockTokens(hashes[0]!, tokens, 3, 6));
    tokens.push(12, 13);
    extendBlockHashes(hashes, tokens, 3);
    assert.equal(hashes.length, 3);
    assert.equal(hashes[2], hashBlockTokens(hashes[1]!, tokens, 6, 9));
  });
});
