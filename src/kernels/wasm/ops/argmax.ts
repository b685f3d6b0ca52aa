// Index of the largest value of each row (greedy sampling over a vocabulary row), ties to the lowest
// index, NaN ignored: a SIMD pass for the maximum, then a scan for its first position.

/**
 * outIdx[i] = the lowest j with x[i, j] = max_j x[i, j] over the non-NaN values; 0 when the row holds no
 * value above −∞. `outIdx`: [m] i32; `x`: [m, n] f32.
 */
export function argmax(outIdx: usize, x: usize, m: i32, n: i32): void {
  const n4 = n & ~3;
  for (let i = 0; i < m; i++) {
    const row = x + ((<usize>i * <usize>n) << 2);
    // pmax(a, v) = a < v ? v : a: a NaN v never replaces a.
    let acc0 = f32x4.splat(-Infinity);
    let acc1 = acc0;
    let j = 0;
    for (; j + 7 < n; j += 8) {
      acc0 = f32x4.pmax(acc0, v128.load(row + ((<usize>j) << 2)));
      acc1 = f32x4.pmax(acc1, v128.load(row + ((<usize>j) << 2), 16));
    }
    for (; j < n4; j += 4) acc0 = f32x4.pmax(acc0, v128.load(row + ((<usize>j) << 2)));
    const acc = f32x4.pmax(acc0, acc1);
    let best = max4(acc, -Infinity);
    for (; j < n; j++) {
      const v = load<f32>(row + ((<usize>j) << 2));
      if (v > best) best = v;
    }
    let at = 0;
    if (best > -Infinity) {
      const target = f32x4.splat(best);
      let k = 0;
      for (; k < n4; k += 4) {
        if (v128.any_true(f32x4.eq(v128.load(row + ((<usize>k) << 2)), target))) break;
      }
      while (load<f32>(row + ((<usize>k) << 2)) !== best) k++;
      at = k;
    }
    store<i32>(outIdx + ((<usize>i) << 2), at);
  }
}

/** The largest of `best` and the four lanes of `v` (NaN lanes never win). */
function max4(v: v128, best: f32): f32 {
  const a = f32x4.extract_lane(v, 0);
  const b = f32x4.extract_lane(v, 1);
  const c = f32x4.extract_lane(v, 2);
  const d = f32x4.extract_lane(v, 3);
  if (a > best) best = a;
  if (b > best) best = b;
  if (c > best) best = c;
  if (d > best) best = d;
  return best;
}
