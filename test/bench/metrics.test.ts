// calculateMetrics on synthetic request timings against hand-computed values: token totals, throughput,
// TPOT = (E2EL − TTFT)/(tokens − 1), TTFT/ITL/E2EL summaries, goodput, the tokenizer fallback for output
// counts, peak token rate and peak concurrency. Tolerance 1e-9 (float rounding of ms conversions).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { calculateMetrics, parseGoodput, peakRates } from '../../src/bench/metrics.js';
import { emptyOutput, type RequestFuncOutput } from '../../src/bench/request-func.js';

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

function ok(o: Partial<RequestFuncOutput>): RequestFuncOutput {
  return { ...emptyOutput(0), success: true, ...o };
}

// A: 4 tokens, TPOT (0.3 − 0.1)/3; B: 1 token (no TPOT); C: usage missing, 3 tokens by the tokenizer,
// TPOT (0.6 − 0.3)/2; D: failed.
const outputs: RequestFuncOutput[] = [
  ok({ startTime: 0, ttft: 0.1, itl: [0.05, 0.05, 0.1], latency: 0.3, outputTokens: 4, promptLen: 10 }),
  ok({ startTime: 0.2, ttft: 0.2, itl: [], latency: 0.2, outputTokens: 1, promptLen: 20 }),
  ok({ startTime: 0.5, ttft: 0.3, itl: [0.1, 0.2], latency: 0.6, generatedText: 'x y z', promptLen: 30 }),
  { ...emptyOutput(5), error: 'boom' },
];
const countTokens = (text: string) => text.split(' ').length;

describe('calculateMetrics', () => {
  const { metrics: m, actualOutputLens } = calculateMetrics(outputs, 2.0, countTokens, [50, 99]);

  test('counts, totals and throughput', () => {
    assert.equal(m.completed, 3);
    assert.equal(m.failed, 1);
    assert.equal(m.totalInput, 60); // the failed request's prompt is not counted
    assert.equal(m.totalOutput, 8);
    assert.deepEqual(actualOutputLens, [4, 1, 3, 0]);
    close(m.requestThroughput, 1.5);
    close(m.outputThroughput, 4);
    close(m.totalTokenThroughput, 34);
    assert.equal(m.requestGoodput, 0);
  });

  test('TTFT, TPOT, ITL and E2EL summaries in ms', () => {
    close(m.ttft.mean, 200);
    close(m.ttft.median, 200);
    close(m.ttft.std, Math.sqrt(0.02 / 3) * 1000);
    assert.deepEqual(
      m.ttft.percentiles.map(([p]) => p),
      [50, 99],
    );
    close(m.ttft.percentiles[1]![1], 298); // rank 1.98 of [100, 200, 300]
    const tpotA = (0.3 - 0.1) / 3;
    const tpotC = (0.6 - 0.3) / 2;
    close(m.tpot.mean, ((tpotA + tpotC) / 2) * 1000);
    close(m.tpot.std, ((tpotC - tpotA) / 2) * 1000);
    close(m.tpot.percentiles[1]![1], (tpotA + 0.99 * (tpotC - tpotA)) * 1000);
    close(m.itl.mean, 100); // [50, 50, 100, 100, 200]
    close(m.itl.median, 100);
    close(m.itl.percentiles[1]![1], 196); // rank 3.96
    close(m.e2el.mean, (1.1 / 3) * 1000);
    close(m.e2el.median, 300);
  });

  test('goodput counts the requests meeting every objective (one-token requests have TPOT 0)', () => {
    const both = calculateMetrics(outputs, 2.0, countTokens, [99], parseGoodput(['ttft:250', 'tpot:100']));
    close(both.metrics.requestGoodput, 2 / 2.0); // A and B; C's TTFT 300 ms misses
    const e2el = calculateMetrics(outputs, 2.0, countTokens, [99], parseGoodput(['e2el:250']));
    close(e2el.metrics.requestGoodput, 1 / 2.0); // only B (200 ms)
    const edge = calculateMetrics(outputs, 2.0, countTokens, [99], parseGoodput(['ttft:300']));
    close(edge.metrics.requestGoodput, 3 / 2.0); // an objective equal to the value is met
  });

  test('peak output tokens per second and peak concurrency', () => {
    // token times: A 0.1 0.15 0.2 0.3, B 0.4, C 0.8 0.9 1.1 → second 0 holds 7, second 1 holds 1
    assert.equal(m.maxOutputTokensPerS, 7);
    assert.equal(m.maxConcurrentRequests, 2); // A [0, 0.3) overlaps B [0.2, 0.4); C starts at 0.5
    const touching = peakRates([ok({ startTime: 0, latency: 1 }), ok({ startTime: 1, latency: 1 })]);
    assert.equal(touching.maxConcurrentRequests, 1); // half-open intervals
    const nested = peakRates([
      ok({ startTime: 0, latency: 2 }),
      ok({ startTime: 0.5, latency: 0.5 }),
      ok({ startTime: 0.7, latency: 0.1 }),
    ]);
    assert.equal(nested.maxConcurrentRequests, 3);
  });

  test('all failed: zeros, no NaN', () => {
    const { metrics } = calculateMetrics([{ ...emptyOutput(3), error: 'x' }], 1, countTokens, [99]);
    assert.equal(metrics.completed, 0);
    assert.equal(metrics.ttft.mean, 0);
    assert.equal(metrics.ttft.percentiles[0]![1], 0);
    assert.equal(metrics.maxConcurrentRequests, 0);
  });
});

describe('parseGoodput', () => {
  test('KEY:VALUE pairs in ms', () => {
    assert.deepEqual(parseGoodput(['ttft:500', 'tpot:50', 'e2el:1e4']), { ttft: 500, tpot: 50, e2el: 10000 });
  });
  test('bad pairs name the problem', () => {
    assert.throws(() => parseGoodput(['ttft=500']), /KEY:VALUE/);
    assert.throws(() => parseGoodput(['itl:5']), /one of ttft, tpot, e2el/);
    assert.throws(() => parseGoodput(['ttft:-1']), />= 0/);
    assert.throws(() => parseGoodput(['ttft:']), /KEY:VALUE/);
  });
});
