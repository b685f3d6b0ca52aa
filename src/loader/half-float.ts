// Conversions between float32 and the 16-bit float formats of checkpoints: IEEE half (F16) to float32
// when reading, and float32 to bfloat16 (round to nearest even) when generating weights.

/**
 * out[i] = the float32 value of the IEEE half-precision bit pattern bits[i] (exact: every half,
 * subnormals, infinities and NaN included). `out`, `bits`: [n].
 */
export function f16ToF32(out: Float32Array, bits: Uint16Array): void {
  const outBits = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i]!;
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0x1f) {
      outBits[i] = sign | 0x7f800000 | (mant << 13); // inf / NaN
    } else if (exp !== 0) {
      outBits[i] = sign | ((exp + 112) << 23) | (mant << 13); // normal: rebias 15 → 127
    } else {
      out[i] = mant * 2 ** -24 * (sign !== 0 ? -1 : 1); // zero or subnormal: mant · 2^-24
    }
  }
}

export { f32BitsToBf16 } from '../kernels/kernels.js';
