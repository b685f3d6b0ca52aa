// Dual-batch overlap's split policy and splitter (in the model runner, not the model): decide whether a
// step's batch is split into two micro-batches, where, and cut every per-step input consistently; join
// the two micro-batches' logits back in the original order.
//
// Balance is by attention cost: a token costs LINEAR_COST_PER_TOKEN (its share of the projections and
// experts, in units of attended positions) plus the number of positions it attends to. The split falls on
// a request boundary when one lands within 10% of balance; otherwise inside the prefill that straddles the
// middle, its second part continuing that request's prefill exactly as a chunked prefill does.

import type { ForwardBatch, SequenceSlice } from '../layers/forward-batch.js';

/** Attended positions that one token's non-attention work is worth (projections, MLP, experts). */
export const LINEAR_COST_PER_TOKEN = 256;
/** A request boundary within this fraction of the total cost from the middle is balanced enough. */
export const BOUNDARY_TOLERANCE = 0.1;

export interface DboThresholds {
  /** Steps with a prefill and fewer tokens than this run as one batch. */
  readonly prefillTokenThreshold: number;
  /** Decode-only steps are split only at or above this many tokens. */
  readonly decodeTokenThreshold: number;
}

export const DEFAULT_DBO_THRESHOLDS: DboThresholds = { prefillTokenThreshold: 256, decodeTokenThreshold: 32 };

/** Where to split: the first micro-batch holds tokens [0, splitToken). */
export interface SplitDecision {
  readonly split: boolean;
  /** Token index where micro-batch B starts (0 < splitToken < numTokens when split). */
  readonly splitToken: number;
  /** Why, for the debug log. */
  readonly reason: string;
  /** Costs of the two parts (0 for B when not split). */
  readonly costA: number;
  readonly costB: number;
}

/** A batch field the splitter does not know how to split. */
export class MicroBatchSplitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MicroBatchSplitError';
  }
}

const KNOWN_FIELDS = new Set(['numTokens', 'tokenIds', 'positions', 'slotMapping', 'seqs', 'logitsIndices']);

/** Cost of each token of the batch (linear work plus attended positions). */
function tokenCosts(batch: ForwardBatch, linearCost: number): Float64Array {
  const costs = new Float64Array(batch.numTokens);
  for (let t = 0; t < batch.numTokens; t++) costs[t] = linearCost + batch.positions[t]! + 1;
  return costs;
}

/** Decides whether and where to split the batch. */
export function decideSplit(
  batch: ForwardBatch,
  thresholds: DboThresholds = DEFAULT_DBO_THRESHOLDS,
  /** A token's non-attention work in attended positions (measured by dbo-plan.ts; default a guess). */
  linearCost = LINEAR_COST_PER_TOKEN,
): SplitDecision {
  const T = batch.numTokens;
  const hasPrefill = batch.seqs.some((s) => s.queryLen > 1);
  const threshold = hasPrefill ? thresholds.prefillTokenThreshold : thresholds.decodeTokenThreshold;
  const none = (reason: string): SplitDecision => ({
    split: false,
    splitToken: T,
    reason,
    costA: 0,
    costB: 0,
  });
  if (T < 2) return none('a single token cannot be split');
  if (T < threshold) {
    return none(`${T} tokens < ${hasPrefill ? 'prefill' : 'decode'} threshold ${threshold}`);
  }
  const costs = tokenCosts(batch, linearCost);
  const total = costs.reduce((a, b) => a + b, 0);
  const prefix = new Float64Array(T + 1);
  for (let t = 0; t < T; t++) prefix[t + 1] = prefix[t]! + costs[t]!;

  // Best request boundary (never 0 or T: no empty micro-batch).
  let bestBoundary = -1;
  let bestGap = Number.POSITIVE_INFINITY;
  for (const s of batch.seqs.slice(1)) {
    const gap = Math.abs(prefix[s.queryStart]! - total / 2);
    if (gap < bestGap) {
      bestGap = gap;
      bestBoundary = s.queryStart;
    }
  }
  const decision = (splitToken: number, reason: string): SplitDecision => ({
    split: true,
    splitToken,
    reason,
    costA: prefix[splitToken]!,
    costB: total - prefix[splitToken]!,
  });
  if (bestBoundary > 0 && bestGap <= BOUNDARY_TOLERANCE * total) {
    return decision(
      bestBoundary,
      `request boundary within ${((bestGap / total) * 100).toFixed(1)}% of balance`,
    );
  }
  // Split inside the prefill that straddles the middle, at its most balanced token.
  let mid = 1;
  while (mid < T && prefix[mid]! < total / 2) mid++;
  if (mid > 1 && Math.abs(prefix[mid - 1]! - total / 2) < Math.abs(prefix[mid]! - total / 2)) mid--;
  mid = Math.min(Math.max(mid, 1), T - 1);
  const straddling = batch.seqs.find((s) => s.queryStart < mid && mid < s.queryStart + s.queryLen);
  if (straddling)
    return decision(
      mid,
      `inside a prefill at token ${mid - straddling.queryStart} of ${straddling.queryLen}`,
    );
  if (bestBoundary > 0) return decision(bestBoundary, 'best request boundary (no prefill to split)');
  return none('no split point');
}

/** The two micro-batches and how to join their outputs. */
export interface MicroBatches {
  readonly a: ForwardBatch;
  readonly b: ForwardBatch;
  /** For each original logits row: [micro-batch (0 = a, 1 = b), row within it]. */
  readonly logitsOrigin: readonly (readonly [0 | 1, number])[];
}

/** Cuts every per-step input of `batch` at token `at` (0 < at < numTokens). */
export function splitForwardBatch(batch: ForwardBatch, at: number): MicroBatches {
  for (const key of Object.keys(batch)) {
    if (!KNOWN_FIELDS.has(key)) {
      throw new MicroBatchSplitError(`the micro-batch splitter does not know the batch field "${key}"`);
    }
  }
  const T = batch.numTokens;
  if (!(at > 0 && at < T)) throw new MicroBatchSplitError(`split point ${at} must be inside 1..${T - 1}`);
  const seqsA: SequenceSlice[] = [];
  const seqsB: SequenceSlice[] = [];
  for (const s of batch.seqs) {
    const end = s.queryStart + s.queryLen;
    if (end <= at) seqsA.push(s);
    else if (s.queryStart >= at) seqsB.push({ ...s, queryStart: s.queryStart - at });
    else {
      // The straddling prefill: A computes its first part, B continues it (A writes that KV first).
      seqsA.push({ ...s, queryLen: at - s.queryStart });
      seqsB.push({ ...s, queryStart: 0, queryLen: end - at });
    }
  }
  const rowsA: number[] = [];
  const rowsB: number[] = [];
  const logitsOrigin: [0 | 1, number][] = [];
  for (const r of batch.logitsIndices) {
    if (r < at) {
      logitsOrigin.push([0, rowsA.length]);
      rowsA.push(r);
    } else {
      logitsOrigin.push([1, rowsB.length]);
      rowsB.push(r - at);
    }
  }
  const part = (from: number, to: number, seqs: SequenceSlice[], rows: number[]): ForwardBatch => ({
    numTokens: to - from,
    tokenIds: batch.tokenIds.subarray(from, to),
    positions: batch.positions.subarray(from, to),
    slotMapping: batch.slotMapping.subarray(from, to),
    seqs,
    logitsIndices: Int32Array.from(rows),
  });
  return { a: part(0, at, seqsA, rowsA), b: part(at, T, seqsB, rowsB), logitsOrigin };
}

/** Joins the micro-batches' logits ([rows, vocab] each) back into the original row order. */
export function joinLogits(
  mb: MicroBatches,
  logitsA: Float32Array,
  logitsB: Float32Array,
  vocab: number,
): Float32Array {
  const out = new Float32Array(mb.logitsOrigin.length * vocab);
  mb.logitsOrigin.forEach(([which, row], i) => {
    const src = which === 0 ? logitsA : logitsB;
    out.set(src.subarray(row * vocab, (row + 1) * vocab), i * vocab);
  });
  return out;
}
