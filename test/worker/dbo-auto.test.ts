// DBO's automatic off-switch, as pure logic fed with synthetic step timings: it warms up (one batch, split,
// one batch, split), stays off where communication is a tiny share of a step or split steps are slower, stays on
// where they are faster, probes the other mode every N-th eligible step, and decides the same for the
// same samples. Times are exact synthetic numbers, so the assertions are exact too.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SingleRankCommunicator } from '../../src/distributed/communicator.js';
import { singleGroup } from '../../src/layers/rank-groups.js';
import {
  DboAutoPolicy,
  DboAutoSettingsError,
  type DboStepKind,
  DboStepTimer,
  DEFAULT_DBO_AUTO_SETTINGS,
  stepKindOf,
} from '../../src/worker/dbo-auto.js';

/** A synthetic machine: how long a step of cost 1000 takes one-batch and split, and its comm waits. */
interface Machine {
  readonly unsplitMs: number;
  readonly splitMs: number;
  readonly commWaitMs: number;
}

/** Runs `n` eligible steps of `kind` through the policy on `machine`; returns the decisions (true = split). */
function drive(policy: DboAutoPolicy, machine: Machine, n: number, kind: DboStepKind = 'prefill'): boolean[] {
  const out: boolean[] = [];
  for (let i = 0; i < n; i++) {
    const d = policy.decide(kind);
    out.push(d.split);
    policy.record({
      kind,
      split: d.split,
      wallMs: d.split ? machine.splitMs : machine.unsplitMs,
      commWaitMs: d.split ? 0 : machine.commWaitMs,
      cost: 1000,
    });
  }
  return out;
}

const count = (xs: boolean[]) => xs.filter(Boolean).length;

describe('DboAutoPolicy', () => {
  test('warm-up: one batch, split (both dropped as cold), one batch, three splits', () => {
    const p = new DboAutoPolicy();
    const first = drive(p, { unsplitMs: 160, splitMs: 140, commWaitMs: 60 }, 6);
    assert.deepEqual(first, [false, true, false, true, true, true]);
    const e = p.estimate('prefill');
    assert.equal(e.unsplitMsPerCost, 0.16);
    assert.equal(e.splitMsPerCost, 0.14);
    assert.equal(e.commShare, 60 / 160);
  });

  test('communication a tiny share of a step: only the cold warm-up step splits, no probes', () => {
    const p = new DboAutoPolicy();
    // 2% of the step waits on communication (< 5%).
    const d = drive(p, { unsplitMs: 100, splitMs: 120, commWaitMs: 2 }, 200);
    assert.deepEqual(d.slice(0, 3), [false, true, false]);
    assert.equal(count(d), 1, 'no step splits after the warm-up');
    const why = p.decide('prefill');
    assert.equal(why.split, false);
    assert.match(why.reason, /communication is 2\.0% of a one-batch step/);
  });

  test('split steps slower: off after three split samples, with a split probe every 16 steps', () => {
    const p = new DboAutoPolicy();
    // 15% slower: more than the 10% band.
    const d = drive(p, { unsplitMs: 100, splitMs: 115, commWaitMs: 20 }, 4 + 160);
    assert.deepEqual(d.slice(0, 6), [false, true, false, true, true, true], 'warm-up');
    // Split samples at steps 4, 5, 6; then probes at steps 22, 38, ..., 150.
    const probes = [22, 38, 54, 70, 86, 102, 118, 134, 150];
    for (let step = 7; step <= 164; step++) assert.equal(d[step - 1], probes.includes(step), `step ${step}`);
    assert.ok(p.estimate('prefill').gain < 0);
  });

  test('split steps a little slower, within the 10% band: keeps splitting (noise cannot tell)', () => {
    const p = new DboAutoPolicy();
    const d = drive(p, { unsplitMs: 100, splitMs: 105, commWaitMs: 30 }, 4 + 32);
    assert.equal(count(d.slice(4)), 32 - 3, 'all but the one-batch probes (steps 7, 15, 31) split');
  });

  test('hysteresis: once off, split steps must be 2% faster to turn it on again', () => {
    const p = new DboAutoPolicy();
    drive(p, { unsplitMs: 100, splitMs: 120, commWaitMs: 30 }, 40);
    // Now split steps are 1% faster: below the 2% margin, the policy stays off (probes aside).
    const d = drive(p, { unsplitMs: 100, splitMs: 99, commWaitMs: 30 }, 60);
    assert.ok(count(d) <= 4, `${count(d)} splits`);
    // 5% faster: once three probes (16 steps apart) outvote the older split samples, it turns on.
    const e = drive(p, { unsplitMs: 100, splitMs: 95, commWaitMs: 30 }, 80);
    assert.ok(count(e.slice(60)) >= 19, `${count(e.slice(60))} splits among the last 20`);
  });

  test('communication large and split steps faster: on, with one-batch probes backing off to every 16', () => {
    const p = new DboAutoPolicy();
    const d = drive(p, { unsplitMs: 160, splitMs: 140, commWaitMs: 60 }, 4 + 160);
    // The one-batch sample of step 3, then probes at steps 7, 15, 31, 47, ..., 159.
    const probes = [7, 15, 31, 47, 63, 79, 95, 111, 127, 143, 159];
    for (let step = 5; step <= 164; step++) assert.equal(d[step - 1], !probes.includes(step), `step ${step}`);
    const e = p.estimate('prefill');
    assert.ok(Math.abs(e.gain - 0.125) < 1e-12, `gain ${e.gain}`);
  });

  test('follows a change: the link gets fast, split steps turn slower, the policy turns off', () => {
    const p = new DboAutoPolicy();
    const slow = drive(p, { unsplitMs: 160, splitMs: 140, commWaitMs: 60 }, 20);
    assert.equal(count(slow.slice(4)), 14, 'all but the one-batch probes of steps 7 and 15 split');
    // Now splitting loses 20%. The split average follows at once, the one-batch one only at its probes
    // (steps 31, 47, 63): it takes three of them to move the one-batch median.
    const fast = drive(p, { unsplitMs: 100, splitMs: 120, commWaitMs: 20 }, 80);
    const firstOff = fast.indexOf(false, 30);
    assert.ok(firstOff > 0 && firstOff <= 48, `off from step ${20 + firstOff}`);
    const last = fast.slice(60);
    assert.ok(count(last) <= 2, `splits among the last 20 steps: ${count(last)} (probes only)`);
  });

  test('one noisy probe does not flip the decision', () => {
    const p = new DboAutoPolicy();
    drive(p, { unsplitMs: 160, splitMs: 140, commWaitMs: 60 }, 6);
    // Eligible step 7 is the first one-batch probe; it comes out 10% fast (noise).
    const probe = p.decide('prefill');
    assert.equal(probe.probe, true);
    assert.equal(probe.split, false);
    p.record({ kind: 'prefill', split: false, wallMs: 144, commWaitMs: 50, cost: 1000 });
    // The median of the one-batch samples (160, 144) is 152, still 7.9% above split.
    assert.ok(Math.abs(p.estimate('prefill').unsplitMsPerCost - 0.152) < 1e-12);
    assert.equal(p.decide('prefill').split, true);
  });

  test('recovers: communication becomes expensive again, a split probe sees it and the policy turns on', () => {
    const p = new DboAutoPolicy();
    drive(p, { unsplitMs: 100, splitMs: 120, commWaitMs: 20 }, 40);
    const d = drive(p, { unsplitMs: 200, splitMs: 130, commWaitMs: 90 }, 40);
    // The one-batch median rises within three steps; the split steps that follow confirm.
    assert.ok(count(d.slice(20)) >= 18, `splits among the last 20 steps: ${count(d.slice(20))}`);
  });

  test('prefill and decode steps keep separate averages', () => {
    const p = new DboAutoPolicy();
    drive(p, { unsplitMs: 160, splitMs: 140, commWaitMs: 60 }, 20, 'prefill');
    drive(p, { unsplitMs: 10, splitMs: 14, commWaitMs: 1 }, 20, 'decode');
    assert.equal(p.decide('prefill').split, true);
    assert.equal(p.decide('decode').split, false);
  });

  test('deterministic: the same samples give the same decisions and reasons', () => {
    const run = () => {
      const p = new DboAutoPolicy();
      const reasons: string[] = [];
      const jitter = [1, 0.97, 1.04, 0.99, 1.02];
      for (let i = 0; i < 60; i++) {
        const d = p.decide('prefill');
        reasons.push(`${d.split} ${d.reason}`);
        const f = jitter[i % jitter.length]!;
        p.record({
          kind: 'prefill',
          split: d.split,
          wallMs: (d.split ? 111 : 100) * f,
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
    p.record({ kind: 'prefill', split: false, wallMs: 0, commWaitMs: 0, cost: 100 });
    p.record({ kind: 'prefill', split: false, wallMs: 10, commWaitMs: 0, cost: 0 });
    assert.ok(Number.isNaN(p.estimate('prefill').unsplitMsPerCost));
  });

  test('settings are validated', () => {
    const d = DEFAULT_DBO_AUTO_SETTINGS;
    assert.throws(() => new DboAutoPolicy({ ...d, probeInterval: 1 }), DboAutoSettingsError);
    assert.throws(() => new DboAutoPolicy({ ...d, minGain: -0.1 }), /min_gain must be in \[0, 1\)/);
    assert.throws(() => new DboAutoPolicy({ ...d, minCommShare: 1 }), DboAutoSettingsError);
    assert.throws(() => new DboAutoPolicy({ ...d, maxLoss: 1.5 }), /max_loss must be in \[0, 1\)/);
    assert.throws(() => new DboAutoPolicy({ ...d, window: 0 }), DboAutoSettingsError);
    assert.throws(() => new DboAutoPolicy({ ...d, minSplitSamples: 0 }), DboAutoSettingsError);
  });
});

describe('DboStepTimer', () => {
  test('times the forward and its communication waits', async () => {
    let clock = 1000;
    const timer = new DboStepTimer(singleGroup(new SingleRankCommunicator()), 'decode', 321, () => clock);
    clock = 1010;
    const handle = timer.groups.moe.allReduce(new Float32Array(2));
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
