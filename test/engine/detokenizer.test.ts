// Tests of the incremental detokenizer: characters split across byte-level tokens (the v2-lite-tiny
// tokenizer has single-byte tokens for all non-ASCII text; DeepSeek-V3 splits emoji) come out whole and
// only once complete, skip_special_tokens, ids outside the vocabulary, real U+FFFD, and small windows.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { IncrementalDetokenizer } from '../../src/engine/detokenizer.js';
import { SamplingRng } from '../../src/sampling/sampling-rng.js';
import {
  deepseekV3TokenizerFiles,
  loadTokenizer,
  loadTokenizerFromFiles,
  type Tokenizer,
} from '../../src/tokenizer/tokenizer.js';

const tiny = loadTokenizer(fileURLToPath(new URL('../../../test/fixtures/v2-lite-tiny/', import.meta.url)));

/** Feeds ids one by one; returns the deltas. */
function feed(detok: IncrementalDetokenizer, ids: readonly number[]): string[] {
  return ids.map((id) => detok.push(id));
}

/** Whether `s` holds a UTF-16 surrogate without its partner. */
function hasLoneSurrogate(s: string): boolean {
  return /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);
}

/**
 * Checks the stream of `text` through `tokenizer`: after each token the emitted text is exactly the
 * decoded prefix without the U+FFFD of a trailing incomplete character; nothing broken is ever emitted.
 */
function checkStream(tokenizer: Tokenizer, text: string): string[] {
  const ids = tokenizer.encode(text, { addSpecialTokens: false });
  const detok = new IncrementalDetokenizer(tokenizer);
  const deltas: string[] = [];
  ids.forEach((id, i) => {
    const delta = detok.push(id);
    deltas.push(delta);
    assert.ok(!delta.includes('\uFFFD'), `delta ${JSON.stringify(delta)} at token ${i} holds U+FFFD`);
    assert.ok(!hasLoneSurrogate(delta), `delta at token ${i} splits a surrogate pair`);
    const expected = tokenizer.decode(ids.slice(0, i + 1)).replace(/\uFFFD$/, '');
    assert.equal(detok.outputText, expected, `text after token ${i}`);
  });
  assert.equal(deltas.join(''), text);
  assert.equal(detok.flush(), '');
  return deltas;
}

describe('IncrementalDetokenizer', () => {
  it('emits multi-byte characters split over byte tokens only when complete', () => {
    const deltas = checkStream(tiny, 'café 日本語 こんにちは');
    // Ids 230, 151, 165 are the three bytes of '日': nothing, nothing, then the character.
    const ids = tiny.encode('日', { addSpecialTokens: false });
    assert.deepEqual(ids, [230, 151, 165]);
    assert.deepEqual(feed(new IncrementalDetokenizer(tiny), ids), ['', '', '日']);
    assert.ok(deltas.includes('日'));
  });

  it('emits 4-byte emoji (surrogate pairs) and ZWJ/modifier sequences whole', () => {
    checkStream(tiny, 'ok 😀👍🏽 👩‍💻 🇫🇷!');
    assert.deepEqual(feed(new IncrementalDetokenizer(tiny), [240, 159, 152, 128]), ['', '', '', '😀']);
  });

  it('handles DeepSeek-V3 tokens that end inside an emoji', () => {
    const v3 = loadTokenizerFromFiles(deepseekV3TokenizerFiles());
    const deltas = checkStream(v3, 'emoji 😀👍🏽 ok, 你好，世界！');
    assert.ok(deltas.includes(''), 'some token ends inside a character');
  });

  it('honours skip_special_tokens', () => {
    const ids = [500, ...tiny.encode('Hello', { addSpecialTokens: false }), 501];
    assert.equal(feed(new IncrementalDetokenizer(tiny), ids).join(''), 'Hello');
    assert.equal(
      feed(new IncrementalDetokenizer(tiny, { skipSpecialTokens: false }), ids).join(''),
      '<｜begin▁of▁sentence｜>Hello<｜end▁of▁sentence｜>',
    );
  });

  it('decodes ids outside the vocabulary (logit padding) to nothing', () => {
    const detok = new IncrementalDetokenizer(tiny);
    assert.deepEqual(feed(detok, [72, 512, 129000, 451]), ['H', '', '', 'ello']);
    assert.equal(detok.numTokens, 4);
  });

  it('continues after the prompt without repeating it', () => {
    const prompt = tiny.encode('Hello', { addSpecialTokens: true });
    const detok = new IncrementalDetokenizer(tiny, { promptTokenIds: prompt });
    const ids = tiny.encode(', world! 日本', { addSpecialTokens: false });
    assert.equal(feed(detok, ids).join(''), ', world! 日本');
  });

  it('emits a real U+FFFD and invalid bytes once they cannot be completed', () => {
    const withReplacement = tiny.encode('a\uFFFDb', { addSpecialTokens: false });
    assert.equal(feed(new IncrementalDetokenizer(tiny), withReplacement).join(''), 'a\uFFFDb');
    // A stray continuation byte (0x80) between ASCII letters is invalid UTF-8: one U+FFFD, as decode gives.
    assert.equal(feed(new IncrementalDetokenizer(tiny), [97, 128, 98]).join(''), tiny.decode([97, 128, 98]));
    // An incomplete character at the very end is held back, and shown as U+FFFD by flush().
    const detok = new IncrementalDetokenizer(tiny);
    assert.equal(feed(detok, [97, 230, 151]).join(''), 'a');
    assert.equal(detok.flush(), '\uFFFD');
    assert.equal(detok.outputText, 'a\uFFFD');
  });

  it('matches a full decode on random byte-level token streams, decoding only small windows', () => {
    let maxWindow = 0;
    const counting: Tokenizer = Object.create(tiny, {
      decode: {
        value: (ids: readonly number[], options?: Parameters<Tokenizer['decode']>[1]) => {
          maxWindow = Math.max(maxWindow, ids.length);
          return tiny.decode(ids, options);
        },
      },
    });
    for (const seed of [1, 2, 3]) {
      const rng = new SamplingRng(seed);
      const ids = Array.from({ length: 3000 }, () => rng.nextUint32() % 500);
      const detok = new IncrementalDetokenizer(counting);
      const text = feed(detok, ids).join('') + detok.flush();
      assert.equal(text, tiny.decode(ids));
      assert.ok(!hasLoneSurrogate(text));
    }
    // Random bytes rarely chain more than a few incomplete characters; the cap is 16 unread tokens.
    assert.ok(maxWindow <= 2 * 16, `largest decoded window: ${maxWindow} tokens`);
  });
});
