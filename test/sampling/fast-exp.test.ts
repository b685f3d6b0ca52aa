// Tests of the sampler's exp: relative error against Math.exp over the range the sampler uses.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expNonPositive } from '../../src/sampling/fast-exp.js';

describe('expNonPositive', () => {
  it('matches Math.exp within 3e-10 relative on [-745, 0], and is 0 below', () => {
    let worst = 0;
    for (let i = 0; i <= 200000; i++) {
      const x = -(i / 200000) * 745;
      const exact = Math.exp(x);
      if (exact < 1e-300) continue; // subnormal results: compared absolutely below
      worst = Math.max(worst, Math.abs(expNonPositive(x) - exact) / exact);
    }
    assert.ok(worst < 3e-10, `worst relative error ${worst}`);
    assert.equal(expNonPositive(0), 1);
    assert.ok(Math.abs(expNonPositive(-744) - Math.exp(-744)) < 1e-320);
    assert.equal(expNonPositive(-746), 0);
    assert.equal(expNonPositive(Number.NEGATIVE_INFINITY), 0);
  });
});
