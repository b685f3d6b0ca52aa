// Rotary position embedding in place, on adjacent pairs (DeepSeek's interleaved layout).

import { madd } from './simd-math';

/**
 * For token i, head h, pair j of the rope section: (a, b) ← (a·c − b·s, a·s + b·c) with
 * c = cos[positions[i]·rotaryDim/2 + j], s = sin[...].
 * `x`: [m, numHeads, headStride] f32, rope section at `offset` within each head, `rotaryDim` (even)
 * elements; `positions`: [m] i32; `cos`, `sin`: [maxPositions, rotaryDim/2] f32.
 */
export function rope(
  x: usize,
  positions: usize,
  cos: usize,
  sin: usize,
  m: i32,
  numHeads: i32,
  headStride: i32,
  offset: i32,
  rotaryDim: i32,
): void {
  const half = rotaryDim >> 1;
  // (a0, b0, a1, b1)·(c0, c0, c1, c1) + (b0, a0, b1, a1)·(−s0, s0, −s1, s1)
  const sign = f32x4(-1, 1, -1, 1);
  for (let i = 0; i < m; i++) {
    const t = <usize>load<i32>(positions + ((<usize>i) << 2)) * <usize>half;
    const cr = cos + (t << 2);
    const sr = sin + (t << 2);
    for (let h = 0; h < numHeads; h++) {
      const base = x + ((<usize>(i * numHeads + h) * <usize>headStride + <usize>offset) << 2);
      let j = 0;
      for (; j + 4 <= half; j += 4) {
        const c = v128.load(cr + ((<usize>j) << 2));
        const s = v128.load(sr + ((<usize>j) << 2));
        const p = base + ((<usize>j) << 3);
        const v0 = v128.load(p);
        const v1 = v128.load(p, 16);
        const c0 = v128.shuffle<f32>(c, c, 0, 0, 1, 1);
        const c1 = v128.shuffle<f32>(c, c, 2, 2, 3, 3);
        const s0 = f32x4.mul(v128.shuffle<f32>(s, s, 0, 0, 1, 1), sign);
        const s1 = f32x4.mul(v128.shuffle<f32>(s, s, 2, 2, 3, 3), sign);
        v128.store(p, madd(v128.shuffle<f32>(v0, v0, 1, 0, 3, 2), s0, f32x4.mul(v0, c0)));
        v128.store(p, madd(v128.shuffle<f32>(v1, v1, 1, 0, 3, 2), s1, f32x4.mul(v1, c1)), 16);
      }
      for (; j < half; j++) {
        const c = load<f32>(cr + ((<usize>j) << 2));
        const s = load<f32>(sr + ((<usize>j) << 2));
        const p = base + ((<usize>j) << 3);
        const a = load<f32>(p);
        const b = load<f32>(p, 4);
        store<f32>(p, a * c - b * s);
        store<f32>(p, a * s + b * c, 4);
      }
    }
  }
}
