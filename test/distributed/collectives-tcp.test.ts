// Acceptance 2 over TCP on loopback: every collective, sizes 0 / 1 / odd / 3 MB, for 2, 3 and 4 ranks as
// worker threads, and 2 ranks as separate processes; plus small frames (many chunks in the pipelined
// ring) and Unix-domain sockets.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createLoopbackTcpGroup, createTcpGroup } from '../../src/distributed/group.js';
import { assertMatrix, MATRIX_SIZES } from './check-matrix.js';
import { resultsWithin, startProcessRanks, startThreadRanks } from './rank-harness.js';

const options = { timeoutMs: 20_000 };

for (const world of [2, 3, 4]) {
  test(`TCP loopback, ${world} thread ranks: every collective equals the reference`, async () => {
    const ranks = startThreadRanks(await createLoopbackTcpGroup(world), {
      scenario: 'matrix',
      params: { sizes: MATRIX_SIZES },
      options,
    });
    assertMatrix(await resultsWithin(ranks, 90_000), `tcp x${world}`, MATRIX_SIZES.length);
  });
}

test('TCP loopback, 2 process ranks: every collective equals the reference', async () => {
  const ranks = startProcessRanks(await createLoopbackTcpGroup(2), {
    scenario: 'matrix',
    params: { sizes: MATRIX_SIZES },
    options,
  });
  assertMatrix(await resultsWithin(ranks, 90_000), 'tcp x2 processes', MATRIX_SIZES.length);
});

test('TCP loopback, 3 ranks, 4 KB frames: the pipelined ring and chain with many chunks', async () => {
  const ranks = startThreadRanks(await createLoopbackTcpGroup(3, { chunkBytes: 4096 }), {
    scenario: 'matrix',
    params: { sizes: [0, 1, 1001, 100_000] },
    options,
  });
  assertMatrix(await resultsWithin(ranks, 90_000), 'tcp x3 4KB frames', 4);
});

test('Unix-domain sockets, 3 ranks: every collective equals the reference', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'duet-uds-'));
  try {
    const group = createTcpGroup([0, 1, 2].map((r) => ({ path: join(dir, `rank${r}.sock`) })));
    const ranks = startThreadRanks(group, {
      scenario: 'matrix',
      params: { sizes: [0, 1, 1001, 100_000] },
      options,
    });
    assertMatrix(await resultsWithin(ranks, 90_000), 'unix x3', 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('TCP, 1 rank: collectives are local', async () => {
  const ranks = startThreadRanks(await createLoopbackTcpGroup(1), {
    scenario: 'matrix',
    params: { sizes: [0, 1, 1001] },
  });
  assertMatrix(await resultsWithin(ranks, 30_000), 'tcp x1', 3);
});
