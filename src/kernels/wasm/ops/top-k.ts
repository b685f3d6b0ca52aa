// Top-k of each row (MoE expert selection, top-k sampling), ordered by descending value, ties to the
// lower index. The output arrays double as a binary min-heap of the k best seen so far, so no scratch
// memory is needed: O(n) SIMD threshold scan plus O(log k) per element that enters the heap.

/** Whether (va, ia) ranks below (vb, ib): smaller value, or equal value and larger index. */
function ranksBelow(va: f32, ia: i32, vb: f32, ib: i32): bool {
  return va < vb || (va === vb && ia > ib);
}

/** Restores the heap property below `pos` (root = lowest-ranked). `vals`, `idx`: [size]. */
function siftDown(vals: usize, idx: usize, pos: i32, size: i32): void {
  const v = load<f32>(vals + ((<usize>pos) << 2));
  const id = load<i32>(idx + ((<usize>pos) << 2));
  while (true) {
    let child = 2 * pos + 1;
    if (child >= size) break;
    let cv = load<f32>(vals + ((<usize>child) << 2));
    let ci = load<i32>(idx + ((<usize>child) << 2));
    const right = child + 1;
    if (right < size) {
      const rv = load<f32>(vals + ((<usize>right) << 2));
      const ri = load<i32>(idx + ((<usize>right) << 2));
      if (ranksBelow(rv, ri, cv, ci)) {
        child = right;
        cv = rv;
        ci = ri;
      }
    }
    if (!ranksBelow(cv, ci, v, id)) break;
    store<f32>(vals + ((<usize>pos) << 2), cv);
    store<i32>(idx + ((<usize>pos) << 2), ci);
    pos = child;
  }
  store<f32>(vals + ((<usize>pos) << 2), v);
  store<i32>(idx + ((<usize>pos) << 2), id);
}

/** Moves the entry at `pos` up until its parent ranks below it. */
function siftUp(vals: usize, idx: usize, pos: i32): void {
  const v = load<f32>(vals + ((<usize>pos) << 2));
  const id = load<i32>(idx + ((<usize>pos) << 2));
  while (pos > 0) {
    const parent = (pos - 1) >> 1;
    const pv = load<f32>(vals + ((<usize>parent) << 2));
    const pi = load<i32>(idx + ((<usize>parent) << 2));
    if (!ranksBelow(v, id, pv, pi)) break;
    store<f32>(vals + ((<usize>pos) << 2), pv);
    store<i32>(idx + ((<usize>pos) << 2), pi);
    pos = parent;
  }
  store<f32>(vals + ((<usize>pos) << 2), v);
  store<i32>(idx + ((<usize>pos) << 2), id);
}

/** Replaces the heap root by (v, j) when (v, j) ranks above it; returns the new threshold (root value). */
function offer(vals: usize, idx: usize, k: i32, v: f32, j: i32, threshold: f32): f32 {
  // Scanning in index order, an equal value never outranks the root (its index is larger).
  if (v > threshold) {
    store<f32>(vals, v);
    store<i32>(idx, j);
    siftDown(vals, idx, 0, k);
    return load<f32>(vals);
  }
  return threshold;
}

/**
 * outIdx[i, :], outVal[i, :] = indices and values of the k largest of x[i, :], in descending order of value
 * (ties: lower index first). `outIdx`: [m, k] i32; `outVal`: [m, k] f32; `x`: [m, n] f32; 0 <= k <= n.
 * NaN inputs are not supported (they never enter the top-k after the first k).
 */
export function top_k(outIdx: usize, outVal: usize, x: usize, m: i32, n: i32, k: i32): void {
  if (k <= 0) return;
  for (let i = 0; i < m; i++) {
    const xr = x + ((<usize>i * <usize>n) << 2);
    const vals = outVal + ((<usize>i * <usize>k) << 2);
    const idx = outIdx + ((<usize>i * <usize>k) << 2);
    for (let j = 0; j < k; j++) {
      store<f32>(vals + ((<usize>j) << 2), load<f32>(xr + ((<usize>j) << 2)));
      store<i32>(idx + ((<usize>j) << 2), j);
      siftUp(vals, idx, j);
    }
    let threshold = load<f32>(vals);
    let j = k;
    for (; j + 4 <= n; j += 4) {
      const p = xr + ((<usize>j) << 2);
      if (!v128.any_true(f32x4.gt(v128.load(p), f32x4.splat(threshold)))) continue;
      threshold = offer(vals, idx, k, load<f32>(p), j, threshold);
      threshold = offer(vals, idx, k, load<f32>(p, 4), j + 1, threshold);
      threshold = offer(vals, idx, k, load<f32>(p, 8), j + 2, threshold);
      threshold = offer(vals, idx, k, load<f32>(p, 12), j + 3, threshold);
    }
    for (; j < n; j++) threshold = offer(vals, idx, k, load<f32>(xr + ((<usize>j) << 2)), j, threshold);
    // Heap sort: move the lowest-ranked to the end, repeatedly; leaves the row in descending rank order.
    for (let size = k - 1; size > 0; size--) {
      const sp = (<usize>size) << 2;
      const tv = load<f32>(vals + sp);
      const ti = load<i32>(idx + sp);
      store<f32>(vals + sp, load<f32>(vals));
      store<i32>(idx + sp, load<i32>(idx));
      store<f32>(vals, tv);
      store<i32>(idx, ti);
      siftDown(vals, idx, 0, size);
    }
  }
}
