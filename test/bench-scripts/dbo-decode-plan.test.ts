// Decode steps in the DBO benchmark and planner: picking the decode-only steps of the full batch out of a
// trace (bench/dbo-trace.ts), the stages and bytes the planner reads from such a step in alltoall mode
// (bench/dbo-plan.ts), and the costs of the all-to-all and reduce-scatter on the link model. The fixture
// (test/fixtures/dbo-decode-trace) is a hand-made rank-0 trace in the tracer's format: a 2-layer alltoall
// model, one prefill step of 64 tokens, three decode steps of 4 sequences, one of 2 (the batch draining).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import {
  collectiveMs,
  predict,
  stageCollective,
  stagesFromTrace,
  UnknownStageError,
} from '../../bench/dbo-plan.js';
import { fullDecodeSteps, NoDecodeStepsError, parseRankTrace } from '../../bench/dbo-trace.js';
import { fixtureDir } from '../helpers/golden.js';

const DIR = fixtureDir('dbo-decode-trace');
const steps = () => parseRankTrace(readFileSync(join(DIR, 'rank-0.trace.json'), 'utf8'), 0);
const SIZES = { hidden: 8, vocab: 100, topK: 2 };

describe('decode steps from a trace', () => {
  test('each step carries its kind', () => {
    assert.deepEqual(
      steps().map((s) => [s.tokens, s.kind]),
      [
        [64, 'prefill'],
        [4, 'decode'],
        [4, 'decode'],
        [4, 'decode'],
        [2, 'decode'],
      ],
    );
  });

  test('the full batch: the decode-only steps of the most frequent size, or of the size asked for', () => {
    assert.deepEqual(
      fullDecodeSteps(steps()).map((s) => s.index),
      [1, 2, 3],
    );
    assert.deepEqual(
      fullDecodeSteps(steps(), 2).map((s) => s.index),
      [4],
    );
  });

  test('no decode step of the size asked for, or a trace without kinds, is a clear error', () => {
    assert.throws(
      () => fullDecodeSteps(steps(), 8),
      (e: unknown) => {
        return e instanceof NoDecodeStepsError && /of 8 sequences .* batches of 2, 4/.test(e.message);
      },
    );
    const old = steps().map((s) => ({ ...s, kind: null }));
    assert.throws(() => fullDecodeSteps(old), NoDecodeStepsError);
  });
});

describe('the planner on a decode step (alltoall mode)', () => {
  test('stages of the median decode step, with each collective and its bytes', () => {
    const stages = stagesFromTrace(DIR, 0, SIZES, 'decode');
    // The decode steps' walls are scaled 1.0, 1.2, 1.1: the median is the third (scale 1.1); its stage
    // j took int((100 + 10 j) * 1.1) µs. Exact: the durations are whole microseconds.
    assert.deepEqual(
      stages.map((s) => [s.name, s.computeMs, s.collective?.kind ?? s.end, s.collective?.bytes ?? 0]),
      [
        ['L0 attn all-reduce', 0.11, 'all_reduce', 4 * 8 * 4],
        ['L0 mlp all-reduce', 0.121, 'all_reduce', 4 * 8 * 4],
        ['L1 attn all-reduce', 0.132, 'all_reduce', 4 * 8 * 4],
        // A dispatched row is [expert id, hidden...], one per token and routed expert.
        ['L1 dispatch', 0.143, 'all_to_all', 4 * 2 * 9 * 4],
        ['L1 combine', 0.154, 'all_to_all', 4 * 2 * 8 * 4],
        ['L1 shared reduce-scatter', 0.165, 'reduce_scatter', 4 * 8 * 4],
        ['L1 all-gather', 0.176, 'all_gather', 4 * 8 * 4],
        // One logits row per decoding sequence (a prefill step has one per 512 tokens).
        ['logits all-gather', 0.187, 'all_gather', 4 * 100 * 4],
        ['done', 0.198, 'done', 0],
      ],
    );
  });

  test('the batch size asked for, not the most frequent one (warm-up requests decode in small batches)', () => {
    const stages = stagesFromTrace(DIR, 0, SIZES, 'decode', 2);
    assert.equal(stages.find((s) => s.name === 'logits all-gather')?.collective?.bytes, 2 * 100 * 4);
    assert.throws(() => stagesFromTrace(DIR, 0, SIZES, 'decode', 8), NoDecodeStepsError);
  });

  test('the prefill phase takes the prefill step from the same trace', () => {
    const stages = stagesFromTrace(DIR, 0, SIZES, 'prefill');
    assert.equal(stages[0]!.collective?.bytes, 64 * 8 * 4);
    assert.equal(stages.find((s) => s.name === 'logits all-gather')?.collective?.bytes, 1 * 100 * 4);
  });

  test('a stage the planner has no model for is an error, not a silent all-reduce', () => {
    assert.throws(() => stageCollective('L1 mystery exchange', 4, 4, SIZES), UnknownStageError);
  });

  test('all-to-all: each rank sends its 1/P of the rows, (P-1)/P of them off-rank; reduce-scatter P-1 messages', () => {
    // 800 mbit/s = 0.1 MB/ms. P = 2, 1 MB of rows: each rank sends 0.25 MB off-rank = 2.5 ms, plus one
    // message's latency. P = 4: 0.1875 MB = 1.875 ms plus three latencies. Tolerance: float rounding.
    const link = { bitsPerSecond: 800e6, latencyMs: 0.1, ranks: 2 };
    assert.ok(Math.abs(collectiveMs(link, 'all_to_all', 1e6) - 2.6) < 1e-9);
    assert.ok(Math.abs(collectiveMs({ ...link, ranks: 4 }, 'all_to_all', 1e6) - (1.875 + 0.3)) < 1e-9);
    assert.ok(Math.abs(collectiveMs(link, 'reduce_scatter', 1e6) - 5.1) < 1e-9);
  });

  test('with DBO every collective is issued twice at half size: latency-bound steps gain nothing', () => {
    const stages = stagesFromTrace(DIR, 0, SIZES, 'decode');
    // Tiny messages on a link with 1 ms per message: communication is almost all latency, which halving
    // the messages does not shrink and issuing them twice doubles.
    const slow = predict(stages, { bitsPerSecond: 10e9, latencyMs: 1, ranks: 2 }, 'alternate', 0);
    assert.ok(slow.onMs > slow.offMs, `latency-bound: on ${slow.onMs} > off ${slow.offMs}`);
    // Bandwidth-bound (a thin link, no latency): the halves' collectives hide under the other's compute.
    const thin = predict(stages, { bitsPerSecond: 2e6, latencyMs: 0, ranks: 2 }, 'alternate', 0);
    assert.ok(thin.onMs < thin.offMs, `bandwidth-bound: on ${thin.onMs} < off ${thin.offMs}`);
  });
});
