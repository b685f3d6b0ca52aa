// DBO's automatic off-switch, as pure logic fed with synthetic step timings: warm-up pairs (dropped),
// measuring windows of paired steps (split / one batch, order alternating), the decision with hysteresis,
// holding it between windows; off where communication is a tiny share of a step or split steps are slower,
// on where they are faster; robust to a machine whose speed drifts (the pairs compare neighbours); the same
// samples give the same decisions. Times are exact synthetic numbers, so the assertions are exact too.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { TimedCommunicator, WaitClock } from '../../src/dbo/comm-timing.js';
import {
  CONFIDENCE_Z,
  DboAutoPolicy,
  DboAutoSettingsError,
  type DboStepKind,
  DboStepTimer,
  DEFAULT_DBO_AUTO_SETTINGS,
  estimatePairs,
  stepKindOf,
} from '../../src/dbo/dbo-auto.js';
import { SingleRankCommunicator } from '../../src/distributed/communicator.js';
import { Rng } from '../kernels/kernel-test-utils.js';

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

  test('communication a tiny share of a one-batch step: off after the first window, for the whole interval', () => {
    const p = new DboAutoPolicy();
    // 2% of the step waits on communication (< 5%), even though split steps are (here) no slower.
    const n = FIRST_WINDOW.length + HOLD;
    const d = drive(p, { unsplitMs: 100, splitMs: 100, commWaitMs: 2 }, n + WINDOW.length);
    assert.equal(count(d.slice(FIRST_WINDOW.length, n)), 0);
    assert.deepEqual(d.slice(n), WINDOW, 'no backing off: the next window after the whole interval');
    assert.equal(p.estimate('prefill').splitting, false);
  });

  test("split steps slower: off; the cost of measuring is the window's split steps only", () => {
    const p = new DboAutoPolicy();
    const cycles = 13;
    // The "off" backs off: windows after 16 and 32 steps, then one every 64 + 8 steps.
    const q = HOLD / 4;
    const n =
      FIRST_WINDOW.length + (q + WINDOW.length) + (2 * q + WINDOW.length) + cycles * (HOLD + WINDOW.length);
    const d = drive(p, { unsplitMs: 100, splitMs: 110, commWaitMs: 20 }, n);
    assert.equal(p.estimate('prefill').splitting, false);
    // 4 warm-up split steps and 4 in the first window, then 4 split steps in each later window of 8.
    assert.equal(count(d), 8 + 4 * (2 + cycles));
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
    // Pairs alternate order, so the ratios are 0.97 · 0.96^±1; the median of their logarithms is ln 0.97
    // exactly (the drift cancels). Tolerance: float rounding of exp/log.
    assert.ok(Math.abs(e.gain - 0.03) < 1e-12, `gain ${e.gain}`);
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
    const off = first + WINDOW.length;
    assert.equal(count(d.slice(off, off + HOLD / 4)), 0, 'off after the second window');
    assert.deepEqual(d.slice(off + HOLD / 4, off + HOLD / 4 + WINDOW.length), WINDOW, 'checked again');
    const again = off + HOLD / 4 + WINDOW.length;
    assert.equal(count(d.slice(again, again + HOLD / 2)), 0, 'and off again, for twice as long');
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
    assert.throws(() => new DboAutoPolicy({ ...d, maxPairs: 3 }), /most pairs .* >= its pairs \(4\), got 3/);
  });
});

/**
 * A noisy two-host machine as the benchmark saw it (issue 14, docs/dbo.md): steady steps of `unsplitMs`
 * one-batch and `splitMs` split; each step off by a log-normal factor of spread `noise` (other threads of
 * the servers take the cores at random: one-batch steps of the same 512 tokens took 80–156 ms); and a
 * server's first steps slow, split ones for longer (`coldSplit`: split steps 1 + coldSplit · e^(−i/10)
 * times slower at eligible step i, one-batch steps 1 + 0.6 · e^(−i/3)): in the quiet 800 mbit/s run the
 * window's split steps (steps 9–16) took 97–151 ms, the later ones 70–105 ms.
 */
interface NoisyMachine {
  readonly unsplitMs: number;
  readonly splitMs: number;
  readonly noise: number;
  readonly coldSplit: number;
  /** Share of a one-batch step waiting on communication. */
  readonly commShare: number;
}

/** Standard normal samples from the seeded generator (Box–Muller). */
function gauss(rng: Rng): number {
  const u = Math.max(rng.next(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rng.next());
}

/**
 * Runs a benchmark's eligible steps on `m` with noise from `seed`: WARMUP_STEPS, then MEASURED_STEPS;
 * returns the measured steps split and their total time.
 */
function driveNoisy(policy: DboAutoPolicy, m: NoisyMachine, seed: number) {
  const rng = new Rng(seed);
  let split = 0;
  let totalMs = 0;
  for (let i = 0; i < WARMUP_STEPS + MEASURED_STEPS; i++) {
    const d = policy.decide('prefill');
    const cold = d.split ? 1 + m.coldSplit * Math.exp(-i / 10) : 1 + 0.6 * Math.exp(-i / 3);
    const wallMs = (d.split ? m.splitMs : m.unsplitMs) * cold * Math.exp(m.noise * gauss(rng));
    policy.record({
      kind: 'prefill',
      split: d.split,
      wallMs,
      commWaitMs: d.split ? 0 : wallMs * m.commShare,
      cost: 1000,
    });
    if (i < WARMUP_STEPS) continue;
    if (d.split) split++;
    totalMs += wallMs;
  }
  return { split, totalMs };
}

/**
 * Runs eligible steps through the policy where one-batch steps take 100 ms and split steps 100 · ratio(i)
 * at eligible step i (communication 30%); returns the decisions (true = split). `probe(i)` runs after step i.
 */
function driveRatios(
  policy: DboAutoPolicy,
  ratio: (i: number) => number,
  n: number,
  probe?: (i: number) => void,
): boolean[] {
  const d: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const x = policy.decide('prefill');
    d.push(x.split);
    const wallMs = x.split ? 100 * ratio(i) : 100;
    policy.record({ kind: 'prefill', split: x.split, wallMs, commWaitMs: 30, cost: 1000 });
    probe?.(i);
  }
  return d;
}

/** The 800 mbit/s link: split steps 31% faster once warm (86 against 125 ms), steps ±20%. */
const PAYING: NoisyMachine = { unsplitMs: 125, splitMs: 86, noise: 0.2, coldSplit: 1, commShare: 0.48 };
/** Shared memory: split steps 12% slower (84 against 75 ms), steps ±12%, waits 30% (the peer's skew). */
const NOT_PAYING: NoisyMachine = { unsplitMs: 75, splitMs: 84, noise: 0.12, coldSplit: 1, commShare: 0.3 };
/** A benchmark run (bench:dbo's prefill phase): 16 warm-up requests, then 64 measured, one eligible step each. */
const WARMUP_STEPS = 16;
const MEASURED_STEPS = 64;
const SEEDS = Array.from({ length: 50 }, (_, i) => i + 1);

describe('DboAutoPolicy on noisy machines (issue 14)', () => {
  test('a paying DBO stays on through a cold start and noisy steps', () => {
    // The first policy decided on the 4 pairs after warm-up and held for 64 steps: in 20 of these 50 runs
    // the cold split steps made it hold "off" for the rest of the run, as it did in one of the two quiet
    // 800 mbit/s runs. Growing an unsure window keeps 48 runs splitting; in the other two the window's four
    // split steps were all slower (by 15% and 27%), a sure "off" it cannot tell from a DBO that does not
    // pay. Held for the whole interval, that "off" left those two runs without a split measured step;
    // backing off re-measures after 16 steps, and they split 44 of the 64.
    const splits = SEEDS.map((seed) => driveNoisy(new DboAutoPolicy(), PAYING, seed).split);
    const keptOn = splits.filter((n) => n >= 50);
    assert.ok(
      keptOn.length >= 48,
      `${keptOn.length} of ${SEEDS.length} runs split at least 50 of ${MEASURED_STEPS} measured steps`,
    );
    assert.ok(
      Math.min(...splits) >= 40,
      `a run split only ${Math.min(...splits)} of ${MEASURED_STEPS} measured steps`,
    );
  });

  test('a DBO that does not pay turns off after the first window, at a cost under 2% of the measured steps', () => {
    let splitSteps = 0;
    let extraMs = 0;
    let totalMs = 0;
    for (const seed of SEEDS) {
      const r = driveNoisy(new DboAutoPolicy(), NOT_PAYING, seed);
      splitSteps += r.split;
      totalMs += r.totalMs;
      extraMs += r.split * (NOT_PAYING.splitMs - NOT_PAYING.unsplitMs);
    }
    // The first window falls in the warm-up; the "off" backs off, so its next windows (after 16 and 32 more
    // steps) fall among the measured steps: 4 split steps each, a few more where a window had to grow
    // (8.0 a run here; held for the whole interval, 0.4).
    assert.ok(splitSteps / SEEDS.length <= 9, `${splitSteps / SEEDS.length} measured split steps a run`);
    // What the split steps cost once warm, against the run's time: the ≤ 2% of acceptance 3.
    assert.ok(extraMs / totalMs < 0.02, `split steps cost ${((100 * extraMs) / totalMs).toFixed(2)}%`);
  });

  test('a change of mode not yet sure grows the window pair by pair', () => {
    const p = new DboAutoPolicy();
    // Warm-up, then pairs whose ratios scatter (1.30, 0.85, 1.05, 1.06 …): split steps slower by the
    // median, but the spread leaves it unsure. The window grows to 8 pairs, then decides by the estimate.
    const ratios = [1.3, 0.85, 1.05, 1.06, 1.3, 0.85, 1.05, 1.06];
    const warm = 2 * DEFAULT_DBO_AUTO_SETTINGS.warmupPairs;
    const d = driveRatios(
      p,
      (i) => (i < warm ? 1 : ratios[(i - warm) >> 1]!),
      warm + 2 * ratios.length,
      (i) => {
        if (i === warm + 7) assert.equal(p.estimate('prefill').windows, 0, 'not decided after 4 pairs');
      },
    );
    assert.deepEqual(d.slice(warm), [...WINDOW, ...WINDOW], 'the extra pairs keep alternating');
    const e = p.estimate('prefill');
    assert.equal(e.windows, 1);
    assert.equal(e.pairs, 8);
    assert.equal(e.splitting, false, 'median 5.5% slower after the full window: off');
    assert.equal(e.sure, false);
  });

  test('an "off" the window was not sure of re-measures after a quarter of the interval', () => {
    // Unsure off as above; then the link gets slow (split steps clearly faster): the next window, after
    // 16 steps instead of 64, turns splitting on.
    const p = new DboAutoPolicy();
    const ratios = [1.3, 0.85, 1.05, 1.06, 1.3, 0.85, 1.05, 1.06];
    const warm = 2 * DEFAULT_DBO_AUTO_SETTINGS.warmupPairs;
    const first = warm + 2 * ratios.length;
    const retry = Math.ceil(HOLD / 4);
    const d = driveRatios(
      p,
      (i) => (i < warm ? 1 : i < first ? ratios[(i - warm) >> 1]! : 0.7),
      first + retry + WINDOW.length + 10,
    );
    assert.equal(count(d.slice(first, first + retry)), 0, 'off while holding');
    assert.deepEqual(d.slice(first + retry, first + retry + WINDOW.length), WINDOW, 'measures again');
    assert.equal(count(d.slice(first + retry + WINDOW.length)), 10, 'on: 30% faster, and sure of it');
    assert.equal(p.estimate('prefill').sure, true);
  });

  test('an unsure "off" that the next window repeats backs off as a sure one does', () => {
    // Pairs scattered around 5.5% slower, window after window: each "off" is unsure, and they follow one
    // another: held 16 steps, then 32 (a stream of unsure windows over shared memory split a quarter of
    // the steps otherwise).
    const p = new DboAutoPolicy();
    const ratios = [1.3, 0.85, 1.05, 1.06];
    const warm = 2 * DEFAULT_DBO_AUTO_SETTINGS.warmupPairs;
    const first = warm + 4 * ratios.length; // the first window grows to 8 pairs (a change, not sure)
    const q = HOLD / 4;
    const second = first + q + WINDOW.length;
    const d = driveRatios(
      p,
      (i) => (i < warm ? 1 : ratios[((i - warm) >> 1) % ratios.length]!),
      second + 2 * q,
    );
    assert.equal(count(d.slice(first, first + q)), 0, 'off for 16 steps');
    assert.deepEqual(d.slice(first + q, second), WINDOW, 'a window of 4 pairs (staying off)');
    assert.equal(p.estimate('prefill').sure, false);
    assert.equal(count(d.slice(second, second + 2 * q)), 0, 'then off for 32');
  });

  test('an unsure change to "on" also re-measures after a quarter of the interval', () => {
    // Unsure off as above; then pairs scattered around 7.5% faster (0.7, 1.1, 0.9, 0.95, …): the window
    // grows to 8 pairs and turns splitting on without being sure, so it measures again after 16 steps.
    const p = new DboAutoPolicy();
    const slower = [1.3, 0.85, 1.05, 1.06, 1.3, 0.85, 1.05, 1.06];
    const faster = [0.7, 1.1, 0.9, 0.95, 0.7, 1.1, 0.9, 0.95];
    const warm = 2 * DEFAULT_DBO_AUTO_SETTINGS.warmupPairs;
    const retry = Math.ceil(HOLD / 4);
    const second = warm + 2 * slower.length + retry;
    const end = second + 2 * faster.length;
    const ratio = (i: number) => {
      if (i < warm) return 1;
      if (i < second - retry) return slower[(i - warm) >> 1]!;
      return i < second ? 1 : (faster[(i - second) >> 1] ?? 1);
    };
    const d = driveRatios(p, ratio, end + retry + WINDOW.length, (i) => {
      if (i !== end - 1) return;
      const e = p.estimate('prefill');
      assert.equal(e.splitting, true, 'on at the end of the grown window');
      assert.equal(e.sure, false);
    });
    assert.deepEqual(d.slice(second, end), [...WINDOW, ...WINDOW]);
    assert.equal(count(d.slice(end, end + retry)), retry, 'on while holding');
    assert.deepEqual(d.slice(end + retry), WINDOW, 'measures again after a quarter of the interval');
  });

  test('a sure "off" from the pairs backs off: a quarter of the interval, then half, then all of it', () => {
    const p = new DboAutoPolicy();
    const q = HOLD / 4;
    const holds = [q, 2 * q, HOLD, HOLD];
    const n = FIRST_WINDOW.length + holds.reduce((a, h) => a + h + WINDOW.length, 0);
    const d = drive(p, { unsplitMs: 100, splitMs: 120, commWaitMs: 30 }, n);
    assert.equal(p.estimate('prefill').sure, true);
    assert.equal(p.estimate('prefill').pairs, 4, 'a sure change needs no more than the window');
    let at = FIRST_WINDOW.length;
    for (const h of holds) {
      assert.equal(count(d.slice(at, at + h)), 0, `off while holding ${h} steps`);
      assert.deepEqual(d.slice(at + h, at + h + WINDOW.length), WINDOW, `measures again after ${h} steps`);
      at += h + WINDOW.length;
    }
  });

  test('a sure "off" from a cold server is re-measured soon, and on stays on once the server is warm', () => {
    // The first window sees split steps 30% slower (a fresh server's noise); from then on they are 25%
    // faster. With the whole interval held, the first 64 steps would lose the gain; backing off re-measures
    // after 16.
    const p = new DboAutoPolicy();
    const q = HOLD / 4;
    const cold = FIRST_WINDOW.length;
    const d = drive(
      p,
      (i) =>
        i < cold
          ? { unsplitMs: 100, splitMs: 130, commWaitMs: 40 }
          : { unsplitMs: 100, splitMs: 75, commWaitMs: 40 },
      cold + q + WINDOW.length + HOLD,
    );
    assert.equal(count(d.slice(cold, cold + q)), 0, 'off for a quarter of the interval');
    assert.deepEqual(d.slice(cold + q, cold + q + WINDOW.length), WINDOW, 'then a window');
    assert.equal(count(d.slice(cold + q + WINDOW.length)), HOLD, 'then on for the whole interval');
    assert.equal(p.estimate('prefill').splitting, true);
  });
});

describe('estimatePairs', () => {
  test('median and a spread from the median absolute deviation', () => {
    const logs = [0.1, 0.2, 0.3, 0.4].map(Math.log1p);
    const e = estimatePairs(logs);
    const m = (Math.log1p(0.2) + Math.log1p(0.3)) / 2;
    const dev = logs.map((x) => Math.abs(x - m)).sort((a, b) => a - b);
    const se = (Math.sqrt(Math.PI / 2) * 1.4826 * ((dev[1]! + dev[2]!) / 2)) / 2;
    // Tolerance: float rounding of exp/log.
    assert.ok(Math.abs(e.gain - (1 - Math.exp(m))) < 1e-12);
    assert.ok(Math.abs(e.gainLow - (1 - Math.exp(m + CONFIDENCE_Z * se))) < 1e-12);
    assert.ok(Math.abs(e.gainHigh - (1 - Math.exp(m - CONFIDENCE_Z * se))) < 1e-12);
  });

  test('identical pairs are not infinitely sure; fewer than 3 pairs are never sure', () => {
    const e = estimatePairs([0, 0, 0, 0]);
    assert.ok(e.gainLow < 0 && e.gainHigh > 0, 'a floor of 1% on the standard error');
    const two = estimatePairs([Math.log(0.5), Math.log(0.5)]);
    assert.ok(Math.abs(two.gain - 0.5) < 1e-12);
    assert.equal(two.gainLow, Number.NEGATIVE_INFINITY);
    assert.equal(two.gainHigh, Number.POSITIVE_INFINITY);
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
