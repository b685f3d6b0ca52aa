// TimedCommunicator: forwards every collective, counts each wait, and sums the time during which at
// least one wait is pending (overlapping waits count once; a wait on a finished handle costs nothing).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TimedCommunicator, WaitClock } from '../../src/dbo/comm-timing.js';
import type { CollectiveHandle, Communicator } from '../../src/distributed/communicator.js';
import { SingleRankCommunicator } from '../../src/distributed/communicator.js';

/** A group of one whose all-reduces complete only when the test releases them. */
class ManualCommunicator extends SingleRankCommunicator {
  readonly releases: (() => void)[] = [];
  override allReduce(_buf: Float32Array): CollectiveHandle {
    let done = false;
    const finished = new Promise<void>((resolve) =>
      this.releases.push(() => {
        done = true;
        resolve();
      }),
    );
    return {
      get isDone() {
        return done;
      },
      wait: () => finished,
    };
  }
}

test('sums the wall time of pending waits, overlapping waits once', async () => {
  let clock = 0;
  const inner = new ManualCommunicator();
  const comm = new TimedCommunicator(inner, new WaitClock(() => clock));
  const a = comm.allReduce(new Float32Array(1));
  const b = comm.allReduce(new Float32Array(1));
  clock = 100; // issued, not yet waited on: not counted
  const waitA = a.wait();
  clock = 110;
  const waitB = b.wait();
  clock = 130;
  assert.equal(comm.stats.waitMs, 30, 'an open wait counts up to now');
  inner.releases[0]!();
  await waitA;
  clock = 150;
  inner.releases[1]!();
  await waitB;
  clock = 500;
  assert.deepEqual(comm.stats, { numWaits: 2, waitMs: 50 });
  assert.equal(a.isDone, true);
});

test('forwards collectives and identity to the wrapped communicator', async () => {
  const inner: Communicator = new SingleRankCommunicator();
  const comm = new TimedCommunicator(inner);
  assert.equal(comm.rank, 0);
  assert.equal(comm.worldSize, 1);
  const out = new Float32Array(3);
  await comm.allGather(out, Float32Array.of(1, 2, 3), [3]).wait();
  assert.deepEqual([...out], [1, 2, 3]);
  await comm.barrier().wait();
  assert.equal(comm.stats.numWaits, 2);
  assert.ok(comm.stats.waitMs >= 0 && comm.stats.waitMs < 50);
});
