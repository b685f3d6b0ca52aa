// Tests of the sampler: greedy = argmax, seeded streams reproducible and independent of the batch,
// top-k / top-p / min-p / temperature checked on sample frequencies of known distributions, the exact
// effect of logit_bias and the penalties, min_tokens, and raw logprobs equal to log_softmax.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createWasmKernels } from '../../src/platforms/cpu/wasm-kernels.js';
import { applyLogitsProcessors } from '../../src/sampling/logits-processors.js';
import { argmax, Sampler } from '../../src/sampling/sampler.js';
import { resolveSamplingParams, type SamplingParamsInput } from '../../src/sampling/sampling-params.js';
import { createRequestRng, SamplingRng } from '../../src/sampling/sampling-rng.js';
import { RequestSamplingState } from '../../src/sampling/sampling-state.js';

function makeState(
  input: SamplingParamsInput,
  vocabSize: number,
  options: { seed?: number; promptTokenIds?: number[]; eosTokenIds?: number[] } = {},
): RequestSamplingState {
  const params = resolveSamplingParams({ maxTokens: null, ...input }, {}, { vocabSize });
  return new RequestSamplingState(params, new SamplingRng(params.seed ?? options.seed ?? 0), {
    promptTokenIds: options.promptTokenIds ?? [],
    eosTokenIds: options.eosTokenIds ?? [],
  });
}

/** Deterministic pseudo-normal logits (sum of uniforms), scaled. */
function randomLogits(n: number, seed: number, scale = 3): Float32Array {
  const rng = new SamplingRng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++)
    out[i] = (rng.nextFloat() + rng.nextFloat() + rng.nextFloat() - 1.5) * 2 * scale;
  return out;
}

function logitsOf(probs: readonly number[]): Float32Array {
  return Float32Array.from(probs, (p) => Math.log(p));
}

/** Samples `n` times from one row with `state` (never appending outputs) and returns the counts per id. */
function sampleCounts(sampler: Sampler, row: Float32Array, state: RequestSamplingState, n: number): number[] {
  const counts = new Array<number>(row.length).fill(0);
  for (let i = 0; i < n; i++) counts[sampler.sample(row, [state]).sampledTokenIds[0]!]!++;
  return counts;
}

/**
 * Checks observed frequencies against expected probabilities: |count/n - p| ≤ 5 binomial standard deviations
 * (sqrt(p(1-p)/n)), a false failure chance below 1e-6 per id; ids with p = 0 must never appear. The
 * streams are seeded, so a pass or a failure is also reproducible.
 */
function assertFrequencies(counts: readonly number[], expected: readonly number[], n: number): void {
  for (let i = 0; i < expected.length; i++) {
    const p = expected[i]!;
    const c = counts[i]!;
    if (p === 0) {
      assert.equal(c, 0, `id ${i} is excluded but was sampled ${c} times`);
      continue;
    }
    const sigma = Math.sqrt((p * (1 - p)) / n);
    assert.ok(Math.abs(c / n - p) <= 5 * sigma, `id ${i}: frequency ${c / n}, expected ${p} ± ${5 * sigma}`);
  }
}

function normalise(weights: readonly number[]): number[] {
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / total);
}

const PROBS = [0.4, 0.25, 0.15, 0.1, 0.05, 0.03, 0.015, 0.005];
const N = 20000;

describe('greedy', () => {
  it('returns the argmax of every row, ties to the lowest id', () => {
    const V = 1000;
    const sampler = new Sampler(V);
    const numRows = 6;
    const logits = randomLogits(numRows * V, 7);
    logits[3 * V + 10] = 100;
    logits[3 * V + 20] = 100; // a tie in row 3: id 10 wins
    const states = Array.from({ length: numRows }, () => makeState({ temperature: 0 }, V));
    const out = sampler.sample(logits, states);
    for (let r = 0; r < numRows; r++) {
      const row = logits.subarray(r * V, (r + 1) * V);
      let best = 0;
      for (let i = 1; i < V; i++) if (row[i]! > row[best]!) best = i;
      assert.equal(out.sampledTokenIds[r], best);
    }
    assert.equal(out.sampledTokenIds[3], 10);
    assert.equal(argmax(Float32Array.of(1, 3, 3, 2)), 1);
  });

  it('uses the argmax it is given (the kernels SIMD one), after the logits processors', async () => {
    const V = 129280;
    const kernels = await createWasmKernels({ numThreads: 1 });
    try {
      const idx = new Int32Array(1);
      let calls = 0;
      const sampler = new Sampler(V, {
        argmax: (row) => {
          calls++;
          kernels.argmax(idx, row, 1, row.length);
          return idx[0]!;
        },
      });
      const row = randomLogits(V, 5);
      row[777] = 40;
      row[4242] = 41;
      // The bias makes 777 the largest: the argmax must see the processed row.
      const state = makeState({ temperature: 0, logitBias: { 777: 5 } }, V);
      assert.equal(sampler.sample(row, [state]).sampledTokenIds[0], 777);
      assert.equal(calls, 1);
      assert.equal(row[777], 40, 'the bias is undone');
    } finally {
      await kernels.dispose();
    }
  });

  it('works on a DeepSeek-V3-sized row and leaves the logits unchanged', () => {
    const V = 129280;
    const sampler = new Sampler(V);
    const row = randomLogits(V, 3);
    row[128000] = 50;
    const copy = row.slice();
    const state = makeState({ temperature: 0, repetitionPenalty: 1.3, logitBias: { 5: 1 } }, V, {
      promptTokenIds: [1, 2, 128000],
    });
    assert.equal(sampler.sample(row, [state]).sampledTokenIds[0], 128000);
    assert.deepEqual(row, copy);
  });
});

describe('seeded sampling', () => {
  const V = 1000;

  /** Runs `steps` decoding steps of a batch; returns each request's sampled ids. */
  function run(
    batch: RequestSamplingState[],
    steps: number,
    logitsSeed: (step: number, r: number) => number,
  ): number[][] {
    const sampler = new Sampler(V);
    const out = batch.map(() => [] as number[]);
    for (let step = 0; step < steps; step++) {
      const logits = new Float32Array(batch.length * V);
      for (let r = 0; r < batch.length; r++) logits.set(randomLogits(V, logitsSeed(step, r), 1), r * V);
      const { sampledTokenIds } = sampler.sample(logits, batch);
      batch.forEach((state, r) => {
        const id = sampledTokenIds[r]!;
        state.appendOutputToken(id);
        out[r]!.push(id);
      });
    }
    return out;
  }

  it('is reproducible and independent of which requests share the batch', () => {
    const params: SamplingParamsInput = { temperature: 0.9, topP: 0.95, seed: 42, presencePenalty: 0.5 };
    // Request A sees the same logits at each step in both runs (seeded by step only).
    const alone = run([makeState(params, V)], 30, (step) => 1000 + step)[0]!;
    const crowded = run(
      [
        makeState({ temperature: 1.2, seed: 7 }, V),
        makeState(params, V),
        makeState({ temperature: 0 }, V),
        makeState({ temperature: 0.5, topK: 5 }, V, { seed: 99 }),
      ],
      30,
      (step, r) => (r === 1 ? 1000 + step : 5000 + 10 * step + r),
    )[1]!;
    assert.deepEqual(crowded, alone);
    const otherSeed = run([makeState({ ...params, seed: 43 }, V)], 30, (step) => 1000 + step)[0]!;
    assert.notDeepEqual(otherSeed, alone);
  });

  it('gives unseeded requests reproducible streams from the engine seed', () => {
    const streams = (engineSeed: number): number[][] => {
      const engineRng = new SamplingRng(engineSeed);
      const batch = [0, 1, 2].map(() => {
        const params = resolveSamplingParams({ temperature: 1, maxTokens: null }, {}, { vocabSize: V });
        return new RequestSamplingState(params, createRequestRng(null, engineRng), {
          promptTokenIds: [],
          eosTokenIds: [],
        });
      });
      return run(batch, 20, (step) => 300 + step);
    };
    const a = streams(1);
    assert.deepEqual(streams(1), a);
    assert.notDeepEqual(a[0], a[1], 'requests drawing from the engine generator get different streams');
    assert.notDeepEqual(streams(2), a);
  });
});

describe('sampling distributions', () => {
  const V = PROBS.length;
  const sampler = new Sampler(V);
  const row = logitsOf(PROBS);

  it('samples the softmax distribution at temperature 1', () => {
    assertFrequencies(sampleCounts(sampler, row, makeState({ seed: 1 }, V), N), PROBS, N);
  });

  it('sharpens with temperature 0.5 (p^2, renormalised)', () => {
    const expected = normalise(PROBS.map((p) => p * p));
    assertFrequencies(
      sampleCounts(sampler, row, makeState({ seed: 2, temperature: 0.5 }, V), N),
      expected,
      N,
    );
  });

  it('keeps only the top_k most likely', () => {
    const expected = normalise(PROBS.map((p, i) => (i < 3 ? p : 0)));
    assertFrequencies(sampleCounts(sampler, row, makeState({ seed: 3, topK: 3 }, V), N), expected, N);
  });

  it('keeps the smallest set reaching top_p', () => {
    // Cumulative mass before ids 0, 1, 2: 0, 0.40, 0.65; with top_p 0.6 ids 0 and 1 stay.
    const expected = normalise(PROBS.map((p, i) => (i < 2 ? p : 0)));
    assertFrequencies(sampleCounts(sampler, row, makeState({ seed: 4, topP: 0.6 }, V), N), expected, N);
  });

  it('keeps tokens at least min_p times the most likely', () => {
    // 0.2 · 0.4 = 0.08: ids 0-3 (p ≥ 0.1) stay, id 4 (0.05) goes.
    const expected = normalise(PROBS.map((p, i) => (i < 4 ? p : 0)));
    assertFrequencies(sampleCounts(sampler, row, makeState({ seed: 5, minP: 0.2 }, V), N), expected, N);
  });

  it('applies top_p to what min_p left (vLLM order: min_p, then top_k/top_p)', () => {
    // min_p 0.3 keeps ids 0-2 (mass 0.8 → 0.5, 0.3125, 0.1875); top_p 0.8 then keeps ids 0 and 1
    // (mass before id 2 is 0.8125). On the full distribution top_p 0.8 would have kept id 2.
    const expected = normalise(PROBS.map((p, i) => (i < 2 ? p : 0)));
    assertFrequencies(
      sampleCounts(sampler, row, makeState({ seed: 6, minP: 0.3, topP: 0.8 }, V), N),
      expected,
      N,
    );
  });

  it('combines temperature, top_k and top_p', () => {
    // T = 0.5 → p^2 normalised: 0.5783, 0.2259, 0.0813, 0.0361, ...; top_k 3 → 0.6615, 0.2584, 0.0930;
    // top_p 0.9: mass before id 2 is 0.9199 ≥ 0.9, so ids 0 and 1 stay.
    const expected = normalise(PROBS.map((p, i) => (i < 2 ? p * p : 0)));
    const state = makeState({ seed: 8, temperature: 0.5, topK: 3, topP: 0.9 }, V);
    assertFrequencies(sampleCounts(sampler, row, state, N), expected, N);
  });

  it('finds a small nucleus in a DeepSeek-V3-sized flat tail', () => {
    // ids 5, 77, 100000 have logits 10, 9.5, 9 over 129277 zeros: masses e^10 : e^9.5 : e^9 : 129277.
    // Mass before id 100000 is (e^10 + e^9.5) / Z = 0.2048 ≥ 0.2, so the nucleus of top_p 0.2 is {5, 77}.
    const big = 129280;
    const bigRow = new Float32Array(big);
    bigRow[5] = 10;
    bigRow[77] = 9.5;
    bigRow[100000] = 9;
    const bigSampler = new Sampler(big);
    const state = makeState({ seed: 9, topP: 0.2 }, big);
    const n = 600;
    let n5 = 0;
    for (let i = 0; i < n; i++) {
      const id = bigSampler.sample(bigRow, [state]).sampledTokenIds[0]!;
      assert.ok(id === 5 || id === 77, `sampled ${id} outside the nucleus {5, 77}`);
      if (id === 5) n5++;
    }
    const p5 = Math.exp(10) / (Math.exp(10) + Math.exp(9.5));
    assert.ok(
      Math.abs(n5 / n - p5) <= 5 * Math.sqrt((p5 * (1 - p5)) / n),
      `frequency of id 5: ${n5 / n}, expected ${p5}`,
    );
  });

  it('samples only within the true top_k and top_p sets of random large rows', () => {
    const big = 129280;
    const bigSampler = new Sampler(big);
    for (const seed of [11]) {
      const bigRow = randomLogits(big, seed, 2);
      const order = Array.from(bigRow.keys()).sort((a, b) => bigRow[b]! - bigRow[a]! || a - b);
      // k = 50 takes the sorted-buffer path, k = 500 the quickselect path.
      for (const k of [50, 500]) {
        const topK = new Set(order.slice(0, k));
        const stateK = makeState({ seed, topK: k, temperature: 5 }, big);
        const seen = new Set<number>();
        for (let i = 0; i < 200; i++) {
          const id = bigSampler.sample(bigRow, [stateK]).sampledTokenIds[0]!;
          assert.ok(topK.has(id), `id ${id} is outside the top ${k}`);
          seen.add(id);
        }
        assert.ok(
          seen.size > Math.min(k, 200) / 4,
          `samples spread over the top ${k} (${seen.size} distinct)`,
        );
      }

      // The exact nucleus for top_p 0.5 from a full sort in float64.
      const max = bigRow[order[0]!]!;
      const weights = order.map((id) => Math.exp(bigRow[id]! - max));
      const total = weights.reduce((a, b) => a + b, 0);
      const nucleus = new Set<number>();
      let before = 0;
      for (let j = 0; j < order.length && before < 0.5 * total; j++) {
        nucleus.add(order[j]!);
        before += weights[j]!;
      }
      const stateP = makeState({ seed, topP: 0.5 }, big);
      const seen = new Set<number>();
      for (let i = 0; i < 200; i++) {
        const id = bigSampler.sample(bigRow, [stateP]).sampledTokenIds[0]!;
        assert.ok(nucleus.has(id), `id ${id} is outside the top_p 0.5 nucleus of ${nucleus.size} ids`);
        seen.add(id);
      }
      assert.ok(seen.size > 10, 'samples spread over the nucleus');
    }
  });
});

describe('logits processors', () => {
  const V = 8;
  const base = Float32Array.of(1.5, -2, 0.75, 3, -0.5, 0, 2, -1);

  it('apply logit_bias, then repetition on prompt + output, then frequency and presence on output', () => {
    const state = makeState(
      { repetitionPenalty: 2, frequencyPenalty: 0.5, presencePenalty: 0.25, logitBias: { 6: -1, 7: 3 } },
      V,
      { promptTokenIds: [0, 1, 1] },
    );
    for (const id of [3, 4, 3]) state.appendOutputToken(id);
    const row = base.slice();
    applyLogitsProcessors(row, state);
    const f = Math.fround;
    const expected = [
      f(1.5 / 2), // prompt, positive: divided
      f(-2 * 2), // prompt, negative: multiplied
      0.75, // untouched
      f(f(3 / 2) - 0.5 * 2 - 0.25), // output twice: repetition, then 2 × frequency + presence
      f(f(-0.5 * 2) - 0.5 - 0.25), // output once
      0,
      f(2 - 1), // bias only
      f(-1 + 3), // bias only
    ];
    assert.deepEqual(Array.from(row), expected);
  });

  it('logit_bias steers greedy sampling, clamped to [-100, 100]', () => {
    const sampler = new Sampler(V);
    const state = makeState({ temperature: 0, logitBias: { '1': 1000 } }, V);
    const row = base.slice();
    const copy = row.slice();
    applyLogitsProcessors(copy, state);
    assert.equal(copy[1], -2 + 100);
    assert.equal(sampler.sample(row, [state]).sampledTokenIds[0], 1);
  });

  it('min_tokens masks EOS and stop_token_ids until enough tokens exist', () => {
    const sampler = new Sampler(V);
    const eos = 3;
    const state = makeState({ temperature: 0, minTokens: 3, stopTokenIds: [6] }, V, { eosTokenIds: [eos] });
    const picks: number[] = [];
    for (let step = 0; step < 5; step++) {
      const id = sampler.sample(base.slice(), [state]).sampledTokenIds[0]!;
      picks.push(id);
      state.appendOutputToken(id);
    }
    // id 3 (EOS, 3.0) and id 6 (stop token, 2.0) are blocked for 3 tokens, so id 0 (1.5) wins until then.
    assert.deepEqual(picks, [0, 0, 0, eos, eos]);
  });

  it('ignore_eos leaves EOS unmasked under min_tokens', () => {
    const state = makeState({ minTokens: 2, ignoreEos: true }, V, { eosTokenIds: [3] });
    const row = base.slice();
    applyLogitsProcessors(row, state);
    assert.deepEqual(row, base);
  });
});

describe('logprobs', () => {
  /** log_softmax in float64, computed as log(p) with p = exp(l) / Σ exp(l). */
  function logSoftmax(row: Float32Array): number[] {
    const max = Math.max(...row);
    const exps = Array.from(row, (v) => Math.exp(v - max));
    const total = exps.reduce((a, b) => a + b, 0);
    return exps.map((e) => Math.log(e / total));
  }

  it('reports the sampled token and top-K from the raw distribution, sorted, ties by id', () => {
    const V = 500;
    const sampler = new Sampler(V);
    const row = randomLogits(V, 21);
    row[10] = 12;
    row[11] = 12; // the two most likely, tied: 10 before 11
    const expected = logSoftmax(row);
    // Penalties, bias and temperature change what is sampled, never the reported (raw) logprobs.
    const state = makeState(
      { seed: 5, temperature: 0.7, logprobs: 5, repetitionPenalty: 1.5, logitBias: { 10: -50, 11: -50 } },
      V,
      { promptTokenIds: [1, 2, 3] },
    );
    const out = sampler.sample(row, [state]);
    const lp = out.logprobs[0]!;
    const sampled = out.sampledTokenIds[0]!;
    assert.equal(lp.tokenId, sampled);
    // Tolerance 1e-9: both are float64 computations over the same float32 logits; only summation order differs.
    assert.ok(Math.abs(lp.logprob - expected[sampled]!) < 1e-9);
    const order = Array.from(row.keys()).sort((a, b) => expected[b]! - expected[a]! || a - b);
    assert.deepEqual(lp.topTokenIds, order.slice(0, 5));
    assert.deepEqual(lp.topTokenIds.slice(0, 2), [10, 11]);
    for (const [j, v] of lp.topLogprobs.entries()) assert.ok(Math.abs(v - expected[order[j]!]!) < 1e-9);
    assert.equal(lp.rank, order.indexOf(sampled) + 1);
  });

  it('returns no logprobs when not asked, and only the sampled one for logprobs 0', () => {
    const V = 16;
    const sampler = new Sampler(V);
    const row = randomLogits(V, 4);
    const out = sampler.sample(Float32Array.from([...row, ...row]), [
      makeState({ temperature: 0 }, V),
      makeState({ temperature: 0, logprobs: 0 }, V),
    ]);
    assert.equal(out.logprobs[0], null);
    assert.deepEqual(out.logprobs[1]!.topTokenIds, []);
    assert.equal(out.logprobs[1]!.rank, 1);
    assert.ok(Math.abs(out.logprobs[1]!.logprob - logSoftmax(row)[out.sampledTokenIds[1]!]!) < 1e-9);
  });
});
