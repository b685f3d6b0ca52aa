// Row-wise softmax in place (router scores, sampling probabilities).

import { exp4, expf, hmax, hsum } from './simd-math';

/**
 * x[i, :] = e^(x[i, :] − max) / Σ e^(x[i, :] − max), in place. `x`: [m, n] f32.
 * Sums in float32 over four lanes; exp relative error < 2.1e-7 (see simd-math).
 */
export function softmax(x: usize, m: i32, n: i32): void {
  const rowBytes = (<usize>n) << 2;
  for (let i = 0; i < m; i++) {
    const xr = x + <usize>i * rowBytes;
    let vmax = f32x4.splat(-Infinity);
    let j = 0;
    for (; j + 4 <= n; j += 4) vmax = f32x4.max(vmax, v128.load(xr + ((<usize>j) << 2)));
    let mx = hmax(vmax);
    for (; j < n; j++) mx = max<f32>(mx, load<f32>(xr + ((<usize>j) << 2)));
    const vmx = f32x4.splat(mx);
    let vsum = f32x4.splat(0);
    j = 0;
    for (; j + 4 <= n; j += 4) {
      const p = xr + ((<usize>j) << 2);
      const e = exp4(f32x4.sub(v128.load(p), vmx));
      v128.store(p, e);
      vsum = f32x4.add(vsum, e);
    }
    let sum = hsum(vsum);
    for (; j < n; j++) {
      const p = xr + ((<usize>j) << 2);
      const e = expf(load<f32>(p) - mx);
      store<f32>(p, e);
      sum += e;
    }
    const inv: f32 = 1 / sum;
    const vinv = f32x4.splat(inv);
    j = 0;
    for (; j + 4 <= n; j += 4) {
      const p = xr + ((<usize>j) << 2);
      v128.store(p, f32x4.mul(v128.load(p), vinv));
    }
    for (; j < n; j++) {
      const p = xr + ((<usize>j) << 2);
      store<f32>(p, load<f32>(p) * inv);
    }
  }
}
