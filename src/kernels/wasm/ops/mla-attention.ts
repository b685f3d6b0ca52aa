// MLA attention in the absorbed form over the paged latent KV cache, flash-style: the context is walked
// in blocks of POS_BLOCK positions; for each block the scores of every query row (token × head) of a row
// group are computed at once (each cache row is loaded once for many heads: a small GEMM tile of 4 rows ×
// 2 positions), folded into a running max and sum per row (online softmax), and the weighted cache rows
// are accumulated straight into `out` (tile of 4 rows × 8 lanes). Scratch stays small and independent of
// the context length. Everything accumulates in float32.

import { exp4, expf, hsum, madd } from './simd-math';

/** Context positions per block (a multiple of 4). */
const POS_BLOCK: i32 = 32;
/** Query rows (token × head pairs) that share one walk over the cache; their q and out rows stay in L2. */
const ROW_GROUP: i32 = 128;

/**
 * Bytes of scratch that `mla_attention` needs for these sizes: scores [rows, POS_BLOCK], running max, sum
 * and causal limit per row, and POS_BLOCK cache row addresses, where rows = min(numTokens·numHeads, 128).
 */
export function mla_attention_scratch_bytes(numTokens: i32, numHeads: i32): usize {
  const rows = min(numTokens * numHeads, ROW_GROUP);
  return (<usize>rows * <usize>(POS_BLOCK + 3) + <usize>POS_BLOCK) << 2;
}

/**
 * out[t, h, :] = Σ_p softmax_p(scale · q[t, h, :] · cache[slot(p), :]) · cache[slot(p), :latentDim] over the
 * context positions p = 0..positions[t] (causal), slot(p) = blockTable[p / blockSize]·blockSize + p % blockSize.
 * `out`: [numTokens, numHeads, latentDim] f32; `q`: [numTokens, numHeads, latentDim + ropeDim] f32 (absorbed
 * nope part, then rotated rope part); `cache`: [numSlots, latentDim + ropeDim] f32 (latent, then rope key);
 * `blockTable`: [numBlocks] i32; `positions`: [numTokens] i32, each >= 0;
 * `scratch`: `mla_attention_scratch_bytes(numTokens, numHeads)` bytes. `out` must not overlap the inputs.
 */
export function mla_attention(
  out: usize,
  q: usize,
  cache: usize,
  blockTable: usize,
  positions: usize,
  numTokens: i32,
  numHeads: i32,
  latentDim: i32,
  ropeDim: i32,
  blockSize: i32,
  scale: f32,
  scratch: usize,
): void {
  const entry = latentDim + ropeDim;
  const totalRows = numTokens * numHeads;
  for (let r0 = 0; r0 < totalRows; r0 += ROW_GROUP) {
    const nr = min(ROW_GROUP, totalRows - r0);
    const qBase = q + ((<usize>r0 * <usize>entry) << 2);
    const outBase = out + ((<usize>r0 * <usize>latentDim) << 2);
    attendRowGroup(
      outBase,
      qBase,
      cache,
      blockTable,
      positions,
      r0,
      nr,
      numHeads,
      latentDim,
      entry,
      blockSize,
      scale,
      scratch,
    );
  }
}

/**
 * `mla_attention` for the query rows [r0, r1) of a batch of sequences (row = token·numHeads + head, over
 * the whole batch), so that threads can share one batch: sequence s owns the query tokens
 * [seqStarts[s], seqStarts[s + 1]) and its blocks are blockTables[s·maxBlocks ..]. `scaleBits`: the f32
 * softmax scale's bit pattern. `out`, `q`, `cache`, `positions` as for `mla_attention` (whole batch);
 * `seqStarts`: [numSeqs + 1] i32; `blockTables`: [numSeqs, maxBlocks] i32; `scratch`:
 * `mla_attention_scratch_bytes(r1 − r0, 1)` bytes of this thread's own.
 */
export function mla_attention_batch(
  out: usize,
  q: usize,
  cache: usize,
  blockTables: usize,
  maxBlocks: i32,
  seqStarts: usize,
  numSeqs: i32,
  positions: usize,
  numHeads: i32,
  latentDim: i32,
  ropeDim: i32,
  blockSize: i32,
  scaleBits: i32,
  scratch: usize,
  r0: i32,
  r1: i32,
): void {
  const scale = reinterpret<f32>(scaleBits);
  const entry = latentDim + ropeDim;
  for (let s = 0; s < numSeqs; s++) {
    const lo = max(r0, load<i32>(seqStarts + ((<usize>s) << 2)) * numHeads);
    const hi = min(r1, load<i32>(seqStarts + ((<usize>(s + 1)) << 2)) * numHeads);
    const blockTable = blockTables + ((<usize>s * <usize>maxBlocks) << 2);
    for (let g = lo; g < hi; g += ROW_GROUP) {
      const nr = min(ROW_GROUP, hi - g);
      attendRowGroup(
        out + ((<usize>g * <usize>latentDim) << 2),
        q + ((<usize>g * <usize>entry) << 2),
        cache,
        blockTable,
        positions,
        g,
        nr,
        numHeads,
        latentDim,
        entry,
        blockSize,
        scale,
        scratch,
      );
    }
  }
}

/** Rows r0..r0+nr−1 (row = token·numHeads + head); `outBase`, `qBase` point at row r0. */
function attendRowGroup(
  outBase: usize,
  qBase: usize,
  cache: usize,
  blockTable: usize,
  positions: usize,
  r0: i32,
  nr: i32,
  numHeads: i32,
  latentDim: i32,
  entry: i32,
  blockSize: i32,
  scale: f32,
  scratch: usize,
): void {
  // Scratch layout: scores [nr, POS_BLOCK] f32 | rowMax [nr] f32 | rowSum [nr] f32 | rowLim [nr] i32 |
  // slots [POS_BLOCK] usize (address of each block position's cache row).
  const scores = scratch;
  const rowMax = scores + ((<usize>nr * <usize>POS_BLOCK) << 2);
  const rowSum = rowMax + ((<usize>nr) << 2);
  const rowLim = rowSum + ((<usize>nr) << 2);
  const slots = rowLim + ((<usize>nr) << 2);
  const entryBytes = (<usize>entry) << 2;
  let maxLim = 0;
  for (let r = 0; r < nr; r++) {
    const lim = load<i32>(positions + ((<usize>((r0 + r) / numHeads)) << 2)) + 1;
    store<i32>(rowLim + ((<usize>r) << 2), lim);
    store<f32>(rowMax + ((<usize>r) << 2), -Infinity);
    store<f32>(rowSum + ((<usize>r) << 2), 0);
    maxLim = max(maxLim, lim);
  }
  memory.fill(outBase, 0, (<usize>nr * <usize>latentDim) << 2);
  for (let p0 = 0; p0 < maxLim; p0 += POS_BLOCK) {
    const np = min(POS_BLOCK, maxLim - p0);
    for (let b = 0; b < np; b++) {
      const p = p0 + b;
      const block = load<i32>(blockTable + ((<usize>(p / blockSize)) << 2));
      const slot = <usize>block * <usize>blockSize + <usize>(p % blockSize);
      store<usize>(slots + ((<usize>b) << 2), cache + slot * entryBytes);
    }
    blockScores(scores, qBase, slots, rowLim, nr, p0, np, entry, scale);
    blockSoftmax(outBase, scores, rowMax, rowSum, rowLim, nr, p0, np, latentDim);
    blockAccumulate(outBase, scores, slots, rowLim, nr, p0, np, latentDim);
  }
  for (let r = 0; r < nr; r++) {
    const sum = load<f32>(rowSum + ((<usize>r) << 2));
    if (sum > 0) scaleRow(outBase + ((<usize>r * <usize>latentDim) << 2), 1 / sum, latentDim);
  }
}

/** The largest causal limit among rows r..r+3 (those that exist). */
function tileLimit(rowLim: usize, r: i32, nr: i32): i32 {
  let lim = load<i32>(rowLim + ((<usize>r) << 2));
  for (let i = r + 1; i < min(r + 4, nr); i++) lim = max(lim, load<i32>(rowLim + ((<usize>i) << 2)));
  return lim;
}

/**
 * scores[r, b] = scale · q[r] · cache row of block position b, for positions below the row tile's limit.
 * Tiles of 4 rows × 2 positions; a partial tile repeats its last row / position (same value stored twice).
 */
function blockScores(
  scores: usize,
  qBase: usize,
  slots: usize,
  rowLim: usize,
  nr: i32,
  p0: i32,
  np: i32,
  entry: i32,
  scale: f32,
): void {
  const entryBytes = (<usize>entry) << 2;
  const e4Bytes = (<usize>(entry & ~3)) << 2;
  const rowScoreBytes = (<usize>POS_BLOCK) << 2;
  for (let r = 0; r < nr; r += 4) {
    const nb = min(np, tileLimit(rowLim, r, nr) - p0);
    if (nb <= 0) continue;
    const rb = min(r + 1, nr - 1);
    const rc = min(r + 2, nr - 1);
    const rd = min(r + 3, nr - 1);
    const qa = qBase + <usize>r * entryBytes;
    const qb = qBase + <usize>rb * entryBytes;
    const qc = qBase + <usize>rc * entryBytes;
    const qd = qBase + <usize>rd * entryBytes;
    const sa = scores + <usize>r * rowScoreBytes;
    const sb = scores + <usize>rb * rowScoreBytes;
    const sc = scores + <usize>rc * rowScoreBytes;
    const sd = scores + <usize>rd * rowScoreBytes;
    for (let b = 0; b < nb; b += 2) {
      const b1 = min(b + 1, nb - 1);
      const x = load<usize>(slots + ((<usize>b) << 2));
      const y = load<usize>(slots + ((<usize>b1) << 2));
      let ax = f32x4.splat(0);
      let ay = f32x4.splat(0);
      let bx = f32x4.splat(0);
      let by = f32x4.splat(0);
      let cx = f32x4.splat(0);
      let cy = f32x4.splat(0);
      let dx = f32x4.splat(0);
      let dy = f32x4.splat(0);
      for (let k: usize = 0; k < e4Bytes; k += 16) {
        const vx = v128.load(x + k);
        const vy = v128.load(y + k);
        let v = v128.load(qa + k);
        ax = madd(v, vx, ax);
        ay = madd(v, vy, ay);
        v = v128.load(qb + k);
        bx = madd(v, vx, bx);
        by = madd(v, vy, by);
        v = v128.load(qc + k);
        cx = madd(v, vx, cx);
        cy = madd(v, vy, cy);
        v = v128.load(qd + k);
        dx = madd(v, vx, dx);
        dy = madd(v, vy, dy);
      }
      let sax = hsum(ax);
      let say = hsum(ay);
      let sbx = hsum(bx);
      let sby = hsum(by);
      let scx = hsum(cx);
      let scy = hsum(cy);
      let sdx = hsum(dx);
      let sdy = hsum(dy);
      for (let k = e4Bytes; k < entryBytes; k += 4) {
        const fx = load<f32>(x + k);
        const fy = load<f32>(y + k);
        sax += load<f32>(qa + k) * fx;
        say += load<f32>(qa + k) * fy;
        sbx += load<f32>(qb + k) * fx;
        sby += load<f32>(qb + k) * fy;
        scx += load<f32>(qc + k) * fx;
        scy += load<f32>(qc + k) * fy;
        sdx += load<f32>(qd + k) * fx;
        sdy += load<f32>(qd + k) * fy;
      }
      const ob = (<usize>b) << 2;
      const ob1 = (<usize>b1) << 2;
      store<f32>(sd + ob, sdx * scale);
      store<f32>(sd + ob1, sdy * scale);
      store<f32>(sc + ob, scx * scale);
      store<f32>(sc + ob1, scy * scale);
      store<f32>(sb + ob, sbx * scale);
      store<f32>(sb + ob1, sby * scale);
      store<f32>(sa + ob, sax * scale);
      store<f32>(sa + ob1, say * scale);
    }
  }
}

/**
 * Folds the block's scores into each row's running max and sum (rescaling the row's partial output when
 * the max grows) and turns scores into weights e^(s − max), 0 beyond the row's causal limit.
 */
function blockSoftmax(
  outBase: usize,
  scores: usize,
  rowMax: usize,
  rowSum: usize,
  rowLim: usize,
  nr: i32,
  p0: i32,
  np: i32,
  latentDim: i32,
): void {
  const iota = i32x4(0, 1, 2, 3);
  for (let r = 0; r < nr; r++) {
    const s = scores + ((<usize>r * <usize>POS_BLOCK) << 2);
    const nValid = min(np, load<i32>(rowLim + ((<usize>r) << 2)) - p0);
    if (nValid <= 0) {
      for (let b = 0; b < POS_BLOCK; b += 4) v128.store(s + ((<usize>b) << 2), f32x4.splat(0));
      continue;
    }
    let mx: f32 = -Infinity;
    for (let b = 0; b < nValid; b++) mx = max(mx, load<f32>(s + ((<usize>b) << 2)));
    let m = load<f32>(rowMax + ((<usize>r) << 2));
    let sum = load<f32>(rowSum + ((<usize>r) << 2));
    if (mx > m) {
      if (m !== -Infinity) {
        const f = expf(m - mx);
        sum *= f;
        scaleRow(outBase + ((<usize>r * <usize>latentDim) << 2), f, latentDim);
      }
      m = mx;
      store<f32>(rowMax + ((<usize>r) << 2), m);
    }
    const vm = f32x4.splat(m);
    const vn = i32x4.splat(nValid);
    let vsum = f32x4.splat(0);
    // Whole groups of 4 up to np (rounded up, within the row's POS_BLOCK): lanes past nValid become 0.
    for (let b = 0; b < np; b += 4) {
      const p = s + ((<usize>b) << 2);
      const keep = i32x4.lt_s(i32x4.add(iota, i32x4.splat(b)), vn);
      const e = v128.and(exp4(f32x4.sub(v128.load(p), vm)), keep);
      v128.store(p, e);
      vsum = f32x4.add(vsum, e);
    }
    store<f32>(rowSum + ((<usize>r) << 2), sum + hsum(vsum));
  }
}

/**
 * out[r, :] += Σ_b weights[r, b] · cache row b [:latentDim] over the block. Tiles of 4 rows × 8 lanes (then 4,
 * then 1); a partial tile repeats its last row, which then stores the same values twice.
 */
function blockAccumulate(
  outBase: usize,
  scores: usize,
  slots: usize,
  rowLim: usize,
  nr: i32,
  p0: i32,
  np: i32,
  latentDim: i32,
): void {
  const lBytes = (<usize>latentDim) << 2;
  const l8Bytes = (<usize>(latentDim & ~7)) << 2;
  const l4Bytes = (<usize>(latentDim & ~3)) << 2;
  const rowScoreBytes = (<usize>POS_BLOCK) << 2;
  for (let r = 0; r < nr; r += 4) {
    const nb = min(np, tileLimit(rowLim, r, nr) - p0);
    if (nb <= 0) continue;
    const rb = min(r + 1, nr - 1);
    const rc = min(r + 2, nr - 1);
    const rd = min(r + 3, nr - 1);
    const wa = scores + <usize>r * rowScoreBytes;
    const wb = scores + <usize>rb * rowScoreBytes;
    const wc = scores + <usize>rc * rowScoreBytes;
    const wd = scores + <usize>rd * rowScoreBytes;
    const oa = outBase + <usize>r * lBytes;
    const ob = outBase + <usize>rb * lBytes;
    const oc = outBase + <usize>rc * lBytes;
    const od = outBase + <usize>rd * lBytes;
    let c: usize = 0;
    for (; c < l8Bytes; c += 32) {
      let a0 = v128.load(oa + c);
      let a1 = v128.load(oa + c, 16);
      let b0 = v128.load(ob + c);
      let b1 = v128.load(ob + c, 16);
      let c0 = v128.load(oc + c);
      let c1 = v128.load(oc + c, 16);
      let d0 = v128.load(od + c);
      let d1 = v128.load(od + c, 16);
      for (let b = 0; b < nb; b++) {
        const wo = (<usize>b) << 2;
        const cp = load<usize>(slots + wo) + c;
        const x0 = v128.load(cp);
        const x1 = v128.load(cp, 16);
        let w = v128.load32_splat(wa + wo);
        a0 = madd(w, x0, a0);
        a1 = madd(w, x1, a1);
        w = v128.load32_splat(wb + wo);
        b0 = madd(w, x0, b0);
        b1 = madd(w, x1, b1);
        w = v128.load32_splat(wc + wo);
        c0 = madd(w, x0, c0);
        c1 = madd(w, x1, c1);
        w = v128.load32_splat(wd + wo);
        d0 = madd(w, x0, d0);
        d1 = madd(w, x1, d1);
      }
      v128.store(od + c, d0);
      v128.store(od + c, d1, 16);
      v128.store(oc + c, c0);
      v128.store(oc + c, c1, 16);
      v128.store(ob + c, b0);
      v128.store(ob + c, b1, 16);
      v128.store(oa + c, a0);
      v128.store(oa + c, a1, 16);
    }
    for (; c < l4Bytes; c += 16) {
      let a0 = v128.load(oa + c);
      let b0 = v128.load(ob + c);
      let c0 = v128.load(oc + c);
      let d0 = v128.load(od + c);
      for (let b = 0; b < nb; b++) {
        const wo = (<usize>b) << 2;
        const x0 = v128.load(load<usize>(slots + wo) + c);
        a0 = madd(v128.load32_splat(wa + wo), x0, a0);
        b0 = madd(v128.load32_splat(wb + wo), x0, b0);
        c0 = madd(v128.load32_splat(wc + wo), x0, c0);
        d0 = madd(v128.load32_splat(wd + wo), x0, d0);
      }
      v128.store(od + c, d0);
      v128.store(oc + c, c0);
      v128.store(ob + c, b0);
      v128.store(oa + c, a0);
    }
    for (; c < lBytes; c += 4) {
      let fa = load<f32>(oa + c);
      let fb = load<f32>(ob + c);
      let fc = load<f32>(oc + c);
      let fd = load<f32>(od + c);
      for (let b = 0; b < nb; b++) {
        const wo = (<usize>b) << 2;
        const x0 = load<f32>(load<usize>(slots + wo) + c);
        fa += load<f32>(wa + wo) * x0;
        fb += load<f32>(wb + wo) * x0;
        fc += load<f32>(wc + wo) * x0;
        fd += load<f32>(wd + wo) * x0;
      }
      store<f32>(od + c, fd);
      store<f32>(oc + c, fc);
      store<f32>(ob + c, fb);
      store<f32>(oa + c, fa);
    }
  }
}

/** row[:n] *= f. `row`: [n] f32. */
function scaleRow(row: usize, f: f32, n: i32): void {
  const vf = f32x4.splat(f);
  const nBytes = (<usize>n) << 2;
  const n4Bytes = (<usize>(n & ~3)) << 2;
  let c: usize = 0;
  for (; c < n4Bytes; c += 16) v128.store(row + c, f32x4.mul(v128.load(row + c), vf));
  for (; c < nBytes; c += 4) store<f32>(row + c, load<f32>(row + c) * f);
}
