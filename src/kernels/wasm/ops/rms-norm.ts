// RMS normalisation of each row (the norm before attention and MLP, and on the latent and query paths).

import { hsum, madd } from './simd-math';

/**
 * out[i, :] = x[i, :] / sqrt(mean(x[i, :]²) + eps) · weight.
 * `out`: [m, d] f32 (may be `x`); `x`: [m, d] f32; `weight`: [d] f32.
 */
export function rms_norm(out: usize, x: usize, weight: usize, m: i32, d: i32, eps: f32): void {
  const rowBytes = (<usize>d) << 2;
  for (let i = 0; i < m; i++) {
    const xr = x + <usize>i * rowBytes;
    const or = out + <usize>i * rowBytes;
    let acc0 = f32x4.splat(0);
    let acc1 = f32x4.splat(0);
    let j = 0;
    for (; j + 8 <= d; j += 8) {
      const v0 = v128.load(xr + ((<usize>j) << 2));
      const v1 = v128.load(xr + ((<usize>j) << 2), 16);
      acc0 = madd(v0, v0, acc0);
      acc1 = madd(v1, v1, acc1);
    }
    for (; j + 4 <= d; j += 4) {
      const v = v128.load(xr + ((<usize>j) << 2));
      acc0 = madd(v, v, acc0);
    }
    let ss = hsum(f32x4.add(acc0, acc1));
    for (; j < d; j++) {
      const v = load<f32>(xr + ((<usize>j) << 2));
      ss += v * v;
    }
    const inv: f32 = 1 / Mathf.sqrt(ss / <f32>d + eps);
    const vinv = f32x4.splat(inv);
    j = 0;
    for (; j + 4 <= d; j += 4) {
      const o = (<usize>j) << 2;
      v128.store(or + o, f32x4.mul(f32x4.mul(v128.load(xr + o), vinv), v128.load(weight + o)));
    }
    for (; j < d; j++) {
      const o = (<usize>j) << 2;
      store<f32>(or + o, load<f32>(xr + o) * inv * load<f32>(weight + o));
    }
  }
}
