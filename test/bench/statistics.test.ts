// The summary statistics against values computed by hand with numpy's definitions (linear-interpolated
// percentiles, population standard deviation). Exact arithmetic on small numbers: tolerance 1e-12.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mean, median, percentile, std } from '../../src/bench/statistics.js';

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

describe('statistics', () => {
  test('percentile interpolates linearly between closest ranks (numpy default)', () => {
    close(percentile([1, 2, 3, 4], 50), 2.5);
    close(percentile([1, 2, 3, 4], 90), 3.7); // rank 2.7 → 3 + 0.7·1
    close(percentile([1, 2, 3, 4], 99), 3.97);
    close(percentile([40, 15, 50, 20, 35], 40), 29); // sorted 15 20 35 40 50, rank 1.6 → 20 + 0.6·15
    close(percentile([7], 90), 7);
    close(percentile([3, 1, 2], 0), 1);
    close(percentile([3, 1, 2], 100), 3);
    assert.throws(() => percentile([1], 101), RangeError);
  });

  test('mean, median and population std', () => {
    close(mean([2, 4, 4, 4, 5, 5, 7, 9]), 5);
    close(std([2, 4, 4, 4, 5, 5, 7, 9]), 2);
    close(median([5, 1, 3]), 3);
    close(median([4, 1, 3, 2]), 2.5);
  });

  test("empty lists summarize as 0, like vLLM's np.mean(values or 0)", () => {
    assert.equal(mean([]), 0);
    assert.equal(std([]), 0);
    assert.equal(median([]), 0);
    assert.equal(percentile([], 99), 0);
  });
});
