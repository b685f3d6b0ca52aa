// Reads the golden reference outputs shipped in test/fixtures (see test/fixtures/GOLDEN_README.md) and
// offers the small numeric helpers the golden comparisons share.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface GoldenPrompt {
  readonly name: string;
  readonly ids: number[];
  readonly argmax: number[];
  readonly top5_ids: number[][];
  readonly top5_logprobs: number[][];
  readonly last_logits: number[];
  readonly routing: Record<string, { experts: number[][]; weights: number[][] }>;
  readonly greedy: { ids: number[]; step_top5_ids: number[][]; step_top5_logprobs: number[][] };
}

export interface Golden {
  readonly prompts: GoldenPrompt[];
  readonly tokenizer_cases: { text: string; ids: number[]; decoded: string; decoded_skip_special: string }[];
}

/** Absolute path of a fixture folder (compiled tests live in dist/test/helpers). */
export function fixtureDir(name: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  return join(here, '..', '..', '..', 'test', 'fixtures', name);
}

export function loadGolden(name: string): Golden {
  return JSON.parse(readFileSync(join(fixtureDir(name), 'golden.json'), 'utf8')) as Golden;
}

/** log-softmax of one row, in float64. */
export function logSoftmax(row: Float32Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (const v of row) max = Math.max(max, v);
  let sum = 0;
  for (const v of row) sum += Math.exp(v - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(row, (v) => v - lse);
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/**
 * Fraction of prompt positions whose argmax is the reference's: `logits[i]` is [prompt i's length, V],
 * `prompts[i].argmax` the reference argmax at each of its positions.
 */
export function argmaxAgreement(
  logits: readonly Float32Array[],
  prompts: readonly { readonly ids: readonly number[]; readonly argmax: readonly number[] }[],
  V: number,
): number {
  let same = 0;
  let total = 0;
  prompts.forEach((p, i) => {
    for (let t = 0; t < p.ids.length; t++) {
      if (argmax(logits[i]!.subarray(t * V, (t + 1) * V)) === p.argmax[t]) same++;
      total++;
    }
  });
  return same / total;
}

/**
 * Asserts that `logits` ([prompt length, vocab]: one row per prompt position) give the prompt's golden
 * argmax at every position and its golden top-5 log-probs within `tol`. `who` names the caller in messages.
 */
export function assertPrefillMatchesGolden(
  logits: Float32Array,
  p: GoldenPrompt,
  vocabSize: number,
  tol: number,
  who = p.name,
): void {
  for (let t = 0; t < p.ids.length; t++) {
    const row = logits.subarray(t * vocabSize, (t + 1) * vocabSize);
    assert.equal(argmax(row), p.argmax[t], `${who}: argmax at ${t}`);
    const lp = logSoftmax(row);
    p.top5_ids[t]!.forEach((id, j) => {
      const d = Math.abs(lp[id]! - p.top5_logprobs[t]![j]!);
      assert.ok(d <= tol, `${who}: top-5 log-prob ${j + 1} at ${t} off by ${d}`);
    });
  }
}
