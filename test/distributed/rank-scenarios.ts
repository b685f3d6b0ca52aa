// What a test rank does once connected: each scenario is a small program run by every rank of a group,
// returning a JSON-able result (or events along the way) to the test that started the ranks.

import { CollectiveError } from '../../src/distributed/communicator.js';
import type { ConnectedCommunicator } from '../../src/distributed/stream-communicator.js';
import { runCollectiveMatrix } from './collective-cases.js';

export interface ScenarioContext {
  readonly comm: ConnectedCommunicator;
  readonly params: Record<string, unknown>;
  /** Sends an event to the test at once (e.g. 'issued', so the test knows when to kill a peer). */
  report(event: Record<string, unknown>): void;
}

export type Scenario = (ctx: ScenarioContext) => Promise<unknown>;

/** Busy work the compute thread does (a dependent float chain the JIT cannot drop). */
function spin(iterations: number, seed: number): number {
  let x = seed;
  for (let i = 0; i < iterations; i++) x = (x * 1.0000001 + 0.5) % 1000;
  return x;
}

const SPIN_BLOCK = 20_000;

function describeError(e: unknown): Record<string, unknown> {
  return {
    name: e instanceof Error ? e.name : 'unknown',
    message: e instanceof Error ? e.message : String(e),
    peerRank: e instanceof CollectiveError ? e.peerRank : undefined,
    isCollectiveError: e instanceof CollectiveError,
  };
}

export const scenarios: Record<string, Scenario> = {
  /** Every collective for every size, checked against the reference on this rank. */
  async matrix({ comm, params }) {
    const results = await runCollectiveMatrix(comm, params.sizes as number[]);
    await comm.close();
    return results;
  },

  /**
   * Overlap: rank `computeRank` issues a large all-reduce and keeps computing (polling isDone between
   * blocks) until it completes, `repeats` times; each time it measures its busy-loop rate alone just
   * before and after (after a JIT warm-up), and the wall time spent inside compute blocks. The other
   * ranks just take part. Returns every repeat's compute share and rate fraction, and the best repeat.
   */
  async overlap({ comm, params }) {
    const elements = params.elements as number;
    const computeRank = (params.computeRank as number) ?? 0;
    const repeats = (params.repeats as number) ?? 3;
    const expected = (comm.worldSize * (comm.worldSize + 1)) / 2;
    await comm.allReduce(new Float32Array(16)).wait(); // warm-up
    let ok = true;
    if (comm.rank !== computeRank) {
      for (let k = 0; k < repeats; k++) {
        const buf = new Float32Array(elements).fill(comm.rank + 1);
        await comm.barrier().wait(); // the compute rank has calibrated
        await comm.allReduce(buf).wait();
        await comm.barrier().wait();
        ok &&= buf[0] === expected && buf[elements - 1] === expected;
      }
      await comm.close();
      return { ok };
    }
    // One loop for the solo windows and the transfer, so both run the same compiled code.
    let sink = 0;
    const computeUntil = (stop: () => boolean) => {
      let iterations = 0;
      let inCompute = 0; // wall time inside compute blocks (the rest: the stop checks, e.g. isDone)
      const t = performance.now();
      while (!stop()) {
        const b = performance.now();
        sink += spin(SPIN_BLOCK, sink);
        inCompute += performance.now() - b;
        iterations += SPIN_BLOCK;
      }
      return { iterations, inCompute, ms: performance.now() - t };
    };
    const soloRate = (ms: number) => {
      const t = performance.now();
      const r = computeUntil(() => performance.now() - t >= ms);
      return r.iterations / r.ms;
    };
    soloRate(200); // JIT warm-up
    const runs: { transferMs: number; computeMs: number; fraction: number; computeShare: number }[] = [];
    for (let k = 0; k < repeats; k++) {
      const buf = new Float32Array(elements).fill(comm.rank + 1);
      const rateBefore = soloRate(250);
      await comm.barrier().wait();
      const t0 = performance.now();
      const handle = comm.allReduce(buf);
      const during = computeUntil(() => handle.isDone);
      const transferMs = performance.now() - t0;
      await handle.wait();
      const rate = (rateBefore + soloRate(250)) / 2;
      await comm.barrier().wait();
      ok &&= buf[0] === expected && buf[elements - 1] === expected;
      runs.push({
        transferMs,
        computeMs: during.iterations / rate,
        fraction: during.iterations / rate / transferMs,
        computeShare: during.inCompute / transferMs,
      });
    }
    await comm.close();
    const best = runs.reduce((a, b) => (b.fraction > a.fraction ? b : a));
    return {
      ok,
      ...best,
      fractions: runs.map((r) => r.fraction),
      computeShares: runs.map((r) => r.computeShare),
      sink,
    };
  },

  /**
   * Issues an all-reduce, reports 'issued', and returns how it ended and when. Ranks in `skipRanks` never
   * issue it: they report 'issued' and idle (alive) for `idleMs`, to be killed or to stall the others.
   */
  async expectFailure({ comm, params, report }) {
    const elements = (params.elements as number) ?? 1000;
    if (((params.skipRanks as number[] | undefined) ?? []).includes(comm.rank)) {
      report({ event: 'issued' });
      await new Promise((resolve) => setTimeout(resolve, (params.idleMs as number) ?? 60_000));
      return { skipped: true };
    }
    const t0 = performance.now();
    const handle = comm.allReduce(new Float32Array(elements).fill(1));
    report({ event: 'issued' });
    let result: Record<string, unknown>;
    try {
      await handle.wait();
      result = { completed: true };
    } catch (e) {
      result = { ...describeError(e), elapsedMs: performance.now() - t0 };
    }
    // A failed group fails every later collective too.
    let later: Record<string, unknown> = {};
    try {
      await comm.barrier().wait();
    } catch (e) {
      later = describeError(e);
    }
    await comm.close();
    return { ...result, later, fault: comm.fault?.message };
  },

  /** Rank 0 issues allReduce, the others `params.other` (allGather or allReduce of another size). */
  async mismatch({ comm, params }) {
    let handle: ReturnType<ConnectedCommunicator['barrier']>;
    if (comm.rank === 0 || params.other === 'allReduceOtherSize')
      handle = comm.allReduce(new Float32Array(comm.rank === 0 ? 100 : 101));
    else {
      const counts = Array.from({ length: comm.worldSize }, () => 10);
      handle = comm.allGather(new Float32Array(10 * comm.worldSize), new Float32Array(10), counts);
    }
    try {
      await handle.wait();
      await comm.close();
      return { completed: true };
    } catch (e) {
      await comm.close();
      return describeError(e);
    }
  },

  /** Closes at once; the ranks with `wait` then run a barrier the closed rank will never join. */
  async closeEarly({ comm }) {
    if (comm.rank === 0) {
      await comm.close();
      const after = comm.barrier();
      try {
        await after.wait();
        return { completed: true };
      } catch (e) {
        return describeError(e);
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
    try {
      await comm.barrier().wait();
      await comm.close();
      return { completed: true };
    } catch (e) {
      await comm.close();
      return describeError(e);
    }
  },

  /** Rank 0 issues an all-reduce the others never join, then closes while it is in flight. */
  async closeWhileWaiting({ comm }) {
    if (comm.rank !== 0) {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      await comm.close();
      return {};
    }
    const handle = comm.allReduce(new Float32Array(1000));
    await new Promise((resolve) => setTimeout(resolve, 200));
    const t0 = performance.now();
    const closed = comm.close();
    let outcome: Record<string, unknown> = { completed: true };
    try {
      await handle.wait();
    } catch (e) {
      outcome = describeError(e);
    }
    await closed;
    return { ...outcome, closeMs: performance.now() - t0, fault: comm.fault?.message };
  },

  /** A few quick collectives, for transports or groups that only need a smoke check. */
  async quick({ comm }) {
    const buf = new Float32Array(1001).fill(comm.rank + 1);
    await comm.allReduce(buf).wait();
    const gathered = new Int32Array(comm.worldSize);
    const ones = Array.from({ length: comm.worldSize }, () => 1);
    await comm.allGather(gathered, new Int32Array([comm.rank * 10]), ones).wait();
    await comm.barrier().wait();
    await comm.close();
    return { sum: buf[1000], gathered: [...gathered] };
  },
};
