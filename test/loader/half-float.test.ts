// Tests of the 16-bit float conversions: F16 → F32 over every half value, and F32 → BF16 rounding.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { f16ToF32, f32BitsToBf16 } from '../../src/loader/half-float.js';

/** The value of a half bit pattern by the IEEE 754 definition. */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return mant === 0 ? sign * Infinity : Number.NaN;
  if (exp === 0) return sign * mant * 2 ** -24;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

describe('half floats', () => {
  it('f16ToF32 is exact for all 65,536 half values', () => {
    const bits = new Uint16Array(65536).map((_, i) => i);
    const out = new Float32Array(65536);
    f16ToF32(out, bits);
    for (let h = 0; h < 65536; h++) {
      const want = halfValue(h);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(out[h]!), `0x${h.toString(16)}`);
      else assert.ok(Object.is(out[h], want), `0x${h.toString(16)}: ${out[h]} vs ${want}`);
    }
  });

  it('f32BitsToBf16 rounds to nearest, ties to even, and keeps NaN', () => {
    assert.equal(f32BitsToBf16(0x3f800000), 0x3f80); // 1.0
    assert.equal(f32BitsToBf16(0x3f808000), 0x3f80); // tie, even stays
    assert.equal(f32BitsToBf16(0x3f818000), 0x3f82); // tie, odd rounds up
    assert.equal(f32BitsToBf16(0x3f808001), 0x3f81); // above half rounds up
    assert.equal(f32BitsToBf16(0xbf800000), 0xbf80); // -1.0
    assert.equal(f32BitsToBf16(0x7f800000), 0x7f80); // inf
    assert.equal(f32BitsToBf16(0x7f7fffff), 0x7f80); // max float rounds to inf
    const nan = f32BitsToBf16(0x7f800001);
    assert.ok((nan & 0x7f80) === 0x7f80 && (nan & 0x7f) !== 0, 'NaN stays NaN');
  });
});
