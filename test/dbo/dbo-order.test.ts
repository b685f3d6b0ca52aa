// DBO orders as data (src/dbo/dbo-order.ts) and the driver's plan on the wire (src/dbo/dbo-plan.ts):
// the turns of each order for a known stage list, every stage of both micro-batches exactly once and in
// each micro-batch's own order; a plan survives encoding, and a bad one is refused with a clear error.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildOrder, DBO_ORDERS, formatOrder } from '../../src/dbo/dbo-order.js';
import { DboPlanError, decodeDboPlan, encodeDboPlan } from '../../src/dbo/dbo-plan.js';
import type { ForwardBatch } from '../../src/layers/forward-batch.js';
import type { ForwardStage } from '../../src/layers/hand-over.js';

/** A dense layer 0, then two allgather-mode MoE layers, then the logits. */
const STAGES: ForwardStage[] = [
  { name: 'L0 attn all-reduce', end: 'collective' },
  { name: 'L0 mlp all-reduce', end: 'collective' },
  ...[1, 2].flatMap((l): ForwardStage[] => [
    { name: `L${l} attn all-reduce`, end: 'collective' },
    { name: `L${l} experts 1/2`, end: 'pause' },
    { name: `L${l} moe all-reduce`, end: 'collective' },
  ]),
  { name: 'logits all-gather', end: 'collective' },
  { name: 'done', end: 'done' },
];

const short = (s: string) =>
  s
    .replace(/ all-reduce| all-gather/g, '')
    .replace(/experts 1\/2/g, 'e1')
    .replace(/ moe/g, ' e2');

describe('DBO orders', () => {
  test('alternate: turns switch at every collective, a pause continues the same micro-batch', () => {
    const text = formatOrder(buildOrder('alternate', STAGES), STAGES);
    assert.equal(
      short(text),
      'A L0 attn, B L0 attn, A L0 mlp, B L0 mlp, A L1 attn, B L1 attn, A L1 e1, A L1 e2, B L1 e1, B L1 e2, ' +
        'A L2 attn, B L2 attn, A L2 e1, A L2 e2, B L2 e1, B L2 e2, A logits, B logits, A done, B done',
    );
  });

  test('staggered: B falls half a MoE behind at the first pause, then every collective runs under half a MoE', () => {
    const text = formatOrder(buildOrder('staggered', STAGES), STAGES);
    assert.equal(
      short(text),
      'A L0 attn, B L0 attn, A L0 mlp, B L0 mlp, A L1 attn, B L1 attn, A L1 e1, A L1 e2, B L1 e1, ' +
        'A L2 attn, B L1 e2, A L2 e1, B L2 attn, A L2 e2, B L2 e1, A logits, B L2 e2, A done, B logits, B done',
    );
  });

  test('every order runs each stage of both micro-batches once, in order; without pauses they agree', () => {
    const noPause = STAGES.filter((s) => s.end !== 'pause');
    for (const stages of [STAGES, noPause]) {
      for (const name of DBO_ORDERS) {
        const turns = buildOrder(name, stages);
        for (const mb of [0, 1] as const) {
          assert.deepEqual(
            turns.filter((t) => t.mb === mb).map((t) => t.stage),
            stages.map((_, i) => i),
            `${name}: micro-batch ${mb}`,
          );
        }
      }
    }
    assert.deepEqual(buildOrder('staggered', noPause), buildOrder('alternate', noPause));
  });
});

describe('the DBO plan on the wire', () => {
  const batch = (n: number) => ({ numTokens: n }) as ForwardBatch;

  test('round trip', () => {
    const plan = { split: true, order: 'staggered' as const, splitTokens: [5, 7], reason: 'r' };
    assert.deepEqual(decodeDboPlan(encodeDboPlan(plan), [batch(10), batch(9)]), { ...plan, reason: '' });
    const whole = { split: false, order: 'alternate' as const, splitTokens: [10], reason: '' };
    assert.deepEqual(decodeDboPlan(encodeDboPlan(whole), [batch(10)]), whole);
  });

  test('bad plans are refused, naming what is wrong', () => {
    const cases: [number[], number, RegExp][] = [
      [[1, 0, 5], 2, /3 words for 2 replica/],
      [[2, 0, 5], 1, /split 2/],
      [[1, 9, 5], 1, /order 9/],
      [[1, 0, 10], 1, /splits replica 0's 10 tokens at 10/],
      [[1, 0, 0], 1, /at 0/],
      [[0, 0, 4], 1, /at 4/],
    ];
    for (const [words, replicas, re] of cases) {
      assert.throws(
        () =>
          decodeDboPlan(
            Int32Array.from(words),
            Array.from({ length: replicas }, () => batch(10)),
          ),
        (e: unknown) => e instanceof DboPlanError && re.test(e.message),
        String(words),
      );
    }
  });
});
