// ggml's Q8_0 quantization, as llama.cpp defines it (quantize_row_q8_0_ref): each block of 32 values is
// stored as an IEEE half scale d = max|x| / 127 and 32 int8 values round(x / d) (half away from zero);
// a value is read back as d · q. Also float32 → IEEE half conversion (round to nearest even).

import { Q8_0_BLOCK, Q8_0_BLOCK_BYTES } from './gguf-file.js';

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

/** The IEEE half bit pattern nearest to `x` (ties to even; overflow → ±inf; NaN stays NaN). */
export function f32ToF16Bits(x: number): number {
  f32[0] = x;
  const bits = f32Bits[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // A half subnormal (or zero): the 24-bit significand shifted down to units of 2^-24.
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (half & 1) !== 0)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  // A carry out of the mantissa correctly bumps the exponent (up to inf).
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1) !== 0)) half++;
  return sign | half;
}

/**
 * out = the Q8_0 blocks of x. `x`: [n] with n a multiple of 32; `out`: [n / 32 · 34] bytes, per block
 * the scale (f16, little-endian) then 32 int8. Arithmetic in float32, as the C reference does it.
 */
export function quantizeQ8_0(out: Uint8Array, x: Float32Array): void {
  if (x.length % Q8_0_BLOCK !== 0) {
    throw new RangeError(`Q8_0 quantizes whole blocks of 32 values; got ${x.length} values`);
  }
  const numBlocks = x.length / Q8_0_BLOCK;
  if (out.length !== numBlocks * Q8_0_BLOCK_BYTES) {
    throw new RangeError(`Q8_0 output of ${out.length} bytes; ${numBlocks * Q8_0_BLOCK_BYTES} expected`);
  }
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const qs = new Int8Array(out.buffer, out.byteOffset, out.byteLength);
  for (let b = 0; b < numBlocks; b++) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) amax = Math.max(amax, Math.abs(x[base + j]!));
    const d = Math.fround(amax / 127);
    const id = d !== 0 ? Math.fround(1 / d) : 0;
    const at = b * Q8_0_BLOCK_BYTES;
    view.setUint16(at, f32ToF16Bits(d), true);
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const v = Math.fround(x[base + j]! * id);
      // roundf: half away from zero.
      qs[at + 2 + j] = v >= 0 ? Math.floor(v + 0.5) : -Math.floor(0.5 - v);
    }
  }
}
