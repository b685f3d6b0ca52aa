// Dual-batch overlap's split policy and splitter: the decision follows the thresholds and balances by
// attention cost (request boundary within 10%, else inside a prefill); running the two micro-batches —
// one after the other, or interleaved at their collectives on two tensor-parallel ranks — gives the same
// logits as the whole batch (the reference kernels compute each row independently, so equality is exact
// up to the all-reduce's summation order: 1e-5).

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { forwardWithDbo, planDboStep } from '../../src/dbo/dbo-forward.js';
import { DBO_ORDERS } from '../../src/dbo/dbo-order.js';
import { DboPlanner } from '../../src/dbo/dbo-plan.js';
import {
  DEFAULT_DBO_THRESHOLDS,
  decideSplit,
  joinLogits,
  MicroBatchSplitError,
  splitForwardBatch,
} from '../../src/dbo/micro-batch.js';
import { Tracer } from '../../src/dbo/tracer.js';
import { ReferenceKernels } from '../../src/kernels/reference/reference-kernels.js';
import type { ForwardBatch, SequenceSlice } from '../../src/layers/forward-batch.js';
import { MlaKvCache } from '../../src/layers/mla-kv-cache.js';
import { singleGroup } from '../../src/layers/rank-groups.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { openSafetensors } from '../../src/loader/safetensors.js';
import { DeepseekForCausalLM } from '../../src/models/deepseek.js';
import { fixtureDir, loadGolden } from '../helpers/golden.js';
import { createLocalGroup } from '../helpers/local-group.js';

const BLOCK = 16;

/** A prefill batch of several prompts, each sequence in its own blocks. */
function prefillBatch(prompts: number[][], numBlocksPerSeq: number): ForwardBatch {
  const tokenIds: number[] = [];
  const positions: number[] = [];
  const slots: number[] = [];
  const seqs: SequenceSlice[] = [];
  prompts.forEach((ids, s) => {
    const blockTable = Int32Array.from({ length: numBlocksPerSeq }, (_, i) => s * numBlocksPerSeq + i);
    seqs.push({ queryStart: tokenIds.length, queryLen: ids.length, blockTable });
    ids.forEach((id, p) => {
      tokenIds.push(id);
      positions.push(p);
      slots.push(blockTable[Math.floor(p / BLOCK)]! * BLOCK + (p % BLOCK));
    });
  });
  return {
    numTokens: tokenIds.length,
    tokenIds: Int32Array.from(tokenIds),
    positions: Int32Array.from(positions),
    slotMapping: Int32Array.from(slots),
    seqs,
    logitsIndices: Int32Array.from({ length: tokenIds.length }, (_, i) => i),
  };
}

function decodeBatch(n: number, context: number): ForwardBatch {
  return {
    numTokens: n,
    tokenIds: new Int32Array(n),
    positions: Int32Array.from({ length: n }, () => context),
    slotMapping: new Int32Array(n),
    seqs: Array.from({ length: n }, (_, i) => ({
      queryStart: i,
      queryLen: 1,
      blockTable: new Int32Array(1),
    })),
    logitsIndices: Int32Array.from({ length: n }, (_, i) => i),
  };
}

describe('split decision', () => {
  test('below the thresholds a step runs as one batch', () => {
    assert.equal(decideSplit(prefillBatch([Array(100).fill(1)], 8)).split, false);
    assert.equal(decideSplit(decodeBatch(31, 10)).split, false);
    assert.equal(decideSplit(decodeBatch(32, 10)).split, true);
  });

  test('equal decodes split at the middle request boundary', () => {
    const d = decideSplit(decodeBatch(40, 100));
    assert.equal(d.splitToken, 20);
    assert.match(d.reason, /request boundary/);
  });

  test('a lone long prefill is split inside, balancing attention cost (later tokens cost more)', () => {
    const b = prefillBatch([Array(400).fill(1)], 32);
    const d = decideSplit(b);
    assert.ok(d.split);
    assert.match(d.reason, /inside a prefill/);
    assert.ok(d.splitToken > 200, `later tokens attend to more: split after the middle, got ${d.splitToken}`);
    assert.ok(Math.abs(d.costA - d.costB) / (d.costA + d.costB) < 0.01);
  });

  test('a boundary within 10% of balance is preferred to splitting a prefill', () => {
    const d = decideSplit(prefillBatch([Array(150).fill(1), Array(130).fill(1)], 16));
    assert.equal(d.splitToken, 150);
  });

  test('never an empty micro-batch; unknown batch fields are refused', () => {
    const b = decodeBatch(64, 5);
    assert.throws(() => splitForwardBatch(b, 0), MicroBatchSplitError);
    assert.throws(() => splitForwardBatch(b, 64), MicroBatchSplitError);
    assert.throws(
      () => splitForwardBatch({ ...b, extra: 1 } as ForwardBatch, 32),
      /does not know the batch field "extra"/,
    );
    assert.deepEqual(DEFAULT_DBO_THRESHOLDS, { prefillTokenThreshold: 256, decodeTokenThreshold: 32 });
  });
});

describe('micro-batches compute what the whole batch computes', () => {
  const dir = fixtureDir('v2-tiny');
  const config = loadDeepseekConfig(dir);
  const golden = loadGolden('v2-tiny');
  const prompts = ['p33_text', 'p150_text', 'p100_random'].map(
    (n) => golden.prompts.find((p) => p.name === n)!.ids,
  );
  const batch = prefillBatch(prompts, 10);
  const V = config.vocabSize;
  const kernels = new ReferenceKernels();
  const newCache = () => MlaKvCache.forModel(kernels, config, 30, BLOCK);
  const maxDiff = (x: Float32Array, y: Float32Array) =>
    x.reduce((m, v, i) => Math.max(m, Math.abs(v - y[i]!)), 0);

  test('one rank: DBO on plans nothing and runs the very forward of DBO off (bit for bit)', async () => {
    // Issue 14, acceptance 3 with one rank: nothing to overlap, so DBO must cost nothing there. The step
    // is one a two-rank group would split; with one rank no plan is made and the one-batch path runs.
    const source = openSafetensors(dir);
    const model = new DeepseekForCausalLM(config, { kernels, source, weightDType: 'bf16' });
    source.close();
    const planner = new DboPlanner(DEFAULT_DBO_THRESHOLDS, 'auto', null);
    const opts = { enabled: true, thresholds: DEFAULT_DBO_THRESHOLDS, tracer: null, logger: null, planner };
    assert.ok(planDboStep(opts, [batch], 2)?.plan.split, 'two ranks would split this step');
    assert.equal(planDboStep(opts, [batch], 1), null);
    const stats = { steps: 0, splitSteps: 0, overlapMs: 0 };
    const on = await forwardWithDbo(
      model,
      newCache(),
      singleGroup(createLocalGroup(1)[0]!),
      batch,
      opts,
      stats,
      null,
    );
    assert.deepEqual(on, await model.forward(batch, newCache()));
    assert.deepEqual(stats, { steps: 1, splitSteps: 0, overlapMs: 0 });
  });

  test('split inside a prefill, run one after the other', async () => {
    const source = openSafetensors(dir);
    const model = new DeepseekForCausalLM(config, { kernels, source, weightDType: 'bf16' });
    source.close();
    const whole = await model.forward(batch, newCache());
    const d = decideSplit(batch, { prefillTokenThreshold: 1, decodeTokenThreshold: 1 });
    for (const at of [d.splitToken, 50, 33]) {
      const mb = splitForwardBatch(batch, at);
      const cache = newCache();
      const a = await model.forward(mb.a, cache);
      const b = await model.forward(mb.b, cache);
      assert.ok(maxDiff(joinLogits(mb, a, b, V), whole) <= 1e-5, `split at ${at}`);
    }
  });

  for (const moeComm of ['allgather', 'alltoall'] as const) {
    for (const order of DBO_ORDERS) {
      test(`interleaved on two tensor-parallel ranks: ${moeComm}, order ${order}`, async () => {
        const comms = createLocalGroup(2);
        const source = openSafetensors(dir);
        const models = comms.map(
          (communicator, rank) =>
            new DeepseekForCausalLM(config, {
              kernels,
              source,
              weightDType: 'bf16',
              communicator,
              plan: { rank, size: 2, expertParallel: true, moeComm },
              replicateEmbedding: order === 'staggered',
            }),
        );
        source.close();
        const single = new DeepseekForCausalLM(config, {
          kernels,
          source: openSafetensors(dir),
          weightDType: 'bf16',
        });
        const whole = await single.forward(batch, newCache());
        // The driver's plan, given to both ranks as the executor would send it.
        const planner = new DboPlanner(DEFAULT_DBO_THRESHOLDS, order, null);
        const step = planDboStep(
          { enabled: true, thresholds: DEFAULT_DBO_THRESHOLDS, tracer: null, logger: null, planner },
          [batch],
          2,
        );
        assert.ok(step?.plan.split, 'the step splits');
        const stats = comms.map(() => ({ steps: 0, splitSteps: 0, overlapMs: 0 }));
        const tracers = comms.map((_, r) => new Tracer(join(tmpdir(), 'duet-trace-test'), r));
        const results = await Promise.all(
          models.map((m, r) =>
            forwardWithDbo(
              m,
              newCache(),
              singleGroup(comms[r]!),
              batch,
              { enabled: true, thresholds: DEFAULT_DBO_THRESHOLDS, tracer: tracers[r]!, logger: null },
              stats[r],
              step,
            ),
          ),
        );
        for (const r of results) assert.ok(maxDiff(r, whole) <= 1e-4, `max |Δlogit| ${maxDiff(r, whole)}`);
        assert.deepEqual({ ...stats[0]!, overlapMs: 0 }, { steps: 1, splitSteps: 1, overlapMs: 0 });
        assert.ok(stats[0]!.overlapMs > 0, 'collectives ran while the other micro-batch computed');
        // Compute spans of both micro-batches for every layer's attention stage, communication of both,
        // and the order written in the step span.
        const trace = JSON.parse(readFileSync(tracers[0]!.flush(), 'utf8')) as {
          traceEvents: { name: string; tid: number; cat: string; args?: { order?: string } }[];
        };
        for (const tid of [0, 2]) {
          for (let layer = 0; layer < config.numHiddenLayers; layer++) {
            assert.ok(
              trace.traceEvents.some((e) => e.tid === tid && e.name === `L${layer} attn all-reduce`),
              `layer ${layer} attention on lane ${tid}`,
            );
          }
        }
        for (const tid of [1, 3]) assert.ok(trace.traceEvents.some((e) => e.tid === tid && e.cat === 'comm'));
        const stepOrder = trace.traceEvents.find((e) => e.cat === 'step')?.args?.order ?? '';
        assert.match(stepOrder, new RegExp(`^${order}: A `));
      });
    }
  }
});
