// The log-prob shapes of the API built from engine log-probs: legacy completions (top dict holds the
// chosen token too, offsets continue across chunks), chat (top-k only, UTF-8 bytes), vLLM prompt_logprobs,
// and the -9999 floor that keeps -Infinity out of JSON.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TokenLogprobs } from '../../src/sampling/logprobs.js';
import {
  chatLogprobs,
  completionLogprobs,
  endOffset,
  MIN_LOGPROB,
  promptLogprobsOut,
  type TokenText,
} from '../../src/server/logprobs-format.js';

const NAMES: Record<number, string> = { 1: 'a', 2: 'bb', 3: 'é', 4: 'ccc' };
const text: TokenText = (id) => NAMES[id] ?? `token_id:${id}`;

function lp(tokenId: number, logprob: number, rank: number, top: [number, number][]): TokenLogprobs {
  return { tokenId, logprob, rank, topTokenIds: top.map(([id]) => id), topLogprobs: top.map(([, l]) => l) };
}

describe('completionLogprobs', () => {
  test('tokens, log-probs, top dicts with the chosen token, offsets from the start offset', () => {
    const out = completionLogprobs(
      [
        { tokenId: 1, logprobs: null },
        { tokenId: 2, logprobs: lp(2, -0.5, 1, [[2, -0.5]]) },
        {
          tokenId: 4,
          logprobs: lp(4, -3, 3, [
            [1, -0.1],
            [2, -1],
          ]),
        },
      ],
      text,
      10,
    );
    assert.deepEqual(out.tokens, ['a', 'bb', 'ccc']);
    assert.deepEqual(out.token_logprobs, [null, -0.5, -3]);
    assert.deepEqual(out.top_logprobs, [null, { bb: -0.5 }, { a: -0.1, bb: -1, ccc: -3 }]);
    assert.deepEqual(out.text_offset, [10, 11, 13]);
    assert.equal(endOffset(out, 10), 16);
    assert.equal(endOffset(completionLogprobs([], text, 7), 7), 7);
  });

  test('-Infinity and NaN become the -9999 floor', () => {
    const out = completionLogprobs(
      [{ tokenId: 1, logprobs: lp(1, Number.NEGATIVE_INFINITY, 9, [[2, Number.NaN]]) }],
      text,
      0,
    );
    assert.deepEqual(out.token_logprobs, [MIN_LOGPROB]);
    assert.deepEqual(out.top_logprobs[0], { bb: MIN_LOGPROB, a: MIN_LOGPROB });
    assert.ok(JSON.stringify(out).includes('-9999'));
  });
});

describe('chatLogprobs', () => {
  test('the chosen token, its bytes, and the first numTop candidates', () => {
    const [entry] = chatLogprobs(
      [
        lp(3, -0.25, 1, [
          [3, -0.25],
          [1, -2],
          [2, -3],
        ]),
      ],
      text,
      2,
    );
    assert.equal(entry!.token, 'é');
    assert.deepEqual(entry!.bytes, [0xc3, 0xa9]);
    assert.equal(entry!.logprob, -0.25);
    assert.deepEqual(
      entry!.top_logprobs.map((t) => [t.token, t.logprob]),
      [
        ['é', -0.25],
        ['a', -2],
      ],
    );
  });
});

describe('promptLogprobsOut', () => {
  test('null first, then the prompt token and the top-k keyed by id with ranks', () => {
    const out = promptLogprobsOut([null, lp(4, -2, 5, [[1, -0.5]])], text);
    assert.equal(out[0], null);
    assert.deepEqual(out[1], {
      '1': { logprob: -0.5, rank: 1, decoded_token: 'a' },
      '4': { logprob: -2, rank: 5, decoded_token: 'ccc' },
    });
  });
});
