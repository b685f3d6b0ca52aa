// DBO's automatic off-switch, as pure logic fed with synthetic step timings: warm-up pairs (dropped),
// measuring windows of paired steps (split / one batch, order alternating), the decision with hysteresis,
// holding it between windows; off where communication is a tiny share of a step or split steps are slower,
// on where they are faster; robust to a machine whose speed drifts (the pairs compare neighbours); the same
// samples give the same decisions. Times are exact synthetic numbers, so the assertions are exact too.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TimedCommunicator, WaitClock } from '../../src/dbo/comm-timing.js';
import {
  DboAutoPolicy,
  DboAutoSettingsError,
  type DboStepKind,
  DboStepTimer,
  DEFAULT_DBO_AUTO_SETTINGS,
  stepKindOf,
} from '../../src/dbo/dbo-auto.js';
import { SingleRankCommunicator } from '../../src/distributed/communicator.js';

/** A synthetic machine at eligible step i: how long a step of cost 1000 takes one-batch and split. */
interface Machine {
  readonly unsplitMs: number;
  readonly splitMs: number;
  /** Waits on communication of a one-batch step. */
  readonly commWaitMs: number;
}

/** Runs `n` eligible steps of `kind` through the policy on `machine(i)`; returns the decisions (true = split). */
function drive(
  policy: DboAutoPolicy,
  machine: Machine | ((i: number) => Machine),
  n: number,
  kind: DboStepKind = 'prefill',
): boolean[] {
  const out: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const m = typeof machine === 'function' ? machine(i) : machine;
    const d = policy.decide(kind);
    out.push(d.split);
    policy.record({
      kind,
      split: d.split,
      wallMs: d.split ? m.splitMs : m.unsplitMs,
      commWaitMs: d.split ? 0 : m.commWaitMs,
      cost: 1000,
    });
  }
  return out;
}

const count = (xs: boolean[]) => xs.filter(Boolean).length;
/** Decisions of a measuring window with the default 4 pairs: U S, S U, U S, S U. */
const WINDOW = [false, true, true, false, false, true, true, false];
/** The first one comes after 4 warm-up pairs, run the same way. */
const FIRST_WINDOW = [...WINDOW, ...WINDOW];
const HOLD = DEFAULT_DBO_AUTO_SETTINGS.probeInterval;

describe('DboAutoPolicy', () => {
  test('split steps faster (communication hidden): a measuring window, then on until the next window', () => {
    const p = new DboAutoPolicy();
    const d = drive(p, { unsplitMs: 160, splitMs: 140, commWaitMs: 60 }, FIRST_WINDOW.length + HOLD + 8);
    assert.deepEqual(d.slice(0, FIRST_WINDOW.length), FIRST_WINDOW);
    assert.equal(count(d.slice(FIRST_WINDOW.length, FIRST_WINDOW.length + HOLD)), HOLD, 'on while holding');
    assert.deepEqual(d.slice(FIRST_WINDOW.length + HOLD), WINDOW, 'then measures again');
    const e = p.estimate('prefill');
    assert.equal(e.windows, 2);
    assert.equal(e.splitting, true);
    assert.ok(Math.abs(e.gain - (1 - 140 / 160)) < 1e-12, `gain ${e.gain}`);
    assert.equal(e.commShare, 60 / 160);
  });

  test('communication a tiny share of a one-batch step: off after the first window', () => {
    const p = new DboAutoPolicy();
    // 2% of the step waits on communication (< 5%), even though split steps are (here) no slower.
    const d = drive(p, { unsplitMs: 100, splitMs: 100, commWaitMs: 2 }, FIRST_WINDOW.length + HOLD);
    assert.equal(count(d.slice(FIRST_WINDOW.length)), 0);
    assert.equal(p.estimate('prefill').splitting, false);
  });

  test("split steps slower: off; the cost of measuring is the window's split steps only", () => {
    const p = new DboAutoPolicy();
    const cycles = 13;
    const n = FIRST_WINDOW.length + cycles * (HOLD + WINDOW.length);
    const d = drive(p, { unsplitMs: 100, splitMs: 110, commWaitMs: 20 }, n);
    assert.equal(p.estimate('prefill').splitting, false);
    // 4 warm-up split steps, then 4 split steps in each window of 8, one window every 64 + 8 steps.
    assert.equal(count(d), 4 + 4 * (cycles + 1));
    // At +10% per split step, measuring costs well under 1% of the time.
    assert.ok((count(d) * 0.1) / n < 0.01);
  });

  test('hysteresis: on stays on within 2% slower; off turns on only once 2% faster', () => {
    const on = new DboAutoPolicy();
    drive(on, { unsplitMs: 100, splitMs: 101.5, commWaitMs: 30 }, FIRST_WINDOW.length);
    assert.equal(on.estimate('prefill').splitting, true, '1.5% slower: stays on');
    const off = new DboAutoPolicy();
    drive(off, { unsplitMs: 100, splitMs: 105, commWaitMs: 30 }, FIRST_WINDOW.length);
    assert.equal(off.estimate('prefill').splitting, false, '5% slower: off');
    drive(off, { unsplitMs: 100, splitMs: 99, commWaitMs: 30 }, HOLD + WINDOW.length);
    assert.equal(off.estimate('prefill').splitting, false, '1% faster is not enough to turn on');
    drive(off, { unsplitMs: 100, splitMs: 97, commWaitMs: 30 }, HOLD + WINDOW.length);
    assert.equal(off.estimate('prefill').splitting, true, '3% faster turns it on');
  });

  test('a machine that speeds up during the window does not fool it (pairs compare neighbours)', () => {
    // Every step is 4% faster than the one before (a cold server warming up), split steps truly 3%
    // faster than one batch. Comparing window averages would mix the drift in; the pairs do not.
    const p = new DboAutoPolicy();
    drive(
      p,
      (i) => ({ unsplitMs: 200 * 0.96 ** i, splitMs: 194 * 0.96 ** i, commWaitMs: 50 * 0.96 ** i }),
      FIRST_WINDOW.length,
    );
    const e = p.estimate('prefill');
    assert.equal(e.splitting, true);
    // Pairs alternate order, so the ratios are 0.97 · 0.96^±1: their median is 0.97 · (0.96 + 1 / 0.96) / 2.
    assert.ok(Math.abs(e.gain - (1 - (0.97 * (0.96 + 1 / 0.96)) / 2)) < 1e-12, `gain ${e.gain}`);
  });

  test('one outlier step in a window does not flip the decision (median of pairs)', () => {
    const p = new DboAutoPolicy();
    // The second step of the first window (a split step) is hit by a garbage collection.
    const slow = FIRST_WINDOW.length - WINDOW.length + 1;
    drive(
      p,
      (i) => ({ unsplitMs: 100, splitMs: i === slow ? 300 : 90, commWaitMs: 30 }),
      FIRST_WINDOW.length,
    );
    assert.equal(p.estimate('prefill').splitting, true);
  });

  test('follows a change: the link gets fast, split steps turn slower, the next window turns it off', () => {
    const p = new DboAutoPolicy();
    const first = FIRST_WINDOW.length + HOLD;
    const d = drive(
      p,
      (i) =>
        i < first
          ? { unsplitMs: 160, splitMs: 140, commWaitMs: 60 }
          : { unsplitMs: 100, splitMs: 108, commWaitMs: 10 },
      first + WINDOW.length + HOLD,
    );
    assert.equal(count(d.slice(first + WINDOW.length)), 0, 'off after the second window');
  });

  test('prefill and decode steps keep separate windows', () => {
    const p = new DboAutoPolicy();
    drive(p, { unsplitMs: 160, splitMs: 140, commWaitMs: 60 }, FIRST_WINDOW.length, 'prefill');
    drive(p, { unsplitMs: 100, splitMs: 120, commWaitMs: 20 }, FIRST_WINDOW.length, 'decode');
    assert.equal(p.estimate('prefill').splitting, true);
    assert.equal(p.estimate('decode').splitting, false);
  });

  test('a pair one of whose steps another rank could not split gives no ratio', () => {
    const p = new DboAutoPolicy();
    for (let i = 0; i < FIRST_WINDOW.length; i++) {
      const d = p.decide('prefill');
      // Every planned split is refused by another rank: the step runs as one batch.
      p.record({ kind: 'prefill', split: false, wallMs: 100, commWaitMs: 30, cost: 1000 });
      void d;
    }
    const e = p.estimate('prefill');
    assert.equal(e.windows, 1);
    assert.ok(Number.isNaN(e.gain), 'no pair was complete');
    assert.equal(e.splitting, true, 'without evidence the mode stays');
  });

  test('deterministic: the same samples give the same decisions and reasons', () => {
    const run = () => {
      const p = new DboAutoPolicy();
      const reasons: string[] = [];
      for (let i = 0; i < 100; i++) {
        const d = p.decide(i % 3 === 0 ? 'decode' : 'prefill');
        reasons.push(`${d.split} ${d.reason}`);
        p.record({
          kind: i % 3 === 0 ? 'decode' : 'prefill',
          split: d.split,
          wallMs: d.split ? 90 + (i % 7) : 100 + (i % 5),
          commWaitMs: 25,
          cost: 900,
        });
      }
      return reasons;
    };
    assert.deepEqual(run(), run());
  });

  test('ignores samples without time or cost', () => {
    const p = new DboAutoPolicy();
    for (let i = 0; i < FIRST_WINDOW.length; i++) {
      p.decide('prefill');
      p.record({ kind: 'prefill', split: false, wallMs: 0, commWaitMs: 0, cost: 100 });
    }
    assert.ok(Number.isNaN(p.estimate('prefill').gain));
  });

  test('settings are validated', () => {
    const d = DEFAULT_DBO_AUTO_SETTINGS;
    assert.throws(() => new DboAutoPolicy({ ...d, probeInterval: 0 }), DboAutoSettingsError);
    assert.throws(() => new DboAutoPolicy({ ...d, minGain: -0.1 }), /min_gain must be in \[0, 1\)/);
    assert.throws(() => new DboAutoPolicy({ ...d, minCommShare: 1 }), DboAutoSettingsError);
    assert.throws(() => new DboAutoPolicy({ ...d, maxLoss: 1.5 }), /max_loss must be in \[0, 1\)/);
    assert.throws(() => new DboAutoPolicy({ ...d, pairs: 0 }), DboAutoSettingsError);
    assert.throws(() => new DboAutoPolicy({ ...d, warmupPairs: 0 }), /warm-up pairs must be a positive/);
  });
});

describe('DboStepTimer', () => {
  test('times the forward and its communication waits', async () => {
    let clock = 1000;
    const waits = new WaitClock(() => clock);
    const comm = new TimedCommunicator(new SingleRankCommunicator(), waits);
    const timer = new DboStepTimer(waits, 'decode', 321, () => clock);
    clock = 1010;
    const handle = comm.allReduce(new Float32Array(2));
    await handle.wait(); // completes at once: counted as 0 ms
    clock = 1042;
    assert.deepEqual(timer.finish(true), {
      kind: 'decode',
      split: true,
      wallMs: 42,
      commWaitMs: 0,
      cost: 321,
    });
  });

  test('stepKindOf: any multi-token query makes a prefill step', () => {
    assert.equal(stepKindOf({ seqs: [{ queryLen: 1 }, { queryLen: 1 }] }), 'decode');
    assert.equal(stepKindOf({ seqs: [{ queryLen: 1 }, { queryLen: 7 }] }), 'prefill');
  });
});
