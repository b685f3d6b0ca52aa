// Acceptance 2, second half: asynchronous handles really overlap. On a bandwidth-limited link (the
// network-namespace testbed where root and `ip netns` work, and everywhere a throttled TCP relay), rank
// 0 keeps computing on its own thread while a large all-reduce is in flight, polling `isDone` between
// blocks of work; the work done during the transfer must be most of what it does in the same time with
// nothing in flight. Also: a rank killed while a large transfer is in flight on the slow link fails the
// other rank at once.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { inHost, whyNoNetns, withTestbed } from '../../scripts/testbed/testbed.js';
import { createTcpGroup, findFreePorts, type TcpGroupDescriptor } from '../../src/distributed/group.js';
import { startThrottledProxy } from '../helpers/throttled-proxy.js';
import { type RankHandle, resultsWithin, startProcessRanks, startThreadRanks } from './rank-harness.js';

const RATE_MBIT = 50;
const BYTES_PER_SECOND = (RATE_MBIT * 1e6) / 8;
/** 3 MB of floats: a two-rank ring all-reduce moves 3 MB each way, about 0.5 s at 50 Mbit/s. */
const ELEMENTS = 786_432;
const LINK_SECONDS = (ELEMENTS * 4) / BYTES_PER_SECOND;

interface OverlapResult {
  readonly ok: boolean;
  readonly transferMs?: number;
  readonly computeMs?: number;
  readonly fraction?: number;
  readonly fractions?: number[];
  readonly computeShares?: number[];
}

const pct = (f: number) => `${(f * 100).toFixed(0)}%`;

function assertOverlap(results: unknown[], label: string): void {
  const [computing, other] = results as OverlapResult[];
  assert.equal(computing!.ok, true, `${label}: rank 0 sums`);
  assert.equal(other!.ok, true, `${label}: rank 1 sums`);
  const { transferMs, computeMs, fraction, fractions, computeShares } = computing!;
  console.log(
    `  ${label}: transfer ${transferMs!.toFixed(0)} ms (link time ${(LINK_SECONDS * 1000).toFixed(0)} ms); ` +
      `compute thread inside compute blocks ${computeShares!.map(pct).join(', ')} of each transfer; ` +
      `work done meanwhile vs solo rate ${fractions!.map(pct).join(', ')} (best: ${computeMs!.toFixed(0)} ms of work)`,
  );
  // The link, not the CPU, bounds the transfer: it takes at least 80% of the pure link time.
  assert.ok(transferMs! >= 0.8 * LINK_SECONDS * 1000, `${label}: transfer ${transferMs} ms is link-limited`);
  // The compute thread is never held by the communication: nearly all of every transfer's wall time is
  // spent in its own compute blocks (a collective that moved data on the calling thread would give ~0).
  // This share does not depend on the machine's other load.
  for (const share of computeShares!) assert.ok(share >= 0.8, `${label}: compute share ${pct(share)}`);
  // And that work proceeds at speed: at least half the solo rate in the best of the repeats (the rest
  // covers the staging copies, two cores shared with the communication threads, and a shared machine).
  assert.ok(fraction! >= 0.5, `${label}: compute progressed at ${pct(fraction!)} of its solo rate`);
}

/** Two thread ranks whose only connection (rank 1 dials rank 0) goes through a throttled relay. */
async function withThrottledPair<T>(
  body: (descriptorFor: (r: number) => TcpGroupDescriptor) => Promise<T>,
): Promise<T> {
  const [p0, p1] = await findFreePorts(2);
  const direct = createTcpGroup([
    { host: '127.0.0.1', port: p0! },
    { host: '127.0.0.1', port: p1! },
  ]);
  const proxy = await startThrottledProxy({ host: '127.0.0.1', port: p0! }, BYTES_PER_SECOND);
  const viaProxy: TcpGroupDescriptor = {
    ...direct,
    peers: [{ host: '127.0.0.1', port: proxy.port }, direct.peers[1]!],
  };
  try {
    return await body((r) => (r === 0 ? direct : viaProxy));
  } finally {
    await proxy.close();
  }
}

/** Kills rank 1 while the all-reduce is on the wire; rank 0 must fail promptly, naming rank 1. */
async function assertKillMidTransfer(ranks: RankHandle[]): Promise<void> {
  await Promise.all(ranks.map((r) => r.waitFor('issued')));
  await new Promise((resolve) => setTimeout(resolve, (LINK_SECONDS * 1000) / 4));
  await ranks[1]!.kill();
  const killedAt = performance.now();
  const [r] = (await resultsWithin([ranks[0]!], 20_000)) as {
    message?: string;
    peerRank?: number;
    completed?: boolean;
  }[];
  assert.equal(r!.completed, undefined, 'the transfer cannot complete without rank 1');
  assert.equal(r!.peerRank, 1, r!.message);
  assert.match(r!.message!, /connection to peer rank 1 lost \(.*\): its process died or the network failed/);
  assert.ok(performance.now() - killedAt < 5000, 'detected within seconds, far below the 60 s timeout');
}

test(`overlap on a ${RATE_MBIT} Mbit/s throttled TCP relay: compute progresses during a large all-reduce`, async () => {
  await withThrottledPair(async (descriptorFor) => {
    const ranks = startThreadRanks(descriptorFor(0), {
      descriptorFor,
      scenario: 'overlap',
      params: { elements: ELEMENTS, computeRank: 0 },
      options: { timeoutMs: 20_000 },
    });
    assertOverlap(await resultsWithin(ranks, 30_000), 'relay');
  });
});

test('a rank killed mid-transfer on the throttled relay fails the other at once', async () => {
  await withThrottledPair(async (descriptorFor) => {
    const ranks = startThreadRanks(descriptorFor(0), {
      descriptorFor,
      scenario: 'expectFailure',
      params: { elements: ELEMENTS },
      options: { timeoutMs: 60_000 },
    });
    await assertKillMidTransfer(ranks);
  });
});

const noNetns = whyNoNetns();

test(`overlap on a ${RATE_MBIT} Mbit/s testbed link (network namespaces): compute progresses during a large all-reduce`, {
  skip: noNetns && `skipped: the testbed needs root and ip netns (${noNetns})`,
}, async () => {
  await withTestbed({ hosts: 2, bandwidth: `${RATE_MBIT}mbit` }, async (hosts) => {
    const group = createTcpGroup(hosts.map((h) => ({ host: h.address, port: 29_500 })));
    const ranks = startProcessRanks(group, {
      scenario: 'overlap',
      params: { elements: ELEMENTS, computeRank: 0 },
      options: { timeoutMs: 20_000 },
      wrap: (r) => inHost(hosts[r]!),
    });
    assertOverlap(await resultsWithin(ranks, 30_000), 'testbed');
  });
});

test('a rank process killed mid-transfer on the testbed link fails the other at once', {
  skip: noNetns && `skipped: the testbed needs root and ip netns (${noNetns})`,
}, async () => {
  await withTestbed({ hosts: 2, bandwidth: `${RATE_MBIT}mbit` }, async (hosts) => {
    const group = createTcpGroup(hosts.map((h) => ({ host: h.address, port: 29_500 })));
    const ranks = startProcessRanks(group, {
      scenario: 'expectFailure',
      params: { elements: ELEMENTS },
      options: { timeoutMs: 60_000 },
      wrap: (r) => inHost(hosts[r]!),
    });
    await assertKillMidTransfer(ranks);
  });
});
