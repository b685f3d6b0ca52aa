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
 * Bytes of scratch that `mla_attention` (and `mha_attention`) need for these sizes: scores [rows, POS_BLOCK],
 * running max, sum and causal limit per row, POS_BLOCK key, value and rope-key row addresses, and the
 * record describing where keys and values come from, where rows = min(numTokens·numHeads, 128).
 */
export function mla_attention_scratch_bytes(numTokens: i32, numHeads: i32): usize {
  const rows = min(numTokens * numHeads, ROW_GROUP);
  return ((<usize>rows * <usize>(POS_BLOCK + 3) + 3 * <usize>POS_BLOCK) << 2) + KV_SOURCE_BYTES;
}

/** Room for the KvSource record at the start of the scratch. */
const KV_SOURCE_BYTES: usize = 64;

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

/**
 * Where the keys and values of the context positions come from. Paged (MLA, absorbed): position p's row is
 * cache slot blockTable[p / blockSize]·blockSize + p % blockSize, of `kRowBytes` bytes; it is both the key
 * (its first `dk` floats) and the value (its first `dv` floats). Contiguous (MHA): position p's key is at
 * kBase + p·kRowBytes (`dk` floats), its value `vOffBytes` further (`dv` floats), and its rope key at
 * rBase + p·rRowBytes (`dr` floats, dotted with the query's floats from `qRopeOffBytes`).
 */
@unmanaged
class KvSource {
  paged: bool = false;
  kBase: usize = 0;
  kRowBytes: usize = 0;
  blockTable: usize = 0;
  blockSize: i32 = 1;
  vOffBytes: usize = 0;
  rBase: usize = 0;
  rRowBytes: usize = 0;
  dk: i32 = 0;
  dr: i32 = 0;
  qRopeOffBytes: usize = 0;
  dv: i32 = 0;
}

/** The row addresses of context positions p0..p0+np−1: keys, values and rope keys (POS_BLOCK each). */
function fillSlots(src: KvSource, p0: i32, np: i32, kSlots: usize, vSlots: usize, rSlots: usize): void {
  for (let b = 0; b < np; b++) {
    const p = p0 + b;
    let k: usize;
    if (src.paged) {
      const block = load<i32>(src.blockTable + ((<usize>(p / src.blockSize)) << 2));
      const slot = <usize>block * <usize>src.blockSize + <usize>(p % src.blockSize);
      k = src.kBase + slot * src.kRowBytes;
    } else {
      k = src.kBase + <usize>p * src.kRowBytes;
    }
    const o = (<usize>b) << 2;
    store<usize>(kSlots + o, k);
    store<usize>(vSlots + o, k + src.vOffBytes);
    store<usize>(rSlots + o, src.rBase + <usize>p * src.rRowBytes);
  }
}

/**
 * Attention of `nr` query rows: row r's query at qBase + r·qRowBytes, its output (dv floats) at
 * outBase + r·outRowBytes, its causal limit positions[(r0 + r) / rowsPerToken] + 1.
 */
function attendRows(
  outBase: usize,
  outRowBytes: usize,
  qBase: usize,
  qRowBytes: usize,
  src: KvSource,
  positions: usize,
  r0: i32,
  nr: i32,
  rowsPerToken: i32,
  scale: f32,
  scratch: usize,
): void {
  // Scratch layout (after the KvSource record): scores [nr, POS_BLOCK] f32 | rowMax [nr] f32 | rowSum [nr] f32 | rowLim [nr] i32 |
  // key, value and rope-key row addresses of the block's positions [POS_BLOCK] usize each.
  const scores = scratch;
  const rowMax = scores + ((<usize>nr * <usize>POS_BLOCK) << 2);
  const rowSum = rowMax + ((<usize>nr) << 2);
  const rowLim = rowSum + ((<usize>nr) << 2);
  const kSlots = rowLim + ((<usize>nr) << 2);
  const vSlots = kSlots + ((<usize>POS_BLOCK) << 2);
  const rSlots = vSlots + ((<usize>POS_BLOCK) << 2);
  const dv = src.dv;
  let maxLim = 0;
  for (let r = 0; r < nr; r++) {
    const lim = load<i32>(positions + ((<usize>((r0 + r) / rowsPerToken)) << 2)) + 1;
    store<i32>(rowLim + ((<usize>r) << 2), lim);
    store<f32>(rowMax + ((<usize>r) << 2), -Infinity);
    store<f32>(rowSum + ((<usize>r) << 2), 0);
    memory.fill(outBase + <usize>r * outRowBytes, 0, (<usize>dv) << 2);
    maxLim = max(maxLim, lim);
  }
  for (let p0 = 0; p0 < maxLim; p0 += POS_BLOCK) {
    const np = min(POS_BLOCK, maxLim - p0);
    fillSlots(src, p0, np, kSlots, vSlots, rSlots);
    blockScores(
      scores,
      qBase,
      qRowBytes,
      kSlots,
      src.dk,
      rSlots,
      src.qRopeOffBytes,
      src.dr,
      rowLim,
      nr,
      p0,
      np,
      scale,
    );
    blockSoftmax(outBase, outRowBytes, scores, rowMax, rowSum, rowLim, nr, p0, np, dv);
    blockAccumulate(outBase, outRowBytes, scores, vSlots, rowLim, nr, p0, np, dv);
  }
  for (let r = 0; r < nr; r++) {
    const sum = load<f32>(rowSum + ((<usize>r) << 2));
    if (sum > 0) scaleRow(outBase + <usize>r * outRowBytes, 1 / sum, dv);
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
  const src = changetype<KvSource>(scratch);
  src.paged = true;
  src.kBase = cache;
  src.kRowBytes = (<usize>entry) << 2;
  src.blockTable = blockTable;
  src.blockSize = blockSize;
  src.vOffBytes = 0;
  src.rBase = 0;
  src.rRowBytes = 0;
  src.dk = entry;
  src.dr = 0;
  src.qRopeOffBytes = 0;
  src.dv = latentDim;
  attendRows(
    outBase,
    (<usize>latentDim) << 2,
    qBase,
    (<usize>entry) << 2,
    src,
    positions,
    r0,
    nr,
    numHeads,
    scale,
    scratch + KV_SOURCE_BYTES,
  );
}

/**
 * Causal multi-head attention of one sequence's query tokens over its whole context, with keys and values
 * per head (the non-absorbed form of MLA, cheaper for a long prefill), for the rows [r0, r1) where row
 * r = h·numTokens + t (head-major, so that threads can split the rows):
 * out[t, h, :] = Σ_{p ≤ positions[t]} softmax_p(scale · (q[t, h, :dn] · kv[p, h, :dn] + q[t, h, dn:] · kRope[p, :]))
 *                · kv[p, h, dn : dn + dv].
 * `out`: [numTokens, numHeads, dv] f32; `q`: [numTokens, numHeads, dn + dr] f32; `kv`: [numCtx, numHeads,
 * dn + dv] f32 (each head's key then value); `kRope`: [numCtx, dr] f32; `positions`: [numTokens] i32, the
 * context indices of the query tokens (< numCtx); `scaleBits`: the f32 scale's bit pattern; `scratch`:
 * `mla_attention_scratch_bytes(min(r1 − r0, 128), 1)` bytes of this thread's own.
 */
export function mha_attention(
  out: usize,
  q: usize,
  kv: usize,
  kRope: usize,
  positions: usize,
  numTokens: i32,
  numHeads: i32,
  dn: i32,
  dr: i32,
  dv: i32,
  scaleBits: i32,
  scratch: usize,
  r0: i32,
  r1: i32,
): void {
  const scale = reinterpret<f32>(scaleBits);
  const qHeadBytes = (<usize>(dn + dr)) << 2;
  const kvHeadBytes = (<usize>(dn + dv)) << 2;
  const outHeadBytes = (<usize>dv) << 2;
  const H = <usize>numHeads;
  const src = changetype<KvSource>(scratch);
  for (let h = r0 / numTokens; h * numTokens < r1 && h < numHeads; h++) {
    const t0 = max(r0 - h * numTokens, 0);
    const t1 = min(r1 - h * numTokens, numTokens);
    src.paged = false;
    src.kBase = kv + <usize>h * kvHeadBytes;
    src.kRowBytes = H * kvHeadBytes;
    src.vOffBytes = (<usize>dn) << 2;
    src.rBase = kRope;
    src.rRowBytes = (<usize>dr) << 2;
    src.dk = dn;
    src.dr = dr;
    src.qRopeOffBytes = (<usize>dn) << 2;
    src.dv = dv;
    for (let t = t0; t < t1; t += ROW_GROUP) {
      const nr = min(ROW_GROUP, t1 - t);
      attendRows(
        out + (<usize>t * H + <usize>h) * outHeadBytes,
        H * outHeadBytes,
        q + (<usize>t * H + <usize>h) * qHeadBytes,
        H * qHeadBytes,
        src,
        positions,
        t,
        nr,
        1,
        scale,
        scratch + KV_SOURCE_BYTES,
      );
    }
  }
}

/** The largest causal limit among rows r..r+3 (those that exist). */
function tileLimit(rowLim: usize, r: i32, nr: i32): i32 {
  let lim = load<i32>(rowLim + ((<usize>r) << 2));
  for (let i = r + 1; i < min(r + 4, nr); i++) lim = max(lim, load<i32>(rowLim + ((<usize>i) << 2)));
  return lim;
}

/**
 * scores[r, b] = scale · (q[r][:dk] · key b[:dk] + q[r][rope part][:dr] · rope key b[:dr]) for the block's
 * positions below the row tile's limit. Tiles of 4 rows × 2 positions; a partial tile repeats its last
 * row / position (same value stored twice).
 */
function blockScores(
  scores: usize,
  qBase: usize,
  qRowBytes: usize,
  kSlots: usize,
  dk: i32,
  rSlots: usize,
  qRopeOffBytes: usize,
  dr: i32,
  rowLim: usize,
  nr: i32,
  p0: i32,
  np: i32,
  scale: f32,
): void {
  const kBytes = (<usize>dk) << 2;
  const k4Bytes = (<usize>(dk & ~3)) << 2;
  const rBytes = (<usize>dr) << 2;
  const r4Bytes = (<usize>(dr & ~3)) << 2;
  const rowScoreBytes = (<usize>POS_BLOCK) << 2;
  for (let r = 0; r < nr; r += 4) {
    const nb = min(np, tileLimit(rowLim, r, nr) - p0);
    if (nb <= 0) continue;
    const rb = min(r + 1, nr - 1);
    const rc = min(r + 2, nr - 1);
    const rd = min(r + 3, nr - 1);
    const qa = qBase + <usize>r * qRowBytes;
    const qb = qBase + <usize>rb * qRowBytes;
    const qc = qBase + <usize>rc * qRowBytes;
    const qd = qBase + <usize>rd * qRowBytes;
    const sa = scores + <usize>r * rowScoreBytes;
    const sb = scores + <usize>rb * rowScoreBytes;
    const sc = scores + <usize>rc * rowScoreBytes;
    const sd = scores + <usize>rd * rowScoreBytes;
    for (let b = 0; b < nb; b += 2) {
      const b1 = min(b + 1, nb - 1);
      let x = load<usize>(kSlots + ((<usize>b) << 2));
      let y = load<usize>(kSlots + ((<usize>b1) << 2));
      let ax = f32x4.splat(0);
      let ay = f32x4.splat(0);
      let bx = f32x4.splat(0);
      let by = f32x4.splat(0);
      let cx = f32x4.splat(0);
      let cy = f32x4.splat(0);
      let dx = f32x4.splat(0);
      let dy = f32x4.splat(0);
      for (let k: usize = 0; k < k4Bytes; k += 16) {
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
      const ro = qRopeOffBytes;
      const rx = load<usize>(rSlots + ((<usize>b) << 2));
      const ry = load<usize>(rSlots + ((<usize>b1) << 2));
      for (let k: usize = 0; k < r4Bytes; k += 16) {
        const vx = v128.load(rx + k);
        const vy = v128.load(ry + k);
        let v = v128.load(qa + ro + k);
        ax = madd(v, vx, ax);
        ay = madd(v, vy, ay);
        v = v128.load(qb + ro + k);
        bx = madd(v, vx, bx);
        by = madd(v, vy, by);
        v = v128.load(qc + ro + k);
        cx = madd(v, vx, cx);
        cy = madd(v, vy, cy);
        v = v128.load(qd + ro + k);
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
      // Scalar tails of both parts (dk or dr not a multiple of 4).
      for (let seg = 0; seg < 2; seg++) {
        const qo: usize = seg === 0 ? 0 : ro;
        const from = seg === 0 ? k4Bytes : r4Bytes;
        const to = seg === 0 ? kBytes : rBytes;
        for (let k = from; k < to; k += 4) {
          const fx = load<f32>(x + k);
          const fy = load<f32>(y + k);
          sax += load<f32>(qa + qo + k) * fx;
          say += load<f32>(qa + qo + k) * fy;
          sbx += load<f32>(qb + qo + k) * fx;
          sby += load<f32>(qb + qo + k) * fy;
          scx += load<f32>(qc + qo + k) * fx;
          scy += load<f32>(qc + qo + k) * fy;
          sdx += load<f32>(qd + qo + k) * fx;
          sdy += load<f32>(qd + qo + k) * fy;
        }
        x = rx;
        y = ry;
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
  outRowBytes: usize,
  scores: usize,
  rowMax: usize,
  rowSum: usize,
  rowLim: usize,
  nr: i32,
  p0: i32,
  np: i32,
  dv: i32,
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
        scaleRow(outBase + <usize>r * outRowBytes, f, dv);
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
 * out[r, :dv] += Σ_b weights[r, b] · value row b [:dv] over the block. Tiles of 4 rows × 8 lanes (then 4,
 * then 1); a partial tile repeats its last row, which then stores the same values twice.
 */
function blockAccumulate(
  outBase: usize,
  outRowBytes: usize,
  scores: usize,
  slots: usize,
  rowLim: usize,
  nr: i32,
  p0: i32,
  np: i32,
  dv: i32,
): void {
  const lBytes = (<usize>dv) << 2;
  const l8Bytes = (<usize>(dv & ~7)) << 2;
  const l4Bytes = (<usize>(dv & ~3)) << 2;
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
    const oa = outBase + <usize>r * outRowBytes;
    const ob = outBase + <usize>rb * outRowBytes;
    const oc = outBase + <usize>rc * outRowBytes;
    const od = outBase + <usize>rd * outRowBytes;
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
