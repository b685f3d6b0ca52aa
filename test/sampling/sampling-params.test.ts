// Tests of sampling parameter resolution: vLLM defaults, generation_config.json overrides, greedy
// normalisation, and the named errors for every out-of-range field.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { samplingDefaultsFrom } from '../../src/engine/sampling-defaults.js';
import { parseGenerationConfig } from '../../src/loader/generation-config.js';
import {
  DEFAULT_SAMPLING_LIMITS,
  forkSamplingParams,
  isGreedy,
  resolveSamplingParams,
  SamplingParamsError,
  type SamplingParamsInput,
} from '../../src/sampling/sampling-params.js';
import { SamplingRng } from '../../src/sampling/sampling-rng.js';

const ctx = { vocabSize: 1000 };

describe('resolveSamplingParams', () => {
  it("fills vLLM's defaults", () => {
    assert.deepEqual(resolveSamplingParams({}, {}, ctx), {
      n: 1,
      temperature: 1,
      topP: 1,
      topK: 0,
      minP: 0,
      seed: null,
      presencePenalty: 0,
      frequencyPenalty: 0,
      repetitionPenalty: 1,
      stop: [],
      stopTokenIds: [],
      includeStopStrInOutput: false,
      ignoreEos: false,
      minTokens: 0,
      maxTokens: 16,
      logprobs: null,
      promptLogprobs: null,
      skipSpecialTokens: true,
      spacesBetweenSpecialTokens: true,
      logitBias: null,
    });
  });

  it('takes generation_config.json defaults under request values', () => {
    const defaults = samplingDefaultsFrom(
      parseGenerationConfig({
        temperature: 0.3,
        top_p: 0.95,
        top_k: 40,
        repetition_penalty: 1.1,
        max_new_tokens: 256,
        do_sample: true,
        bos_token_id: 0,
      }),
    );
    assert.deepEqual(defaults, {
      temperature: 0.3,
      topP: 0.95,
      topK: 40,
      repetitionPenalty: 1.1,
      maxTokens: 256,
    });
    const p = resolveSamplingParams({ topP: 0.5 }, defaults, ctx);
    assert.equal(p.temperature, 0.3);
    assert.equal(p.topP, 0.5);
    assert.equal(p.topK, 40);
    assert.equal(p.repetitionPenalty, 1.1);
    assert.equal(p.maxTokens, 256);
    assert.equal(resolveSamplingParams({ maxTokens: null }, defaults, ctx).maxTokens, null);
  });

  it('reads the fixtures generation_config.json (no sampling keys there)', () => {
    const path = fileURLToPath(
      new URL('../../../test/fixtures/v2-lite-tiny/generation_config.json', import.meta.url),
    );
    assert.deepEqual(samplingDefaultsFrom(parseGenerationConfig(JSON.parse(readFileSync(path, 'utf8')))), {});
  });

  it('switches top_p, top_k and min_p off for greedy requests, and maps top_k -1 to 0', () => {
    const p = resolveSamplingParams({ temperature: 0, topP: 0.5, topK: 5, minP: 0.1 }, {}, ctx);
    assert.ok(isGreedy(p));
    assert.deepEqual([p.topP, p.topK, p.minP], [1, 0, 0]);
    assert.equal(resolveSamplingParams({ topK: -1 }, {}, ctx).topK, 0);
  });

  it('normalises stop, and clamps logit_bias given with string keys', () => {
    const p = resolveSamplingParams({ stop: 'END', logitBias: { '5': 250, 7: -3 } }, {}, ctx);
    assert.deepEqual(p.stop, ['END']);
    assert.deepEqual(
      [...(p.logitBias ?? [])],
      [
        [5, 100],
        [7, -3],
      ],
    );
  });

  const bad: [SamplingParamsInput, string, RegExp][] = [
    [{ temperature: -1 }, 'temperature', /temperature must be non-negative, got -1\./],
    [{ temperature: Number.NaN }, 'temperature', /finite number/],
    [{ topP: 0 }, 'top_p', /top_p must be in \(0, 1\], got 0\./],
    [{ topP: 1.5 }, 'top_p', /\(0, 1\]/],
    [{ topK: -2 }, 'top_k', /top_k must be 0 or -1 \(disable\), or at least 1, got -2\./],
    [{ topK: 2.5 }, 'top_k', /integer/],
    [{ minP: 1.1 }, 'min_p', /min_p must be in \[0, 1\], got 1\.1\./],
    [{ presencePenalty: 3 }, 'presence_penalty', /\[-2, 2\], got 3\./],
    [{ frequencyPenalty: -2.5 }, 'frequency_penalty', /\[-2, 2\], got -2\.5\./],
    [{ repetitionPenalty: 0 }, 'repetition_penalty', /greater than zero, got 0\./],
    [{ n: 0 }, 'n', /n must be at least 1, got 0\./],
    [{ maxTokens: 0 }, 'max_tokens', /max_tokens must be at least 1, got 0\./],
    [{ minTokens: -1 }, 'min_tokens', /greater than or equal to 0, got -1\./],
    [{ minTokens: 20, maxTokens: 10 }, 'min_tokens', /less than or equal to max_tokens=10, got 20\./],
    [{ logprobs: 21 }, 'logprobs', /greater than max allowed: 20/],
    [{ promptLogprobs: -1 }, 'prompt_logprobs', /non-negative/],
    [{ stop: ['ok', ''] }, 'stop', /empty string/],
    [{ stopTokenIds: [1000] }, 'stop_token_ids', /out of vocabulary: ids must be in \[0, 999\]/],
    [{ logitBias: { abc: 1 } }, 'logit_bias', /token id abc/],
    [{ logitBias: { 3: Number.POSITIVE_INFINITY } }, 'logit_bias', /logit_bias\[3\] must be a finite number/],
    [{ seed: 1.5 }, 'seed', /seed must be an integer/],
  ];
  for (const [input, field, message] of bad) {
    it(`rejects ${JSON.stringify(input)} naming ${field}`, () => {
      assert.throws(
        () => resolveSamplingParams(input, {}, ctx),
        (err: unknown) =>
          err instanceof SamplingParamsError && err.field === field && message.test(err.message),
      );
    });
  }

  it('checks that prompt + max_tokens fit the context', () => {
    const limits = { vocabSize: 1000, maxModelLen: 256, numPromptTokens: 200 };
    assert.equal(resolveSamplingParams({ maxTokens: 56 }, {}, limits).maxTokens, 56);
    assert.throws(
      () => resolveSamplingParams({ maxTokens: 57 }, {}, limits),
      (err: unknown) =>
        err instanceof SamplingParamsError &&
        err.field === 'max_tokens' &&
        /maximum context length is 256/.test(err.message),
    );
  });
});

describe('forkSamplingParams', () => {
  it('gives completion i of a seeded request seed + i', () => {
    const p = resolveSamplingParams({ n: 3, seed: 10 }, {}, ctx);
    assert.deepEqual(
      [0, 1, 2].map((i) => forkSamplingParams(p, i)).map((c) => [c.n, c.seed]),
      [
        [1, 10],
        [1, 11],
        [1, 12],
      ],
    );
    assert.equal(forkSamplingParams(resolveSamplingParams({ n: 2 }, {}, ctx), 1).seed, null);
  });
});

describe('SamplingRng', () => {
  it('repeats for equal seeds, differs for different ones (large and negative included)', () => {
    for (const seed of [0, 1, -7, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER]) {
      const a = new SamplingRng(seed);
      const b = new SamplingRng(seed);
      const xs = Array.from({ length: 8 }, () => a.nextFloat());
      assert.deepEqual(
        Array.from({ length: 8 }, () => b.nextFloat()),
        xs,
      );
      assert.ok(xs.every((x) => x >= 0 && x < 1));
    }
    assert.notEqual(new SamplingRng(2 ** 40).nextUint32(), new SamplingRng(0).nextUint32());
  });

  it('is uniform: mean and decile counts of 100000 draws', () => {
    const rng = new SamplingRng(123);
    const n = 100000;
    const deciles = new Array<number>(10).fill(0);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      const x = rng.nextFloat();
      sum += x;
      deciles[Math.floor(x * 10)]!++;
    }
    // Mean of U(0,1): standard deviation sqrt(1/12/n) ≈ 0.0009; allow 5 of them.
    assert.ok(Math.abs(sum / n - 0.5) < 0.0046);
    // Each decile count: binomial(n, 0.1), standard deviation ≈ 95; allow 5 of them.
    for (const c of deciles) assert.ok(Math.abs(c - n / 10) < 475, `decile count ${c}`);
  });
});

describe('finding 3: sampling fields are bounded for the offline LLM API and the server alike', () => {
  const limits = DEFAULT_SAMPLING_LIMITS;
  const rejects = (input: SamplingParamsInput, field: string, message: RegExp) =>
    assert.throws(
      () => resolveSamplingParams(input, {}, ctx),
      (e: unknown) => e instanceof SamplingParamsError && e.field === field && message.test(e.message),
    );

  it('accepts every field at its limit', () => {
    const p = resolveSamplingParams(
      {
        n: limits.maxN,
        stop: Array.from({ length: limits.maxStopStrings }, (_, i) =>
          `${i}`.padEnd(limits.maxStopStringLength, 'x'),
        ),
        stopTokenIds: Array.from({ length: limits.maxStopTokenIds }, (_, i) => i % 1000),
        logitBias: Object.fromEntries(Array.from({ length: limits.maxLogitBias }, (_, i) => [i % 1000, 1])),
      },
      {},
      { vocabSize: 1000 },
    );
    assert.equal(p.n, limits.maxN);
    assert.equal(p.stop.length, limits.maxStopStrings);
  });

  it('refuses one more than each limit, naming the field, the limit and its flag', () => {
    rejects({ n: limits.maxN + 1 }, 'n', new RegExp(`at most ${limits.maxN} .*--max-n`));
    rejects(
      { stop: Array.from({ length: limits.maxStopStrings + 1 }, (_, i) => `s${i}`) },
      'stop',
      new RegExp(
        `${limits.maxStopStrings + 1} strings; at most ${limits.maxStopStrings} .*--max-stop-strings`,
      ),
    );
    rejects(
      { stop: 'x'.repeat(limits.maxStopStringLength + 1) },
      'stop',
      new RegExp(`at most ${limits.maxStopStringLength} .*--max-stop-string-len`),
    );
    rejects(
      { stopTokenIds: Array.from({ length: limits.maxStopTokenIds + 1 }, () => 1) },
      'stop_token_ids',
      /at most 1024 .*--max-stop-token-ids/,
    );
    rejects(
      { logitBias: Object.fromEntries(Array.from({ length: limits.maxLogitBias + 1 }, (_, i) => [i, 1])) },
      'logit_bias',
      /at most 1024 .*--max-logit-bias/,
    );
  });

  it('1.5 million stop strings are refused at once, before any is looked at', () => {
    const stop = new Array<string>(1_500_000).fill('a');
    const started = performance.now();
    rejects({ stop }, 'stop', /1500000 strings/);
    // Generous: counting is O(1); the bound only guards against walking the list on a loaded machine.
    assert.ok(performance.now() - started < 250);
  });

  it('a context may set other limits', () => {
    const tight = { ...limits, maxN: 2 };
    assert.throws(() => resolveSamplingParams({ n: 3 }, {}, { vocabSize: 10, limits: tight }), /at most 2/);
    assert.equal(resolveSamplingParams({ n: 2 }, {}, { vocabSize: 10, limits: tight }).n, 2);
  });
});
