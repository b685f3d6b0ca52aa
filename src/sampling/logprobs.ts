// Log-probabilities of the raw model distribution (log_softmax of the unprocessed logits, as vLLM V1
// returns by default): the sampled token's, its rank, the top-K, and the same for prompt positions.

import { expNonPositive } from './fast-exp.js';

/** Log-probabilities reported for one position. */
export interface TokenLogprobs {
  /** The id whose log-probability is reported (the sampled token, or the next prompt token). */
  readonly tokenId: number;
  readonly logprob: number;
  /** 1 + the number of ids with a strictly larger logit (1 = the most likely). */
  readonly rank: number;
  /** The K most likely ids, most likely first (ties: lower id first). */
  readonly topTokenIds: number[];
  readonly topLogprobs: number[];
}

/** log Σ exp(row[i]), computed stably in float64. -Infinity for a row of -Infinity. */
export function logSumExp(row: Float32Array): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (v > max) max = v;
  }
  if (max === Number.NEGATIVE_INFINITY || Number.isNaN(max)) return max;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += expNonPositive(row[i]! - max);
  return max + Math.log(sum);
}

/** log_softmax(row)[tokenId]; pass `lse` = logSumExp(row) when it is already known. */
export function tokenLogprob(row: Float32Array, tokenId: number, lse: number = logSumExp(row)): number {
  return row[tokenId]! - lse;
}

/** 1 + the number of entries of `row` strictly greater than row[tokenId]. */
export function tokenRank(row: Float32Array, tokenId: number): number {
  const v = row[tokenId]!;
  let rank = 1;
  for (let i = 0; i < row.length; i++) if (row[i]! > v) rank++;
  return rank;
}

/**
 * The k largest log-probabilities of `row` (log_softmax), most likely first, ties by lower id first.
 * One pass with a k-entry sorted buffer: O(V) for the small k that logprobs requests use.
 */
export function computeTopLogprobs(
  row: Float32Array,
  k: number,
  lse: number = logSumExp(row),
): { readonly tokenIds: number[]; readonly logprobs: number[] } {
  const n = Math.min(Math.max(k, 0), row.length);
  const ids: number[] = [];
  const values: number[] = [];
  if (n > 0) {
    for (let i = 0; i < row.length; i++) {
      const v = row[i]!;
      if (ids.length === n && !(v > values[n - 1]!)) continue;
      // Insert after entries >= v: equal values keep id order.
      let pos = ids.length === n ? n - 1 : ids.length;
      while (pos > 0 && values[pos - 1]! < v) pos--;
      if (ids.length === n) {
        ids.pop();
        values.pop();
      }
      ids.splice(pos, 0, i);
      values.splice(pos, 0, v);
    }
  }
  return { tokenIds: ids, logprobs: values.map((v) => v - lse) };
}

/** Everything reported for one position: `tokenId`'s log-probability and rank, and the top-k. */
export function computeTokenLogprobs(row: Float32Array, tokenId: number, k: number): TokenLogprobs {
  const lse = logSumExp(row);
  const top = computeTopLogprobs(row, k, lse);
  return {
    tokenId,
    logprob: tokenLogprob(row, tokenId, lse),
    rank: tokenRank(row, tokenId),
    topTokenIds: top.tokenIds,
    topLogprobs: top.logprobs,
  };
}
