// Failure handling: a rank killed mid-collective (worker thread or process), a rank that stalls, ranks
// that issue different collectives, a rank that closes early, groups that cannot form, and bad
// arguments. The survivors must get a CollectiveError naming the culprit within the timeout, never hang.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { CollectiveError, InvalidCollectiveError } from '../../src/distributed/communicator.js';
import { connectCommunicator } from '../../src/distributed/connect.js';
import {
  createLoopbackTcpGroup,
  createSharedMemoryGroup,
  createTcpGroup,
  type GroupDescriptor,
} from '../../src/distributed/group.js';
import { type RankHandle, resultsWithin, startProcessRanks, startThreadRanks } from './rank-harness.js';

interface FailureResult {
  readonly completed?: boolean;
  readonly isCollectiveError?: boolean;
  readonly message?: string;
  readonly peerRank?: number;
  readonly elapsedMs?: number;
  readonly later?: { isCollectiveError?: boolean; message?: string };
  readonly fault?: string;
}

/** Kills rank `victim` once every rank issued; returns the survivors' results and ms from the kill. */
async function killDuringCollective(ranks: RankHandle[], victim: number): Promise<FailureResult[]> {
  await Promise.all(ranks.map((r) => r.waitFor('issued')));
  await new Promise((resolve) => setTimeout(resolve, 100)); // the survivors are now waiting on the victim
  await ranks[victim]!.kill();
  const survivors = ranks.filter((r) => r.rank !== victim);
  return (await resultsWithin(survivors, 30_000)) as FailureResult[];
}

function assertNamesPeer(r: FailureResult, peer: number, pattern: RegExp): void {
  assert.equal(r.completed, undefined, 'the collective must not complete');
  assert.equal(r.isCollectiveError, true, `expected a CollectiveError, got ${r.message}`);
  assert.equal(r.peerRank, peer, `the error names peer ${peer}: ${r.message}`);
  assert.match(r.message!, pattern);
  assert.equal(r.later?.isCollectiveError, true, 'later collectives fail too');
  assert.equal(r.fault, r.message, 'the communicator exposes the fault');
}

test('shared memory: a worker rank terminated mid-collective fails the others (dead heartbeat)', async () => {
  const timeoutMs = 10_000;
  const heartbeatTimeoutMs = 1000;
  const ranks = startThreadRanks(createSharedMemoryGroup(3), {
    scenario: 'expectFailure',
    params: { elements: 1 << 20, skipRanks: [2] },
    options: { timeoutMs, heartbeatTimeoutMs },
  });
  const results = await killDuringCollective(ranks, 2);
  for (const r of results) {
    console.log(`  survivor saw: ${r.message} (after ${Math.round(r.elapsedMs!)} ms)`);
    assertNamesPeer(r, 2, /peer rank 2 is dead: its communication thread showed no sign of life/);
    assert.ok(r.elapsedMs! < heartbeatTimeoutMs + 100 + 1500, `detected after ${r.elapsedMs} ms`);
  }
});

test('TCP: a process rank killed mid-collective fails the others at once (connection closed)', async () => {
  const ranks = startProcessRanks(await createLoopbackTcpGroup(3), {
    scenario: 'expectFailure',
    params: { elements: 1 << 20, skipRanks: [2] },
    options: { timeoutMs: 60_000 },
  });
  const results = await killDuringCollective(ranks, 2);
  for (const r of results) {
    console.log(`  survivor saw: ${r.message} (after ${Math.round(r.elapsedMs!)} ms)`);
    // Either the survivor saw the connection close itself, or the other survivor reported it first.
    assertNamesPeer(
      r,
      2,
      /^(rank \d reported: )?connection to peer rank 2 lost \(.*\): its process died or the network failed/,
    );
    assert.ok(r.elapsedMs! < 5000, `detected after ${r.elapsedMs} ms, long before the 60 s timeout`);
  }
});

for (const kind of ['shm', 'tcp'] as const) {
  test(`${kind}: a rank that never issues the collective fails the others after timeoutMs`, async () => {
    const timeoutMs = 500;
    const group: GroupDescriptor =
      kind === 'shm' ? createSharedMemoryGroup(2) : await createLoopbackTcpGroup(2);
    const ranks = startThreadRanks(group, {
      scenario: 'expectFailure',
      params: { elements: 1000, skipRanks: [1], idleMs: 4000 },
      options: { timeoutMs },
    });
    const result = (await ranks[0]!.result) as FailureResult;
    await Promise.all(ranks.map((r) => r.kill()));
    assertNamesPeer(
      result,
      1,
      kind === 'shm' ? /peer rank 1 did not reach allReduce #0 within 500 ms/ : /peer rank 1 sent nothing/,
    );
    assert.ok(result.elapsedMs! >= timeoutMs, `not before the timeout (${result.elapsedMs} ms)`);
    assert.ok(result.elapsedMs! < timeoutMs + 1500, `soon after the timeout (${result.elapsedMs} ms)`);
  });

  for (const other of ['allGather', 'allReduceOtherSize'] as const) {
    test(`${kind}: ranks issuing different collectives (${other}) fail with a mismatch error`, async () => {
      const group: GroupDescriptor =
        kind === 'shm' ? createSharedMemoryGroup(2) : await createLoopbackTcpGroup(2);
      const ranks = startThreadRanks(group, {
        scenario: 'mismatch',
        params: { other },
        options: { timeoutMs: 5000 },
      });
      const results = (await resultsWithin(ranks, 20_000)) as FailureResult[];
      for (const r of results) {
        assert.equal(r.isCollectiveError, true, JSON.stringify(r));
        assert.match(r.message!, /collective mismatch/);
        assert.match(r.message!, other === 'allGather' ? /same order/ : /same (sizes|counts)/);
      }
    });
  }

  test(`${kind}: a rank that closed early fails the collectives that need it, and rejects its own`, async () => {
    const group: GroupDescriptor =
      kind === 'shm' ? createSharedMemoryGroup(2) : await createLoopbackTcpGroup(2);
    const ranks = startThreadRanks(group, { scenario: 'closeEarly', options: { timeoutMs: 5000 } });
    const [closed, other] = (await resultsWithin(ranks, 20_000)) as FailureResult[];
    assert.equal(closed!.isCollectiveError, true);
    assert.match(closed!.message!, /closed communicator/);
    assert.equal(other!.isCollectiveError, true);
    assert.equal(other!.peerRank, 0);
    assert.match(other!.message!, /peer rank 0 closed its communicator/);
  });
}

for (const kind of ['shm', 'tcp'] as const) {
  test(`${kind}: close() while a collective waits rejects it and returns promptly`, async () => {
    const group: GroupDescriptor =
      kind === 'shm' ? createSharedMemoryGroup(2) : await createLoopbackTcpGroup(2);
    const ranks = startThreadRanks(group, { scenario: 'closeWhileWaiting', options: { timeoutMs: 30_000 } });
    const [r] = (await resultsWithin(ranks, 20_000)) as (FailureResult & { closeMs: number })[];
    assert.equal(r!.isCollectiveError, true);
    assert.match(r!.message!, /communicator closed while allReduce #0 was in flight/);
    assert.ok(r!.closeMs < 1000, `close took ${r!.closeMs} ms`);
    assert.equal(r!.fault, undefined, 'closing is not a group failure');
  });
}

test('a group whose other ranks never join fails to connect within connectTimeoutMs', async () => {
  await assert.rejects(connectCommunicator(createSharedMemoryGroup(3), 0, { connectTimeoutMs: 300 }), (e) => {
    assert.ok(e instanceof CollectiveError);
    assert.match(e.message, /ranks \[1, 2\] did not join the shared-memory group within 300 ms/);
    return true;
  });
  await assert.rejects(
    connectCommunicator(await createLoopbackTcpGroup(2), 1, { connectTimeoutMs: 300 }),
    (e) => {
      assert.ok(e instanceof CollectiveError);
      assert.match(e.message, /ranks \[0\] did not connect within 300 ms \(rank 0: connect ECONNREFUSED/);
      return true;
    },
  );
});

test('TCP: a rank from another group or with another world size is refused', async () => {
  const group = await createLoopbackTcpGroup(2);
  const stranger = createTcpGroup(group.peers, { groupId: 'another-group' });
  const [a, b] = await Promise.allSettled([
    connectCommunicator(group, 0, { connectTimeoutMs: 1000 }),
    connectCommunicator(stranger, 1, { connectTimeoutMs: 1000 }),
  ]);
  assert.equal(a.status, 'rejected');
  assert.equal(b.status, 'rejected');
  assert.match(
    String((b as PromiseRejectedResult).reason),
    /rank 0 refused to connect: group id another-group/,
  );
  assert.match(String((a as PromiseRejectedResult).reason), /ranks \[1\] did not connect/);

  // A rank of this very group (same id, same link key) that was told another world size.
  const three = createTcpGroup([...group.peers, { host: '127.0.0.1', port: 1 }], {
    groupId: group.groupId,
    linkKey: group.linkKey,
  });
  const [c, d] = await Promise.allSettled([
    connectCommunicator(group, 0, { connectTimeoutMs: 2000 }),
    connectCommunicator(three, 1, { connectTimeoutMs: 2000 }),
  ]);
  assert.match(String((c as PromiseRejectedResult).reason), /rank 1 has world size 3, but rank 0 has 2/);
  assert.match(
    String((d as PromiseRejectedResult).reason),
    /rank 0 refused to connect: rank 1 has world size 3/,
  );

  // The same group id without the link key (a stranger that read the id) is refused, and the refusal
  // does not break the group: rank 0 stays up for the real rank 1.
  const impostor = createTcpGroup(group.peers, { groupId: group.groupId });
  const [e, f] = await Promise.allSettled([
    connectCommunicator(group, 0, { connectTimeoutMs: 1500 }),
    connectCommunicator(impostor, 1, { connectTimeoutMs: 1500 }),
  ]);
  assert.match(
    String((f as PromiseRejectedResult).reason),
    /rank 0 refused to connect: .*does not authenticate/,
  );
  assert.match(String((e as PromiseRejectedResult).reason), /ranks \[1\] did not connect/);
});

test('bad arguments throw InvalidCollectiveError; a closed communicator rejects new collectives', async () => {
  const comm = await connectCommunicator(createSharedMemoryGroup(1), 0);
  assert.throws(
    () => comm.allGather(new Float32Array(3), new Float32Array(2), [3, 0]),
    InvalidCollectiveError,
  );
  assert.throws(
    () => comm.allGather(new Float32Array(3), new Float32Array(2), [2]),
    /out has 3 elements; Σ counts = 2/,
  );
  assert.throws(
    () => comm.allGather(new Float32Array(2), new Int32Array(2) as unknown as Float32Array, [2]),
    /must both be Float32Array or both Int32Array/,
  );
  assert.throws(
    () => comm.reduceScatter(new Float32Array(1), new Float32Array(2), [1]),
    /input has 2 elements/,
  );
  assert.throws(
    () => comm.allToAll(new Int32Array(1), [2], new Int32Array(1), [1]),
    /out has 1 elements; Σ recvCounts = 2/,
  );
  assert.throws(() => comm.broadcast(new Float32Array(1), 1), /root 1 is not a rank of this group \(0..0\)/);
  assert.throws(
    () => comm.allReduce(new Int32Array(1) as unknown as Float32Array),
    /Float32Array buffers only/,
  );
  assert.throws(
    () => comm.allGather(new Float32Array(1), new Float32Array(1), [-1]),
    /non-negative integers/,
  );
  // Still healthy after rejected calls (nothing was issued).
  const buf = new Float32Array([1, 2, 3]);
  const handle = comm.allReduce(buf);
  await handle.wait();
  assert.equal(handle.isDone, true);
  assert.deepEqual([...buf], [1, 2, 3]);
  await comm.close();
  await assert.rejects(
    comm.barrier().wait(),
    (e) => e instanceof CollectiveError && /closed communicator/.test(e.message),
  );
  await comm.close(); // closing twice is fine
});

test('connectCommunicator checks the rank', async () => {
  await assert.rejects(
    connectCommunicator(createSharedMemoryGroup(2), 2),
    /rank 2 is not in this group of 2 ranks/,
  );
});
