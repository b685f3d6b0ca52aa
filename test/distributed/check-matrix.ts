// Shared assertions over the results of the correctness matrix (see collective-cases.ts).

import assert from 'node:assert/strict';
import { CASES_PER_SIZE, type CaseResult, FINAL_CASES } from './collective-cases.js';

/** The sizes of acceptance 2: empty, one element, odd, and 3 MB of floats. */
export const MATRIX_SIZES = [0, 1, 1001, 786_432] as const;

/** Every case passed on every rank, and the random-float sums are bitwise identical across ranks. */
export function assertMatrix(results: unknown[], label: string, numSizes: number): void {
  const perRank = results as CaseResult[][];
  for (const [rank, cases] of perRank.entries()) {
    const failed = cases.filter((c) => !c.ok);
    assert.deepEqual(
      failed.map((c) => `${c.name}: ${c.detail}`),
      [],
      `${label}: rank ${rank} has ${failed.length} failing cases`,
    );
  }
  const first = perRank[0]!;
  for (const [i, c] of first.entries()) {
    if (c.hash === undefined) continue;
    for (const [rank, cases] of perRank.entries())
      assert.equal(cases[i]!.hash, c.hash, `${label}: ${c.name} differs between rank 0 and rank ${rank}`);
  }
  assert.equal(first.length, numSizes * CASES_PER_SIZE + FINAL_CASES, `${label}: number of cases run`);
}
