// One step's forward with dual-batch overlap. The driver plans the step (dbo-plan.ts: split or not, where,
// in which order) and sends the plan with the batches; every rank then cuts its batch as planned, runs the
// two micro-batches' stage lists in the planned order (dbo-scheduler.ts) and joins their logits.

import type { ForwardBatch } from '../layers/forward-batch.js';
import type { MlaKvCache } from '../layers/mla-kv-cache.js';
import type { RankGroups } from '../layers/rank-groups.js';
import type { ForwardObserver } from '../models/deepseek.js';
import type { CausalLM } from '../models/model-registry.js';
import type { Logger } from '../util/logger.js';
import { type DboAutoSwitch, DboStepTimer, stepKindOf } from './dbo-auto.js';
import { buildOrder, formatOrder } from './dbo-order.js';
import type { DboPlanner, DboStepPlan } from './dbo-plan.js';
import { runMicroBatches } from './dbo-scheduler.js';
import { type DboThresholds, joinLogits, splitForwardBatch } from './micro-batch.js';
import type { Tracer } from './tracer.js';

export interface DboOptions {
  readonly enabled: boolean;
  readonly thresholds: DboThresholds;
  readonly tracer: Tracer | null;
  readonly logger: Logger | null;
  /**
   * The driver's automatic off-switch (dbo-auto.ts): it decides whether an eligible step splits, and the
   * plan carries its decision to the other ranks. Null or absent: every eligible step splits.
   */
  readonly auto?: DboAutoSwitch | null;
  /** The driver's planner (dbo-plan.ts); absent on the other ranks, which run the plans they receive. */
  readonly planner?: DboPlanner | null;
}

/** Statistics of the steps run, for benchmarks, logs and /metrics. */
export interface DboStats {
  steps: number;
  splitSteps: number;
  /**
   * Milliseconds collectives of split steps were in flight while the compute thread worked: from each
   * collective's issue to the wait that needs it (for one that finished before its wait, an upper bound).
   */
  overlapMs: number;
}

/** A planned step: the plan and, on the driver, the off-switch's timer for it. */
export interface DboStep {
  readonly plan: DboStepPlan;
  readonly timer: DboStepTimer | null;
}

/** The driver's plan for a step of `batches` (one per replica), or null when DBO is off or no group. */
export function planDboStep(
  opts: DboOptions,
  batches: readonly ForwardBatch[],
  worldSize: number,
): DboStep | null {
  if (!opts.enabled || worldSize < 2 || !opts.planner) return null;
  const { plan, decision, auto } = opts.planner.plan(batches);
  const timer =
    auto && opts.auto
      ? new DboStepTimer(opts.auto.waits, stepKindOf(batches[0]!), decision.costA + decision.costB)
      : null;
  return { plan, timer };
}

function observerFor(tracer: Tracer | null, mb: number): ForwardObserver | undefined {
  return tracer ? { onLayerStart: (layer) => tracer.setLayer(mb, layer) } : undefined;
}

/**
 * Runs one step's forward on this rank: as planned (`step`, the same on every rank; null: one batch) for
 * this rank's `replica`. Returns the logits rows of `batch.logitsIndices`.
 */
export async function forwardWithDbo(
  model: CausalLM,
  cache: MlaKvCache,
  groups: RankGroups,
  batch: ForwardBatch,
  opts: DboOptions,
  stats: DboStats | undefined,
  step: DboStep | null,
  replica = 0,
): Promise<Float32Array> {
  if (stats) stats.steps++;
  const tracer = opts.tracer;
  const plan = step?.plan ?? null;
  const split = plan?.split ?? false;
  const at = plan?.splitTokens[replica] ?? batch.numTokens;
  const stepArgs: Record<string, unknown> = { tokens: batch.numTokens, kind: stepKindOf(batch), split };
  tracer?.resetLayers();
  tracer?.beginStep();
  try {
    if (plan && opts.enabled) {
      opts.logger?.debug(
        `DBO step of ${batch.numTokens} tokens: ${split ? `split at token ${at}` : 'one batch'}; ${plan.reason}`,
      );
      Object.assign(stepArgs, { splitToken: at, reason: plan.reason });
    }
    if (!split) {
      if (!tracer) return await model.forward(batch, cache, undefined, groups);
      const run = await runMicroBatches(
        groups,
        model.forwardStages(groups),
        null,
        [(g) => model.forward(batch, cache, observerFor(tracer, 0), g)],
        tracer,
      );
      return run.results[0]!;
    }
    if (stats) stats.splitSteps++;
    const mb = splitForwardBatch(batch, at);
    const stages = model.forwardStages(groups);
    const turns = buildOrder(plan!.order, stages);
    if (tracer) stepArgs.order = `${plan!.order}: ${formatOrder(turns, stages)}`;
    const run = await runMicroBatches(
      groups,
      stages,
      turns,
      [
        (g) => model.forward(mb.a, cache, observerFor(tracer, 0), g),
        (g) => model.forward(mb.b, cache, observerFor(tracer, 1), g),
      ],
      tracer,
    );
    if (stats) stats.overlapMs += run.overlapMs;
    opts.planner?.times.record(stepKindOf(batch), stages, run.timings, [mb.a, mb.b]);
    return joinLogits(mb, run.results[0]!, run.results[1]!, model.config.vocabSize);
  } finally {
    // (A step that threw broke the group; what the policy learns from it no longer matters.)
    if (step?.timer) opts.auto?.policy.record(step.timer.finish(split));
    tracer?.endStep(stepArgs);
  }
}
