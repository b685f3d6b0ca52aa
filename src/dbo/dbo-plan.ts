// The driver's plan for a step under DBO: whether it splits, where (per engine replica) and in which
// order (dbo-order.ts). The driver decides from state only it needs — the batches of every replica, which
// it schedules, its off-switch (dbo-auto.ts) and the stage times it measured — and sends the plan with
// the step's batches, so that the step opens without a vote: every rank runs what the plan says.
//
// Measured stage times (`StageTimes`) drive two choices: the order (staggered when the attention stage is
// shorter than half a MoE layer's experts, see dbo-order.ts) and the balance of the split (a token's
// non-attention work in units of attended positions, fitted from the two micro-batches' stage times).

import type { ForwardBatch } from '../layers/forward-batch.js';
import type { ForwardStage } from '../layers/hand-over.js';
import { type DboAutoDecision, type DboAutoSwitch, type DboStepKind, stepKindOf } from './dbo-auto.js';
import { DBO_ORDERS, type DboOrderName, type DboOrderSetting } from './dbo-order.js';
import type { StageTiming } from './dbo-scheduler.js';
import { type DboThresholds, decideSplit, LINEAR_COST_PER_TOKEN, type SplitDecision } from './micro-batch.js';

/** What every rank runs for one step. */
export interface DboStepPlan {
  readonly split: boolean;
  readonly order: DboOrderName;
  /** Per replica: the token where micro-batch B begins (its numTokens when not split). */
  readonly splitTokens: readonly number[];
  /** Why (the driver's debug log and trace; empty on the other ranks). */
  readonly reason: string;
}

/** A bad plan received from the driver. */
export class DboPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DboPlanError';
  }
}

/** Int32 words of an encoded plan for `numReplicas` replicas. */
export function encodedPlanLength(numReplicas: number): number {
  return 2 + numReplicas;
}

/** The plan as Int32 words: [split, order index, splitToken per replica]. */
export function encodeDboPlan(plan: DboStepPlan): Int32Array {
  return Int32Array.from([plan.split ? 1 : 0, DBO_ORDERS.indexOf(plan.order), ...plan.splitTokens]);
}

/** Decodes and checks a plan against the replicas' batches (peer bytes: every field is validated). */
export function decodeDboPlan(words: Int32Array, batches: readonly ForwardBatch[]): DboStepPlan {
  if (words.length !== encodedPlanLength(batches.length))
    throw new DboPlanError(`DBO plan of ${words.length} words for ${batches.length} replica(s)`);
  const split = words[0]!;
  const order = DBO_ORDERS[words[1]!];
  if ((split !== 0 && split !== 1) || order === undefined)
    throw new DboPlanError(
      `DBO plan with split ${split} and order ${words[1]} (allowed: 0/1 and 0..${DBO_ORDERS.length - 1})`,
    );
  const splitTokens = Array.from(words.subarray(2));
  splitTokens.forEach((at, r) => {
    const T = batches[r]!.numTokens;
    const ok = split === 1 ? at > 0 && at < T : at === T;
    if (!ok) throw new DboPlanError(`DBO plan splits replica ${r}'s ${T} tokens at ${at}`);
  });
  return { split: split === 1, order, splitTokens, reason: '' };
}

/** The stage times of split steps, per kind of step, that the driver's choices are made from. */
export class StageTimes {
  private readonly kinds = new Map<DboStepKind, KindTimes>();

  /** Records a split step: the stage list, the measured timings and each micro-batch's batch. */
  record(
    kind: DboStepKind,
    stages: readonly ForwardStage[],
    timings: readonly StageTiming[],
    mbs: readonly [ForwardBatch, ForwardBatch],
  ): void {
    let k = this.kinds.get(kind);
    if (!k) {
      k = new KindTimes();
      this.kinds.set(kind, k);
    }
    const attn = [0, 0];
    const other = [0, 0];
    let attnStages = 0;
    let halfMin = 0;
    const halves = new Map<string, number[]>();
    for (const t of timings) {
      const name = stages[t.stage]?.name ?? '';
      if (name.endsWith('attn all-reduce')) {
        attn[t.mb]! += t.computeMs;
        attnStages++;
      } else other[t.mb]! += t.computeMs;
      // The two expert halves of a layer: `Ln experts 1/2` then `Ln moe all-reduce`.
      const layer = /^(L\d+) (experts 1\/2|moe all-reduce)$/.exec(name)?.[1];
      if (layer) {
        const key = `${t.mb} ${layer}`;
        halves.set(key, [...(halves.get(key) ?? []), t.computeMs]);
      }
    }
    for (const h of halves.values()) if (h.length === 2) halfMin += Math.min(h[0]!, h[1]!);
    const numLayers = attnStages / 2;
    k.add(
      mbs.map((b, mb) => ({
        tokens: b.numTokens,
        context: attendedPositions(b),
        attnMs: attn[mb]!,
        otherMs: other[mb]!,
      })),
      numLayers > 0 ? attn.reduce((a, b) => a + b, 0) / attnStages : 0,
      halves.size > 0 ? halfMin / halves.size : 0,
    );
  }

  /** A token's non-attention work in attended positions, as measured for `kind` (a default before). */
  linearCost(kind: DboStepKind): number {
    return this.kinds.get(kind)?.linearCost() ?? LINEAR_COST_PER_TOKEN;
  }

  /**
   * The order for `kind`: staggered when a layer's attention stage is measured shorter than the shorter
   * half of its experts (so half a MoE hides a collective better than the other's attention), else
   * alternate; staggered before anything is measured.
   */
  bestOrder(kind: DboStepKind): { order: DboOrderName; why: string } {
    const k = this.kinds.get(kind);
    if (!k || k.samples === 0) return { order: 'staggered', why: 'no stage times yet' };
    const order = k.attnMs < k.halfMs ? 'staggered' : 'alternate';
    return {
      order,
      why: `attention ${k.attnMs.toFixed(2)} ms vs half MoE ${k.halfMs.toFixed(2)} ms a layer`,
    };
  }
}

/** Σ attended positions of a batch's tokens (position + 1 each). */
function attendedPositions(b: ForwardBatch): number {
  let n = 0;
  for (const p of b.positions) n += p + 1;
  return n;
}

interface MicroBatchSample {
  readonly tokens: number;
  readonly context: number;
  readonly attnMs: number;
  readonly otherMs: number;
}

/** Exponentially weighted sums for one kind of step (recent steps count most). */
class KindTimes {
  private static readonly DECAY = 0.9;
  samples = 0;
  attnMs = 0;
  halfMs = 0;
  // Least squares of attnMs ≈ a·tokens + b·context, and otherMs ≈ o·tokens.
  private tt = 0;
  private tc = 0;
  private cc = 0;
  private ta = 0;
  private ca = 0;
  private to = 0;

  add(mbs: readonly MicroBatchSample[], attnPerLayer: number, halfPerLayer: number): void {
    const d = KindTimes.DECAY;
    const first = this.samples === 0;
    this.attnMs = first ? attnPerLayer : d * this.attnMs + (1 - d) * attnPerLayer;
    this.halfMs = first ? halfPerLayer : d * this.halfMs + (1 - d) * halfPerLayer;
    this.samples++;
    this.tt *= d;
    this.tc *= d;
    this.cc *= d;
    this.ta *= d;
    this.ca *= d;
    this.to *= d;
    for (const m of mbs) {
      this.tt += m.tokens * m.tokens;
      this.tc += m.tokens * m.context;
      this.cc += m.context * m.context;
      this.ta += m.tokens * m.attnMs;
      this.ca += m.context * m.attnMs;
      this.to += m.tokens * m.otherMs;
    }
  }

  /** (a + o) / b, or undefined when the samples cannot tell tokens from context apart. */
  linearCost(): number | undefined {
    const det = this.tt * this.cc - this.tc * this.tc;
    // Tokens and context nearly proportional in every sample (e.g. equal decodes): not separable.
    if (this.samples < 4 || det <= 1e-6 * this.tt * this.cc) return undefined;
    const a = (this.ta * this.cc - this.ca * this.tc) / det;
    const b = (this.tt * this.ca - this.tc * this.ta) / det;
    const o = this.to / this.tt;
    if (!(b > 0) || !(a + o > 0)) return undefined;
    // Bounded: a noisy fit must not push the split to one end.
    return Math.min(Math.max((a + o) / b, 16), 65_536);
  }
}

/** The driver's planner: thresholds, order setting, off-switch and measured stage times. */
export class DboPlanner {
  readonly times = new StageTimes();

  constructor(
    private readonly thresholds: DboThresholds,
    private readonly orderSetting: DboOrderSetting,
    private readonly auto: DboAutoSwitch | null,
  ) {}

  /**
   * The plan for a step of `batches` (one per replica; replica 0 is the driver's). Splits only when every
   * replica's batch can (so every rank runs two micro-batches) and the off-switch agrees.
   */
  plan(batches: readonly ForwardBatch[]): {
    plan: DboStepPlan;
    decision: SplitDecision;
    auto: DboAutoDecision | null;
  } {
    const kind = stepKindOf(batches[0]!);
    const cost = this.times.linearCost(kind);
    const decisions = batches.map((b) => decideSplit(b, this.thresholds, cost));
    const d = decisions[0]!;
    const all = decisions.every((x) => x.split);
    const auto = all && this.auto ? this.auto.policy.decide(kind) : null;
    const split = all && (auto?.split ?? true);
    const chosen =
      this.orderSetting === 'auto' ? this.times.bestOrder(kind) : { order: this.orderSetting, why: 'set' };
    const reasons = [d.reason];
    if (!all && d.split) reasons.push('another replica cannot split');
    if (auto) reasons.push(auto.reason);
    if (split) reasons.push(`order ${chosen.order} (${chosen.why})`);
    return {
      plan: {
        split,
        order: chosen.order,
        splitTokens: split ? decisions.map((x) => x.splitToken) : batches.map((b) => b.numTokens),
        reason: reasons.join('; '),
      },
      decision: d,
      auto,
    };
  }
}
