// The arrival process, seeded: gamma inter-arrival draws have mean 1/rate and squared coefficient of
// variation 1/burstiness (exponential, i.e. Poisson arrivals, at burstiness 1), and the schedule is
// rescaled so the last request leaves at exactly N/rate, as vLLM does.
// Tolerances: with n = 200 000 draws the standard error of the mean is CV/√n ≤ 0.32 %, of the sample
// variance ≤ √((kurtosis − 1)/n) ≤ 0.84 % (burstiness 0.5): 1.5 % and 4 % are over 4 standard errors.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { arrivalSchedule, drawInterArrival } from '../../src/bench/arrivals.js';
import { BenchRng } from '../../src/bench/bench-rng.js';
import { BenchArgumentError } from '../../src/bench/errors.js';

const N = 200_000;

function moments(values: readonly number[]): { mean: number; variance: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return { mean, variance };
}

describe('inter-arrival times', () => {
  for (const burstiness of [0.5, 1, 2, 4]) {
    test(`rate 5, burstiness ${burstiness}: mean 1/rate within 1.5 %, CV² = 1/burstiness within 4 %`, () => {
      const rng = new BenchRng(1234, 1);
      const gaps = Array.from({ length: N }, () => drawInterArrival(rng, 5, burstiness));
      const { mean, variance } = moments(gaps);
      assert.ok(Math.abs(mean / 0.2 - 1) < 0.015, `mean ${mean}`);
      const cv2 = variance / (mean * mean);
      assert.ok(Math.abs(cv2 * burstiness - 1) < 0.04, `CV² ${cv2}`);
      assert.ok(gaps.every((g) => g > 0));
    });
  }

  test('burstiness 1 is exponential: P(gap > mean) = e^-1 within 0.01', () => {
    const rng = new BenchRng(7, 1);
    const gaps = Array.from({ length: N }, () => drawInterArrival(rng, 2, 1));
    const above = gaps.filter((g) => g > 0.5).length / N;
    assert.ok(Math.abs(above - Math.exp(-1)) < 0.01, `${above}`); // s.e. 0.0011
  });

  test('inf rate: no gaps; inf burstiness: constant gaps', () => {
    const rng = new BenchRng(0);
    assert.equal(drawInterArrival(rng, Number.POSITIVE_INFINITY, 1), 0);
    assert.equal(drawInterArrival(rng, 4, Number.POSITIVE_INFINITY), 0.25);
  });
});

describe('arrivalSchedule', () => {
  test('rescaled so the last request leaves at N/rate; non-decreasing; seeded', () => {
    const a = arrivalSchedule(200, 5, 1, new BenchRng(0, 1));
    const b = arrivalSchedule(200, 5, 1, new BenchRng(0, 1));
    assert.deepEqual(a, b);
    assert.ok(Math.abs(a[199]! - 40) < 1e-9);
    for (let i = 1; i < a.length; i++) assert.ok(a[i]! >= a[i - 1]!);
    assert.notDeepEqual(a, arrivalSchedule(200, 5, 1, new BenchRng(1, 1)));
  });

  test('inf rate sends everything at once; inf burstiness spaces evenly', () => {
    assert.deepEqual(arrivalSchedule(3, Number.POSITIVE_INFINITY, 1, new BenchRng(0)), [0, 0, 0]);
    const even = arrivalSchedule(4, 2, Number.POSITIVE_INFINITY, new BenchRng(0));
    even.forEach((t, i) => {
      assert.ok(Math.abs(t - (i + 1) * 0.5) < 1e-12);
    });
  });

  test('bad rate or burstiness is refused', () => {
    assert.throws(() => arrivalSchedule(3, 0, 1, new BenchRng(0)), BenchArgumentError);
    assert.throws(() => arrivalSchedule(3, 1, -1, new BenchRng(0)), BenchArgumentError);
  });
});
