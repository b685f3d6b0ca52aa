// The DBO planner with every rank's own stage times (bench/dbo-plan.ts's predictRanks, planSteps and
// predictSteps): a collective starts when the last rank issues it, so ranks whose compute is uneven stage
// by stage take longer than either rank alone; the steps of a two-rank DBO-off trace are paired by index
// and played one by one, and their times averaged per a number of tokens, as bench:dbo normalises them.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type PlanStage, planSteps, predict, predictRanks, predictSteps } from '../../bench/dbo-plan.js';
import { parseRankTrace } from '../../bench/dbo-trace.js';

/** One dense layer (attention, MLP) whose stages take `attnMs` and `mlpMs`, each closed by a 1 MB all-reduce. */
function layer(attnMs: number, mlpMs: number): PlanStage[] {
  const ar = { kind: 'all_reduce', bytes: 1e6 } as const;
  return [
    { name: 'L0 attn all-reduce', end: 'collective', computeMs: attnMs, collective: ar },
    { name: 'L0 mlp all-reduce', end: 'collective', computeMs: mlpMs, collective: ar },
    { name: 'done', end: 'done', computeMs: 0 },
  ];
}

// 800 mbit/s, no latency, no bucket, 2 ranks: a 1 MB all-reduce takes 10 ms, a 0.5 MB one (a micro-batch's) 5 ms.
const LINK = { bitsPerSecond: 800e6, latencyMs: 0, ranks: 2 };
// Both ranks compute 30 ms a step, but not stage by stage alike.
const X = layer(10, 20);
const Y = layer(16, 14);

describe('DBO planner, ranks with their own stage times', () => {
  test('without DBO each collective waits for the later rank: the sum of the stages’ maxima', () => {
    const p = predictRanks([X, Y], LINK, 'alternate', 0);
    // max(10, 16) + 10 + max(20, 14) + 10 = 56 ms; T_compute is the busiest rank's 30 ms.
    assert.equal(p.offMs, 56);
    assert.equal(p.computeMs, 30);
    assert.equal(p.commMs, 26);
    // Either rank alone (or identical ranks) waits for no one: 30 + 20 = 50 ms.
    assert.equal(predict(X, LINK, 'alternate', 0).offMs, 50);
    assert.equal(predictRanks([X, X], LINK, 'alternate', 0).offMs, 50);
  });

  test('with DBO each micro-batch’s collective also waits for the later rank (worked by hand)', () => {
    // Alternate: A attn, B attn, A mlp, B mlp, A done, B done; halves of every stage, split cost 0.
    //   A attn: X busy 5, Y busy 8 -> issued at 8, link 8..13     B attn: X 10, Y 16 -> link 16..21
    //   A mlp: X 13..23, Y 16..23 -> link 23..28                 B mlp: X 23..33, Y 23..30 -> link 33..38
    assert.equal(predictRanks([X, Y], LINK, 'alternate', 0).timelineOnMs, 38);
    // Rank X alone: A attn 0..5 link 5..10, B attn 5..10 link 10..15, A mlp 10..20 link 20..25,
    // B mlp 20..30 link 30..35.
    assert.equal(predict(X, LINK, 'alternate', 0).timelineOnMs, 35);
  });

  test('ranks must play the same stages', () => {
    assert.throws(() => predictRanks([X, X.slice(1)], LINK, 'alternate', 0), /same stages/);
  });

  test('steps are averaged per tokens; the CPU floor applies to the average', () => {
    const step = (tokens: number, scale: number) => ({
      tokens,
      ranks: [layer(10 * scale, 20 * scale), layer(16 * scale, 14 * scale)],
    });
    // 256 tokens: max(5, 8) + max(10, 7) = 18 ms of stage maxima + 20 ms of link = 38 ms; 768 tokens:
    // max(15, 24) + max(30, 21) + 20 = 74 ms. Per 512 tokens: (38 + 74) / 1024 * 512 = 56 ms.
    const steps = [step(256, 0.5), step(768, 1.5)];
    assert.equal(predictSteps(steps, LINK, 'alternate', 0, 512).offMs, 56);
    // One step of 256 tokens: 38 ms, 76 ms per 512 tokens; per step (perTokens null) 38 ms.
    assert.equal(predictSteps([step(256, 0.5)], LINK, 'alternate', 0, 512).offMs, 76);
    assert.equal(predictSteps([step(256, 0.5)], LINK, 'alternate', 0, null).offMs, 38);
    // A floor above the averaged timeline binds: each step's (both ranks' compute + 200 ms other CPU) / 2
    // cores, (30 + 200) / 2 = 115 and (90 + 200) / 2 = 145 ms, averaged per 512 tokens: 260 / 2 = 130 ms.
    const cpu = { cores: 2, otherCpuMs: 200, commCpuBaseMs: 0, commCpuPerMiBMs: 0 };
    assert.equal(predictSteps(steps, LINK, 'alternate', 0, 512, cpu).offMs, 130);
    assert.throws(() => predictSteps([], LINK, 'alternate', 0, 512), /no steps/);
  });
});

/** A rank's trace (the tracer's format) of `steps`: each a split flag and its stages' compute (ms). */
function traceOf(rank: number, steps: readonly { split: boolean; ms: readonly number[] }[]): string {
  const names = ['L0 attn all-reduce', 'L0 mlp all-reduce', 'done'];
  const events: object[] = [];
  let ts = 1000;
  for (const st of steps) {
    const start = ts;
    st.ms.forEach((ms, k) => {
      events.push({ name: names[k], cat: 'compute', ph: 'X', ts, dur: ms * 1000, pid: rank, tid: 0 });
      ts += ms * 1000 + 500;
    });
    const args = { tokens: 512, kind: 'prefill', split: st.split };
    events.push({ name: 'step', cat: 'step', ph: 'X', ts: start, dur: ts - start, pid: rank, tid: 4, args });
    ts += 1000;
  }
  return JSON.stringify({ traceEvents: events });
}

describe('the steps of a two-rank trace', () => {
  test('paired by index, unsplit and whole ones only, each rank with its own stage times', () => {
    const r0 = parseRankTrace(
      traceOf(0, [
        { split: false, ms: [10, 20, 1] },
        { split: true, ms: [5, 10, 1] },
        { split: false, ms: [11, 19, 1] },
        { split: false, ms: [9, 9, 1] },
      ]),
      0,
    );
    const r1 = parseRankTrace(
      traceOf(1, [
        { split: false, ms: [16, 14, 1] },
        { split: true, ms: [5, 10, 1] },
        { split: false, ms: [12, 18, 1] },
        // Cut mid-step (rank 1's last stage missing): the ranks disagree, the step is left out.
        { split: false, ms: [9, 9] },
      ]),
      1,
    );
    const steps = planSteps([r0, r1], { hidden: 256, vocab: 1000, topK: 1 }, 'prefill');
    assert.equal(steps.length, 2);
    assert.deepEqual(
      steps.map((s) => s.ranks.map((r) => r.map((st) => st.computeMs))),
      [
        [
          [10, 20, 1],
          [16, 14, 1],
        ],
        [
          [11, 19, 1],
          [12, 18, 1],
        ],
      ],
    );
    // Bytes from the model's sizes: 512 tokens x 256 floats x 4 bytes per all-reduce.
    assert.deepEqual(steps[0]!.ranks[1]![0]!.collective, { kind: 'all_reduce', bytes: 512 * 256 * 4 });
  });
});
