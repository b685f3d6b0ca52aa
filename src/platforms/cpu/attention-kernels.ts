// The CPU platform's threaded attention kernels: argument checks, placement of the arrays in the primary
// memory (arrays that live elsewhere are copied into its scratch block), the split of the query rows
// across threads by their context lengths (later prompt tokens attend to more positions), and the run on
// the thread pool. The kernels themselves are in src/kernels/wasm/ops/mla-attention.ts.

import type { Arena } from './arena.js';
import type { CopyStats } from './copy-stats.js';
import type { GemmThreadPool } from './thread-pool.js';
import { KernelArgumentError } from './wasm-ops.js';

/** What these kernels need of the kernel set. */
export interface ThreadedKernelContext {
  /** The memory the kernels run in (where the KV cache and scratch buffers live). */
  readonly primary: Arena;
  readonly pool: GemmThreadPool;
  /** Bytes copied in and out, counted here too. */
  readonly copies: CopyStats;
  /** Threads worth using for about `seconds` of single-thread work in `units` parts. */
  threadsFor(seconds: number, units: number): number;
}

/** Arguments of `Kernels.mlaAttentionBatch`. */
export interface MlaAttentionBatchArgs {
  readonly out: Float32Array;
  readonly q: Float32Array;
  readonly cache: Float32Array;
  readonly blockTables: Int32Array;
  readonly maxBlocksPerSeq: number;
  readonly seqStarts: Int32Array;
  readonly positions: Int32Array;
  readonly numSeqs: number;
  readonly numHeads: number;
  readonly latentDim: number;
  readonly ropeDim: number;
  readonly blockSize: number;
  readonly scale: number;
}

/** Arguments of `Kernels.mhaAttention`. */
export interface MhaAttentionArgs {
  readonly out: Float32Array;
  readonly q: Float32Array;
  readonly kv: Float32Array;
  readonly kRope: Float32Array;
  readonly positions: Int32Array;
  readonly numTokens: number;
  readonly numCtx: number;
  readonly numHeads: number;
  readonly nopeDim: number;
  readonly ropeDim: number;
  readonly vDim: number;
  readonly scale: number;
}

/** See `Kernels.mlaAttentionBatch`. */
export function runMlaAttentionBatch(ctx: ThreadedKernelContext, a: MlaAttentionBatchArgs): void {
  const fail = failer('mlaAttentionBatch');
  const { numSeqs, numHeads, latentDim, ropeDim, maxBlocksPerSeq, blockSize, seqStarts, positions } = a;
  checkCounts(fail, { numSeqs, numHeads, latentDim, ropeDim, maxBlocksPerSeq });
  if (!Number.isInteger(blockSize) || blockSize < 1) fail(`blockSize = ${blockSize}; it must be >= 1`);
  if (seqStarts.length < numSeqs + 1) fail(`seqStarts has ${seqStarts.length} entries; needs ${numSeqs + 1}`);
  if (seqStarts[0] !== 0) fail(`seqStarts[0] = ${seqStarts[0]}; it must be 0`);
  const numTokens = seqStarts[numSeqs]!;
  const entry = latentDim + ropeDim;
  const numSlots = entry === 0 ? 0 : Math.floor(a.cache.length / entry);
  const pieces: Piece[] = [
    { name: 'out', array: a.out, elements: numTokens * numHeads * latentDim, copyIn: false },
    { name: 'q', array: a.q, elements: numTokens * numHeads * entry, copyIn: true },
    { name: 'cache', array: a.cache, elements: numSlots * entry, copyIn: true },
    { name: 'blockTables', array: a.blockTables, elements: numSeqs * maxBlocksPerSeq, copyIn: true },
    { name: 'seqStarts', array: seqStarts, elements: numSeqs + 1, copyIn: true },
    { name: 'positions', array: positions, elements: numTokens, copyIn: true },
  ];
  checkPieces(fail, pieces);
  // Every block a sequence reads must exist; each token's context length is its rows' cost.
  const tokenCost = new Float64Array(numTokens);
  for (let s = 0; s < numSeqs; s++) {
    const from = seqStarts[s]!;
    const to = seqStarts[s + 1]!;
    if (!(to >= from)) fail(`seqStarts must not decrease (seqStarts[${s + 1}] = ${to} < ${from})`);
    let maxPos = -1;
    for (let t = from; t < to; t++) {
      const pos = positions[t]!;
      if (!(pos >= 0)) fail(`positions[${t}] = ${pos}; positions must be >= 0`);
      maxPos = Math.max(maxPos, pos);
      tokenCost[t] = pos + 1;
    }
    const numBlocks = maxPos < 0 ? 0 : Math.floor(maxPos / blockSize) + 1;
    if (numBlocks > maxBlocksPerSeq) {
      fail(
        `sequence ${s} reaches position ${maxPos}: ${numBlocks} blocks, more than maxBlocksPerSeq ${maxBlocksPerSeq}`,
      );
    }
    for (let j = 0; j < numBlocks; j++) {
      const block = a.blockTables[s * maxBlocksPerSeq + j]!;
      if (block < 0 || (block + 1) * blockSize > numSlots) {
        fail(
          `blockTables[${s}, ${j}] = ${block}; the cache holds ${Math.floor(numSlots / blockSize)} blocks of ${blockSize}`,
        );
      }
    }
  }
  // Rows are token·numHeads + head.
  const rows = numTokens * numHeads;
  if (rows === 0) return;
  const flopsPerCost = (entry + latentDim) * 2;
  runRows(
    ctx,
    'mla_attention_batch',
    pieces,
    rows,
    (r) => tokenCost[Math.floor(r / numHeads)]!,
    flopsPerCost,
    (p, scratch, r0, r1) => [
      p.out!,
      p.q!,
      p.cache!,
      p.blockTables!,
      maxBlocksPerSeq,
      p.seqStarts!,
      numSeqs,
      p.positions!,
      numHeads,
      latentDim,
      ropeDim,
      blockSize,
      f32Bits(a.scale),
      scratch,
      r0,
      r1,
    ],
  );
}

/** See `Kernels.mhaAttention`. */
export function runMhaAttention(ctx: ThreadedKernelContext, a: MhaAttentionArgs): void {
  const fail = failer('mhaAttention');
  const { numTokens, numCtx, numHeads, nopeDim, ropeDim, vDim, positions } = a;
  checkCounts(fail, { numTokens, numCtx, numHeads, nopeDim, ropeDim, vDim });
  const pieces: Piece[] = [
    { name: 'out', array: a.out, elements: numTokens * numHeads * vDim, copyIn: false },
    { name: 'q', array: a.q, elements: numTokens * numHeads * (nopeDim + ropeDim), copyIn: true },
    { name: 'kv', array: a.kv, elements: numCtx * numHeads * (nopeDim + vDim), copyIn: true },
    { name: 'kRope', array: a.kRope, elements: numCtx * ropeDim, copyIn: true },
    { name: 'positions', array: positions, elements: numTokens, copyIn: true },
  ];
  checkPieces(fail, pieces);
  for (let t = 0; t < numTokens; t++) {
    const pos = positions[t]!;
    if (!(pos >= 0 && pos < numCtx)) fail(`positions[${t}] = ${pos}; allowed: 0..${numCtx - 1}`);
  }
  // Rows are head-major: head·numTokens + token.
  const rows = numTokens * numHeads;
  if (rows === 0) return;
  const flopsPerCost = (nopeDim + ropeDim + vDim) * 2;
  runRows(
    ctx,
    'mha_attention',
    pieces,
    rows,
    (r) => positions[r % numTokens]! + 1,
    flopsPerCost,
    (p, scratch, r0, r1) => [
      p.out!,
      p.q!,
      p.kv!,
      p.kRope!,
      p.positions!,
      numTokens,
      numHeads,
      nopeDim,
      ropeDim,
      vDim,
      f32Bits(a.scale),
      scratch,
      r0,
      r1,
    ],
  );
}

/** An array argument: its name, how many elements the kernel uses, whether it is read. */
interface Piece {
  readonly name: string;
  readonly array: Float32Array | Int32Array;
  readonly elements: number;
  readonly copyIn: boolean;
}

/**
 * Places the pieces in the primary memory (a copy in its scratch block for those outside it), splits
 * `rows` into per-thread ranges of equal total `rowCost` (context positions the row attends to, each worth
 * `flopsPerCost`), runs `kernel` with `argsOf` each thread's arguments (`scratch`: its own attention
 * scratch), and copies the output (the first piece) back.
 */
function runRows(
  ctx: ThreadedKernelContext,
  kernel: 'mla_attention_batch' | 'mha_attention',
  pieces: readonly Piece[],
  rows: number,
  rowCost: (r: number) => number,
  flopsPerCost: number,
  argsOf: (ptrs: Record<string, number>, scratch: number, r0: number, r1: number) => number[],
): void {
  const { primary, pool } = ctx;
  const g = primary.gemm;
  let totalCost = 0;
  for (let r = 0; r < rows; r++) totalCost += rowCost(r);
  const threads = Math.min(ctx.threadsFor((totalCost * flopsPerCost) / 30e9, rows), rows);
  const bounds = [0];
  let acc = 0;
  for (let r = 0; r < rows && bounds.length < threads; r++) {
    acc += rowCost(r);
    if (acc * threads >= bounds.length * totalCost) bounds.push(r + 1);
  }
  while (bounds.length <= threads) bounds.push(rows);
  bounds[threads] = rows;

  let copyBytes = 0;
  for (const p of pieces) if (!primary.owns(p.array)) copyBytes += align64(p.elements * 4);
  const threadScratch = align64(g.mla_attention_scratch_bytes(Math.min(rows, 128), 1));
  let s = primary.scratch(copyBytes + threads * threadScratch);
  const ptrs: Record<string, number> = {};
  for (const p of pieces) {
    if (primary.owns(p.array)) {
      ptrs[p.name] = p.array.byteOffset;
      continue;
    }
    const bytes = p.elements * 4;
    if (p.copyIn) {
      new Uint8Array(primary.memory.buffer, s, bytes).set(
        new Uint8Array(p.array.buffer, p.array.byteOffset, bytes),
      );
      ctx.copies.bytesIn += bytes;
    }
    ptrs[p.name] = s;
    s += align64(bytes);
  }
  const shares = Array.from({ length: threads }, (_, t) =>
    argsOf(ptrs, s + t * threadScratch, bounds[t]!, bounds[t + 1]!),
  );
  const runShare = (args: readonly number[]): void => g[kernel](...args);
  if (threads === 1) runShare(shares[0]!);
  else pool.runKernel(0, kernel, shares, runShare);
  const out = pieces[0]!;
  if (!primary.owns(out.array)) {
    (out.array as Float32Array).set(primary.f32(ptrs[out.name]!, out.elements));
    ctx.copies.bytesOut += out.elements * 4;
  }
}

function failer(kernel: string): (msg: string) => never {
  return (msg) => {
    throw new KernelArgumentError(`${kernel}: ${msg}`);
  };
}

function checkCounts(fail: (msg: string) => never, counts: Record<string, number>): void {
  for (const [name, v] of Object.entries(counts)) {
    if (!Number.isInteger(v) || v < 0) fail(`${name} = ${v}; it must be an integer >= 0`);
  }
}

/** Each piece long enough; the output (first piece) overlapping none of the inputs. */
function checkPieces(fail: (msg: string) => never, pieces: readonly Piece[]): void {
  for (const p of pieces) {
    if (p.array.length < p.elements) fail(`${p.name} has ${p.array.length} elements; needs ${p.elements}`);
  }
  const out = pieces[0]!.array;
  for (const p of pieces.slice(1)) {
    if (overlaps(out, p.array)) fail(`${pieces[0]!.name} must not overlap ${p.name}`);
  }
}

/** The bit pattern of a float32, as the kernels take their scale. */
function f32Bits(x: number): number {
  return new Int32Array(Float32Array.of(x).buffer)[0]!;
}

function align64(bytes: number): number {
  return Math.ceil(bytes / 64) * 64;
}

/** Whether two views of one buffer share bytes. */
function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return (
    a.buffer === b.buffer &&
    a.byteOffset < b.byteOffset + b.byteLength &&
    b.byteOffset < a.byteOffset + a.byteLength
  );
}
