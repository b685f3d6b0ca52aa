// The sampler: picks the next token of every row of a batch of logits, applying each request's sampling
// parameters in vLLM V1's order: logit_bias and min_tokens, then penalties (logits-processors.ts), then
// greedy argmax, or temperature, min_p, top_k, top_p (each on the distribution the previous ones left) and
// a draw from the request's own generator. Log-probabilities come from the raw logits (vLLM's default).
//
// Speed: a vocabulary row has 102400–129280 entries. The edits before sampling are sparse and done in
// place (and undone before returning); greedy is one pass; min_p and top_k become a logit threshold (top_k
// by quickselect, O(V)); top_p buckets the candidates by probability and sorts only the bucket where the
// nucleus ends; exp is a polynomial (fast-exp.ts) and skips the negligible tail.

import { expNonPositive } from './fast-exp.js';
import { applyLogitsProcessors } from './logits-processors.js';
import { computeTopLogprobs, logSumExp, type TokenLogprobs, tokenRank } from './logprobs.js';
import { isGreedy } from './sampling-params.js';
import type { RequestSamplingState } from './sampling-state.js';

/** The sampler's result for a batch. */
export interface SamplerOutput {
  /** [numRows] the chosen token of each row. */
  readonly sampledTokenIds: Int32Array;
  /** Per row: the sampled token's raw log-probability, rank and top-K, or null when logprobs is null. */
  readonly logprobs: (TokenLogprobs | null)[];
}

/** A logits buffer that does not hold one row of `vocabSize` per request. */
export class SamplerShapeError extends Error {
  override readonly name = 'SamplerShapeError';
}

/**
 * Candidates more than this many nats (of logit / temperature) below the best get weight 0: together they
 * hold at most 129280 · e^-48.5 ≈ 1e-16 of the mass, below float64 rounding of the total.
 */
const NEGLIGIBLE_NATS = 48.5;
/** top_p buckets candidates by (max - logit) / T in steps of 1/BUCKETS_PER_NAT nats. */
const BUCKETS_PER_NAT = 4;
const NUM_BUCKETS = Math.ceil(NEGLIGIBLE_NATS * BUCKETS_PER_NAT) + 1;
/** top_k up to this uses a sorted buffer, above it quickselect. */
const SMALL_TOP_K = 128;

/** Options of a {@link Sampler}. */
export interface SamplerOptions {
  /**
   * The index of a row's largest value, ties to the lowest index, NaN ignored, 0 for a row with nothing
   * above −∞ (default: {@link argmax}; the engine passes its kernels' SIMD argmax).
   */
  readonly argmax?: (row: Float32Array) => number;
}

/** Samples batches of logits rows of one vocabulary size. Holds scratch buffers; not shared across threads. */
export class Sampler {
  readonly vocabSize: number;
  private readonly candidateIds: Int32Array;
  private readonly candidateWeights: Float64Array;
  private readonly candidateBuckets: Uint16Array;
  private readonly selectScratch: Float32Array;
  private readonly bucketScratch: Float64Array;
  private readonly bucketMass = new Float64Array(NUM_BUCKETS);
  private readonly savedIds: number[] = [];
  private readonly savedValues: number[] = [];
  private readonly recordEdit = (id: number, previousValue: number): void => {
    this.savedIds.push(id);
    this.savedValues.push(previousValue);
  };

  private readonly argmax: (row: Float32Array) => number;

  constructor(vocabSize: number, options: SamplerOptions = {}) {
    if (!Number.isInteger(vocabSize) || vocabSize < 1) {
      throw new SamplerShapeError(`vocabSize must be a positive integer, got ${vocabSize}`);
    }
    this.vocabSize = vocabSize;
    this.argmax = options.argmax ?? argmax;
    this.candidateIds = new Int32Array(vocabSize);
    this.candidateWeights = new Float64Array(vocabSize);
    this.candidateBuckets = new Uint16Array(vocabSize);
    this.selectScratch = new Float32Array(vocabSize);
    this.bucketScratch = new Float64Array(vocabSize);
  }

  /**
   * Samples one token per request. `logits` is [states.length, vocabSize] row-major; its rows are used
   * as scratch but hold their original values again on return. Advances the generators of random rows
   * only; does not record the sampled tokens (call state.appendOutputToken).
   */
  sample(logits: Float32Array, states: readonly RequestSamplingState[]): SamplerOutput {
    const V = this.vocabSize;
    if (logits.length < states.length * V) {
      throw new SamplerShapeError(
        `logits hold ${logits.length} values, fewer than ${states.length} rows × vocabSize ${V}`,
      );
    }
    const sampledTokenIds = new Int32Array(states.length);
    const logprobs: (TokenLogprobs | null)[] = [];
    for (let r = 0; r < states.length; r++) {
      const row = logits.subarray(r * V, (r + 1) * V);
      const state = states[r]!;
      const k = state.params.logprobs;
      const lse = k !== null ? logSumExp(row) : 0;
      const top = k !== null ? computeTopLogprobs(row, k, lse) : null;

      applyLogitsProcessors(row, state, this.recordEdit);
      const tokenId = isGreedy(state.params) ? this.argmax(row) : this.sampleRandom(row, state);
      sampledTokenIds[r] = tokenId;
      this.restore(row);

      logprobs.push(
        top === null
          ? null
          : {
              tokenId,
              logprob: row[tokenId]! - lse,
              rank: tokenRank(row, tokenId),
              topTokenIds: top.tokenIds,
              topLogprobs: top.logprobs,
            },
      );
    }
    return { sampledTokenIds, logprobs };
  }

  /** Puts back every edited value (in reverse, so an id edited twice gets its first saved value). */
  private restore(row: Float32Array): void {
    for (let i = this.savedIds.length - 1; i >= 0; i--) row[this.savedIds[i]!] = this.savedValues[i]!;
    this.savedIds.length = 0;
    this.savedValues.length = 0;
  }

  /** Temperature, min_p, top_k, top_p, then one uniform draw from the request's generator. */
  private sampleRandom(row: Float32Array, state: RequestSamplingState): number {
    const { temperature, minP, topK, topP } = state.params;
    const V = row.length;
    const invT = 1 / temperature;
    const best = this.argmax(row);
    const maxLogit = row[best]!;
    if (!(maxLogit > Number.NEGATIVE_INFINITY)) return best;

    // min_p, top_k and the negligible tail each keep every logit at or above a threshold (in logit space:
    // dividing by the temperature preserves order).
    let threshold = maxLogit - NEGLIGIBLE_NATS * temperature;
    if (minP > 0) threshold = Math.max(threshold, maxLogit + Math.log(minP) * temperature);
    if (topK > 0 && topK < V) threshold = Math.max(threshold, this.kthLargest(row, topK, threshold));

    // Candidates and their unnormalised probabilities exp((logit - max) / T).
    const ids = this.candidateIds;
    const weights = this.candidateWeights;
    let n = 0;
    let total = 0;
    for (let i = 0; i < V; i++) {
      const v = row[i]!;
      if (v >= threshold) {
        const w = expNonPositive((v - maxLogit) * invT);
        ids[n] = i;
        weights[n] = w;
        total += w;
        n++;
      }
    }
    if (topP < 1 && n > 1) {
      const cutoff = this.topPCutoffWeight(row, n, total * topP, maxLogit, invT);
      let m = 0;
      total = 0;
      for (let j = 0; j < n; j++) {
        const w = weights[j]!;
        if (w >= cutoff) {
          ids[m] = ids[j]!;
          weights[m] = w;
          total += w;
          m++;
        }
      }
      n = m;
    }

    const target = state.rng.nextFloat() * total;
    let acc = 0;
    for (let j = 0; j < n; j++) {
      acc += weights[j]!;
      if (acc > target) return ids[j]!;
    }
    return n > 0 ? ids[n - 1]! : best;
  }

  /**
   * The smallest weight in the nucleus: the most likely candidates whose mass first reaches `mass`. Buckets
   * the candidates by (max - logit) / T; buckets before the one where the mass is reached are wholly in the
   * nucleus, so only that bucket is sorted.
   */
  private topPCutoffWeight(
    row: Float32Array,
    n: number,
    mass: number,
    maxLogit: number,
    invT: number,
  ): number {
    const ids = this.candidateIds;
    const weights = this.candidateWeights;
    const bucketOf = this.candidateBuckets;
    const bucketMass = this.bucketMass;
    bucketMass.fill(0);
    const scale = invT * BUCKETS_PER_NAT;
    for (let j = 0; j < n; j++) {
      const b = Math.min(NUM_BUCKETS - 1, Math.floor((maxLogit - row[ids[j]!]!) * scale));
      bucketOf[j] = b;
      bucketMass[b]! += weights[j]!;
    }
    let last = NUM_BUCKETS - 1;
    let massBefore = 0;
    for (let b = 0; b < NUM_BUCKETS; b++) {
      if (massBefore + bucketMass[b]! >= mass) {
        last = b;
        break;
      }
      massBefore += bucketMass[b]!;
    }
    const inBucket = this.bucketScratch;
    let m = 0;
    for (let j = 0; j < n; j++) if (bucketOf[j] === last) inBucket[m++] = weights[j]!;
    const sorted = inBucket.subarray(0, m).sort(); // ascending; walk from the largest
    let sum = massBefore;
    for (let j = m - 1; j >= 0; j--) {
      sum += sorted[j]!;
      if (sum >= mass) return sorted[j]!;
    }
    return m > 0 ? sorted[0]! : 0;
  }

  /**
   * The k-th largest logit among those >= floor (-Infinity if fewer than k): for small k one pass with a
   * sorted k-entry buffer (most values fail one comparison), else quickselect, O(V) on average.
   */
  private kthLargest(row: Float32Array, k: number, floor: number): number {
    return k <= SMALL_TOP_K ? kthLargestSmall(row, k, floor) : this.kthLargestSelect(row, k, floor);
  }

  private kthLargestSelect(row: Float32Array, k: number, floor: number): number {
    const a = this.selectScratch;
    let n = 0;
    for (let i = 0; i < row.length; i++) {
      const v = row[i]!;
      if (v >= floor) a[n++] = v;
    }
    if (n <= k) return Number.NEGATIVE_INFINITY;
    const target = k - 1;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const pivot = medianOfThree(a[lo]!, a[(lo + hi) >>> 1]!, a[hi]!);
      let i = lo;
      let j = hi;
      while (i <= j) {
        while (a[i]! > pivot) i++;
        while (a[j]! < pivot) j--;
        if (i <= j) {
          const t = a[i]!;
          a[i] = a[j]!;
          a[j] = t;
          i++;
          j--;
        }
      }
      // Now a[lo..j] >= pivot >= a[i..hi], and a[j+1..i-1] == pivot.
      if (target <= j) hi = j;
      else if (target >= i) lo = i;
      else return pivot;
    }
    return a[lo]!;
  }
}

/** See {@link Sampler.kthLargest}; k <= SMALL_TOP_K. */
function kthLargestSmall(row: Float32Array, k: number, floor: number): number {
  const buffer = new Float64Array(k); // descending
  let count = 0;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (!(v >= floor) || (count === k && !(v > buffer[k - 1]!))) continue;
    let pos = count < k ? count++ : k - 1;
    while (pos > 0 && buffer[pos - 1]! < v) {
      buffer[pos] = buffer[pos - 1]!;
      pos--;
    }
    buffer[pos] = v;
  }
  return count < k ? Number.NEGATIVE_INFINITY : buffer[k - 1]!;
}

/** Index of the largest value (ties: the lowest index); 0 for a row of -Infinity or NaN. */
export function argmax(row: Float32Array): number {
  let best = 0;
  let bestValue = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < row.length; i++) {
    const v = row[i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

function medianOfThree(a: number, b: number, c: number): number {
  if (a > b) [a, b] = [b, a];
  return Math.max(a, Math.min(b, c));
}
