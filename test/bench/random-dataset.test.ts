// The random dataset builds prompts of exactly the requested token counts: every prompt's text re-encodes
// (without special tokens) to exactly its recorded length, the server's count (with BOS) is that plus one,
// lengths fall in vLLM's ranges, a shared prefix is token-for-token identical across prompts, and the
// dataset is a function of the seed. Checked on the tiny fixture's byte-level BPE (512 tokens, so random
// ids are mostly lone bytes and broken UTF-8: the hard case) and on the real DeepSeek-V3 tokenizer.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BenchRng } from '../../src/bench/bench-rng.js';
import { BenchArgumentError } from '../../src/bench/errors.js';
import { ExactLengthPromptBuilder } from '../../src/bench/exact-length-prompt.js';
import {
  numSpecialTokensToAdd,
  randomLengthRanges,
  sampleRandomDataset,
} from '../../src/bench/random-dataset.js';
import {
  deepseekV3TokenizerFiles,
  loadTokenizer,
  loadTokenizerFromFiles,
} from '../../src/tokenizer/tokenizer.js';
import { fixtureDir } from '../helpers/golden.js';

const tiny = loadTokenizer(fixtureDir('v2-lite-tiny'));
const noSpecial = { addSpecialTokens: false } as const;

describe('random dataset lengths', () => {
  test('vLLM ranges: floor/ceil around the length minus the special tokens; outputs at least 1', () => {
    const base = { inputLen: 1024, outputLen: 128, prefixLen: 0 };
    assert.deepEqual(randomLengthRanges({ ...base, rangeRatio: 0.1 }, 1), {
      inputLow: 920, // floor(1023 · 0.9)
      inputHigh: 1126, // ceil(1023 · 1.1)
      outputLow: 115,
      outputHigh: 141,
    });
    assert.deepEqual(randomLengthRanges({ ...base, rangeRatio: 0 }, 1), {
      inputLow: 1023,
      inputHigh: 1023,
      outputLow: 128,
      outputHigh: 128,
    });
    const one = randomLengthRanges({ inputLen: 4, outputLen: 1, prefixLen: 0, rangeRatio: 0.5 }, 1);
    assert.equal(one.outputLow, 1);
    assert.equal(one.outputHigh, 2);
  });

  test('refuses ratios outside [0, 1) and lengths that allow an empty prompt', () => {
    const base = { inputLen: 64, outputLen: 8, prefixLen: 0 };
    assert.throws(() => randomLengthRanges({ ...base, rangeRatio: 1 }, 1), /\[0, 1\)/);
    assert.throws(() => randomLengthRanges({ ...base, inputLen: 1, rangeRatio: 0 }, 1), /too small/);
    assert.doesNotThrow(() => randomLengthRanges({ ...base, inputLen: 1, prefixLen: 4, rangeRatio: 0 }, 1));
    assert.throws(() => randomLengthRanges({ ...base, outputLen: -1, rangeRatio: 0 }, 1), BenchArgumentError);
  });

  test('the DeepSeek tokenizers add one special token (BOS)', () => {
    assert.equal(numSpecialTokensToAdd(tiny), 1);
  });
});

describe('random dataset prompts (tiny byte-level BPE)', () => {
  test('200 prompts with range ratio 0.9: every one re-encodes to exactly its length', () => {
    const requests = sampleRandomDataset(tiny, {
      numPrompts: 200,
      inputLen: 40,
      outputLen: 10,
      rangeRatio: 0.9,
      prefixLen: 0,
      seed: 3,
      requestIdPrefix: 'x-',
      includeTokenIds: true,
    });
    const lens = new Set<number>();
    requests.forEach((r, i) => {
      assert.equal(tiny.encode(r.prompt, noSpecial).length, r.promptLen, `prompt ${i}`);
      assert.equal(tiny.encode(r.prompt).length, r.promptLen + 1); // what the server counts
      assert.deepEqual(r.promptTokenIds, tiny.encode(r.prompt));
      assert.ok(r.promptLen >= 3 && r.promptLen <= 75, `length ${r.promptLen}`); // floor(39·0.1), ceil(39·1.9)
      assert.ok(r.expectedOutputLen >= 1 && r.expectedOutputLen <= 19);
      assert.equal(r.requestId, `x-${i}`);
      lens.add(r.promptLen);
    });
    assert.ok(lens.size > 30, 'lengths spread over the range');
  });

  test('hostile seeds (lone bytes, broken UTF-8) of every length 1..64 come out exact', () => {
    const builder = new ExactLengthPromptBuilder(tiny, new BenchRng(5));
    assert.ok(builder.fillerTokenIds.length > 0);
    for (let n = 1; n <= 64; n++) {
      const seedIds = Array.from({ length: n }, (_, j) => 128 + ((j * 37) % 128));
      const p = builder.fromTokenIds(seedIds, n);
      assert.deepEqual(tiny.encode(p.text, noSpecial), p.tokenIds);
      assert.equal(p.tokenIds.length, n, `n = ${n}`);
    }
  });

  test('a shared prefix: every prompt starts with the same prefix tokens; prefix + input exact', () => {
    const requests = sampleRandomDataset(tiny, {
      numPrompts: 50,
      inputLen: 17,
      outputLen: 4,
      rangeRatio: 0,
      prefixLen: 24,
      seed: 0,
    });
    const prefix = tiny.encode(requests[0]!.prompt, noSpecial).slice(0, 24);
    for (const r of requests) {
      const ids = tiny.encode(r.prompt, noSpecial);
      assert.equal(ids.length, 24 + 16);
      assert.equal(r.promptLen, 40);
      assert.deepEqual(ids.slice(0, 24), prefix);
    }
  });

  test('the same seed gives the same dataset; another seed another', () => {
    const o = { numPrompts: 5, inputLen: 30, outputLen: 4, rangeRatio: 0.5, prefixLen: 0 };
    const a = sampleRandomDataset(tiny, { ...o, seed: 11 });
    const b = sampleRandomDataset(tiny, { ...o, seed: 11 });
    const c = sampleRandomDataset(tiny, { ...o, seed: 12 });
    assert.deepEqual(a, b);
    assert.notDeepEqual(
      a.map((r) => r.prompt),
      c.map((r) => r.prompt),
    );
  });
});

describe('random dataset prompts (DeepSeek-V3 tokenizer)', () => {
  const v3 = loadTokenizerFromFiles(deepseekV3TokenizerFiles());

  test('24 prompts of --random-input-len 1024 with a 64-token prefix: 64 + 1023 tokens each, BOS makes 1088', () => {
    assert.equal(numSpecialTokensToAdd(v3), 1);
    const requests = sampleRandomDataset(v3, {
      numPrompts: 24,
      inputLen: 1024,
      outputLen: 128,
      rangeRatio: 0,
      prefixLen: 64,
      seed: 0,
    });
    const prefix = v3.encode(requests[0]!.prompt, noSpecial).slice(0, 64);
    for (const r of requests) {
      const ids = v3.encode(r.prompt, noSpecial);
      assert.equal(ids.length, 64 + 1023);
      assert.equal(r.promptLen, 64 + 1023);
      assert.equal(v3.encode(r.prompt).length, 1088);
      assert.deepEqual(ids.slice(0, 64), prefix);
      assert.equal(r.expectedOutputLen, 128);
    }
  });
});
