// The gated activation of the SwiGLU MLP and the MoE experts: silu of the gate half times the up half.

import { exp4, expf } from './simd-math';

/**
 * out[i, j] = silu(gateUp[i, j]) · gateUp[i, d + j], silu(a) = a / (1 + e^−a).
 * `out`: [m, d] f32; `gateUp`: [m, 2d] f32 (each row: gate half, then up half).
 * Accuracy: exp has relative error < 2.1e-7 (see simd-math), so silu is within ~3e-7 relative, except for
 * a < −88.4 where the true result (|silu| < 1e-36) is replaced by a value of similar negligible size.
 */
export function silu_and_mul(out: usize, gateUp: usize, m: i32, d: i32): void {
  const dBytes = (<usize>d) << 2;
  const one = f32x4.splat(1);
  for (let i = 0; i < m; i++) {
    const g = gateUp + <usize>i * (dBytes << 1);
    const u = g + dBytes;
    const or = out + <usize>i * dBytes;
    let j = 0;
    for (; j + 4 <= d; j += 4) {
      const o = (<usize>j) << 2;
      const a = v128.load(g + o);
      const s = f32x4.div(a, f32x4.add(one, exp4(f32x4.neg(a))));
      v128.store(or + o, f32x4.mul(s, v128.load(u + o)));
    }
    for (; j < d; j++) {
      const o = (<usize>j) << 2;
      const a = load<f32>(g + o);
      store<f32>(or + o, (a / (1 + expf(-a))) * load<f32>(u + o));
    }
  }
}
