// Acceptance 2 over shared memory: every collective, sizes 0 / 1 / odd / 3 MB, for 2, 3 and 4 worker-thread
// ranks, equals the one-rank reference; plus a small chunk size that forces many rounds per collective.

import { test } from 'node:test';
import { createSharedMemoryGroup } from '../../src/distributed/group.js';
import { assertMatrix, MATRIX_SIZES } from './check-matrix.js';
import { resultsWithin, startThreadRanks } from './rank-harness.js';

for (const world of [2, 3, 4]) {
  test(`shared memory, ${world} ranks: every collective equals the reference`, async () => {
    const ranks = startThreadRanks(createSharedMemoryGroup(world), {
      scenario: 'matrix',
      params: { sizes: MATRIX_SIZES },
      options: { timeoutMs: 20_000 },
    });
    assertMatrix(await resultsWithin(ranks, 60_000), `shm x${world}`, MATRIX_SIZES.length);
  });
}

test('shared memory, 3 ranks, 4 KB chunks: many rounds, slot reuse, direct and two-phase sums', async () => {
  const ranks = startThreadRanks(createSharedMemoryGroup(3, { chunkBytes: 4096 }), {
    scenario: 'matrix',
    params: { sizes: [0, 1, 1001, 40_000] },
    options: { timeoutMs: 20_000 },
  });
  assertMatrix(await resultsWithin(ranks, 60_000), 'shm x3 4KB chunks', 4);
});

test('shared memory, 1 rank: collectives are local', async () => {
  const ranks = startThreadRanks(createSharedMemoryGroup(1), {
    scenario: 'matrix',
    params: { sizes: [0, 1, 1001] },
  });
  assertMatrix(await resultsWithin(ranks, 30_000), 'shm x1', 3);
});
