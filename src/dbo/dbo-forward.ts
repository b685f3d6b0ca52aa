// One step's forward with dual-batch overlap: decide the split (all ranks vote with one small all-reduce,
// so no rank waits for a micro-batch another rank did not run), cut the batch, run the two micro-batches
// interleaved at their collectives, and join their logits.

import type { ForwardBatch } from '../layers/forward-batch.js';
import type { MlaKvCache } from '../layers/mla-kv-cache.js';
import type { RankGroups } from '../layers/rank-groups.js';
import type { DeepseekForCausalLM, ForwardObserver } from '../models/deepseek.js';
import type { Logger } from '../util/logger.js';
import { type DboAutoSwitch, DboStepTimer, stepKindOf } from './dbo-auto.js';
import { runTwoMicroBatches } from './dbo-scheduler.js';
import { type DboThresholds, decideSplit, joinLogits, splitForwardBatch } from './micro-batch.js';
import type { Tracer } from './tracer.js';

export interface DboOptions {
  readonly enabled: boolean;
  readonly thresholds: DboThresholds;
  readonly tracer: Tracer | null;
  readonly logger: Logger | null;
  /**
   * The driver's automatic off-switch (dbo-auto.ts): it decides whether an eligible step splits, and the
   * vote carries its decision to the other ranks. Null or absent: every eligible step splits (followers).
   */
  readonly auto?: DboAutoSwitch | null;
}

/** Statistics of the steps run, for benchmarks and logs. */
export interface DboStats {
  steps: number;
  splitSteps: number;
}

function observerFor(tracer: Tracer | null, mb: number): ForwardObserver | undefined {
  return tracer ? { onLayerStart: (layer) => tracer.setLayer(mb, layer) } : undefined;
}

/**
 * Runs one step's forward on this rank, split into two interleaved micro-batches when DBO is on, the split
 * policy allows it and every rank agrees; returns the logits rows of `batch.logitsIndices`.
 */
export async function forwardWithDbo(
  model: DeepseekForCausalLM,
  cache: MlaKvCache,
  groups: RankGroups,
  batch: ForwardBatch,
  opts: DboOptions,
  stats?: DboStats,
): Promise<Float32Array> {
  if (stats) stats.steps++;
  const tracer = opts.tracer;
  tracer?.resetLayers();
  tracer?.beginStep();
  let split = false;
  let at = batch.numTokens;
  let stepArgs: Record<string, unknown> = { tokens: batch.numTokens, split: false };
  let timer: DboStepTimer | null = null;
  try {
    // The vote goes over the widest group (every replica's ranks with data parallelism): the MoE layers'
    // collectives join them all, so all must run the same number of micro-batches.
    const comm = groups.world;
    if (opts.enabled && comm.worldSize > 1) {
      const d = decideSplit(batch, opts.thresholds);
      const autoSwitch = d.split ? (opts.auto ?? null) : null;
      const auto = autoSwitch?.policy.decide(stepKindOf(batch)) ?? null;
      // Every rank votes; the step splits only if all ranks can (and the driver's off-switch agrees).
      const vote = Float32Array.of(d.split && (auto?.split ?? true) ? 1 : 0);
      const span = tracer?.beginComm(0, 'split vote');
      try {
        await comm.allReduce(vote).wait();
      } finally {
        span?.end();
      }
      split = vote[0] === comm.worldSize;
      at = d.splitToken;
      const reason = auto ? `${d.reason}; ${auto.reason}` : d.reason;
      opts.logger?.debug(
        `DBO step of ${batch.numTokens} tokens: ${split ? `split at token ${at} (cost ${d.costA.toFixed(0)} / ${d.costB.toFixed(0)})` : 'one batch'}; ${reason}` +
          (d.split && !split && (auto?.split ?? true) ? '; another rank could not split' : ''),
      );
      stepArgs = { tokens: batch.numTokens, split, splitToken: at, reason };
      if (autoSwitch) timer = new DboStepTimer(autoSwitch.waits, stepKindOf(batch), d.costA + d.costB);
    }
    if (!split) {
      if (!tracer) return await model.forward(batch, cache, undefined, groups);
      const [out] = await runTwoMicroBatches(
        groups,
        (c) => model.forward(batch, cache, observerFor(tracer, 0), c),
        async () => new Float32Array(0),
        tracer,
      );
      return out;
    }
    if (stats) stats.splitSteps++;
    const mb = splitForwardBatch(batch, at);
    const [a, b] = await runTwoMicroBatches(
      groups,
      (c) => model.forward(mb.a, cache, observerFor(tracer, 0), c),
      (c) => model.forward(mb.b, cache, observerFor(tracer, 1), c),
      tracer,
    );
    return joinLogits(mb, a, b, model.config.vocabSize);
  } finally {
    // (A step that threw broke the group; what the policy learns from it no longer matters.)
    if (timer) opts.auto?.policy.record(timer.finish(split));
    tracer?.endStep(stepArgs);
  }
}
