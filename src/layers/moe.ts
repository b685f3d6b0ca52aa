// DeepSeek's mixture-of-experts feed-forward: a router, routed SwiGLU experts run on the tokens assigned to
// them, and always-on shared experts. Written as explicit stages — route, dispatch, experts, combine,
// shared — because dispatch and combine are where expert-parallel all-to-all communication goes.

import type { DeepseekConfig } from '../config/model-config.js';
import type { Kernels } from '../kernels/kernels.js';
import { GatedMlp } from './gated-mlp.js';
import { MoeGate, type Routing } from './moe-gate.js';
import { evenShare, moeGroupPosition, type ParallelPlan } from './parallel-plan.js';
import { Scratch } from './scratch.js';
import type { LoadContext, Slice } from './weight-loading.js';

/** Tokens grouped by expert: for expert e, entries [offsets[e], offsets[e + 1]) of `tokens` and `weights`. */
export interface ExpertAssignment {
  /** [numExperts + 1] */
  readonly offsets: Int32Array;
  /** [T · topK] token index of each (token, expert) pair, grouped by expert. */
  readonly tokens: Int32Array;
  /** [T · topK] routing weight of each pair. */
  readonly weights: Float32Array;
}

/** A rank's share of a MoE layer under `plan`; throws `ParallelPlanError` where the shape does not split. */
export function moeShares(
  config: DeepseekConfig,
  plan: ParallelPlan,
): { local: Slice; expertShard: Slice | undefined; sharedShard: Slice | null } {
  // Routed experts are spread over every rank that shares the MoE layer (all replicas' ranks under data
  // parallelism). Expert parallel: whole experts, a contiguous range per rank. Tensor parallel: every
  // expert, each split by intermediate features. Shared experts stay within the replica's tensor-parallel
  // group, like a dense MLP.
  const numExperts = config.nRoutedExperts!;
  const group = moeGroupPosition(plan);
  const sharedI = config.moeIntermediateSize * config.nSharedExperts;
  return {
    local: plan.expertParallel
      ? evenShare(numExperts, group.rank, group.size, 'n_routed_experts')
      : { start: 0, count: numExperts },
    expertShard: plan.expertParallel
      ? undefined
      : evenShare(config.moeIntermediateSize, group.rank, group.size, 'moe_intermediate_size'),
    sharedShard:
      config.nSharedExperts > 0
        ? evenShare(sharedI, plan.rank, plan.size, 'shared experts intermediate size')
        : null,
  };
}

export class Moe {
  readonly gate: MoeGate;
  /** Routed experts held by this rank: global ids firstExpert .. firstExpert + experts.length - 1. */
  private readonly experts: GatedMlp[];
  readonly firstExpert: number;
  /** Routed experts in the model (all ranks). */
  readonly numExperts: number;
  private readonly shared: GatedMlp | null;
  private readonly hidden: number;
  private readonly scratch: Scratch;

  constructor(ctx: LoadContext, config: DeepseekConfig, prefix: string, plan: ParallelPlan) {
    this.hidden = config.hiddenSize;
    this.scratch = ctx.scratch ?? new Scratch(ctx.kernels);
    this.gate = new MoeGate(ctx, config, `${prefix}.gate`);
    this.numExperts = config.nRoutedExperts!;
    const { local, expertShard, sharedShard } = moeShares(config, plan);
    this.firstExpert = local.start;
    this.experts = [];
    for (let e = local.start; e < local.start + local.count; e++) {
      this.experts.push(
        new GatedMlp(ctx, `${prefix}.experts.${e}`, this.hidden, config.moeIntermediateSize, expertShard),
      );
    }
    this.shared = sharedShard
      ? new GatedMlp(
          ctx,
          `${prefix}.shared_experts`,
          this.hidden,
          config.moeIntermediateSize * config.nSharedExperts,
          sharedShard,
        )
      : null;
  }

  /** Whether global expert `e` is held by this rank. */
  holds(e: number): boolean {
    return e >= this.firstExpert && e < this.firstExpert + this.experts.length;
  }

  /** Runs held expert `e` on `x` ([count, hidden]) into `out` ([count, hidden]). */
  runExpert(kernels: Kernels, e: number, out: Float32Array, x: Float32Array, count: number): void {
    this.experts[e - this.firstExpert]!.forward(kernels, out, x, count);
  }

  /** Groups the routed (token, expert) pairs by expert. */
  static assign(routing: Routing, T: number, numExperts: number): ExpertAssignment {
    const K = routing.topK;
    const offsets = new Int32Array(numExperts + 1);
    for (let i = 0; i < T * K; i++) offsets[routing.experts[i]! + 1]!++;
    for (let e = 0; e < numExperts; e++) offsets[e + 1]! += offsets[e]!;
    const fill = offsets.slice(0, numExperts);
    const tokens = new Int32Array(T * K);
    const weights = new Float32Array(T * K);
    for (let i = 0; i < T * K; i++) {
      const e = routing.experts[i]!;
      const at = fill[e]!++;
      tokens[at] = Math.floor(i / K);
      weights[at] = routing.weights[i]!;
    }
    return { offsets, tokens, weights };
  }

  /**
   * Runs the routed experts this rank holds on their tokens and accumulates weight · expert(x) into `out`
   * ([T, hidden]).
   */
  runExperts(
    kernels: Kernels,
    out: Float32Array,
    x: Float32Array,
    assignment: ExpertAssignment,
    /** Only the held experts in [from, to) (global ids; default: all held), e.g. half of them under DBO. */
    from = this.firstExpert,
    to = this.firstExpert + this.experts.length,
  ): void {
    const d = this.hidden;
    const first = Math.max(from, this.firstExpert);
    const last = Math.min(to, this.firstExpert + this.experts.length);
    if (first >= last) return;
    // This rank's pairs are contiguous (grouped by expert): gather their rows once, run each expert on
    // its slice, then add the weighted results to their tokens.
    const begin = assignment.offsets[first]!;
    const numPairs = assignment.offsets[last]! - begin;
    if (numPairs === 0) return;
    const tokens = assignment.tokens.subarray(begin, begin + numPairs);
    const xs = this.scratch.get('moe.x', numPairs * d);
    kernels.copyRows(xs, null, d, 0, x, tokens, d, 0, numPairs, d);
    const ys = this.scratch.get('moe.y', numPairs * d);
    for (let e = first; e < last; e++) {
      const a = assignment.offsets[e]! - begin;
      const count = assignment.offsets[e + 1]! - begin - a;
      if (count === 0) continue;
      this.runExpert(
        kernels,
        e,
        ys.subarray(a * d, (a + count) * d),
        xs.subarray(a * d, (a + count) * d),
        count,
      );
    }
    const weights = assignment.weights.subarray(begin, begin + numPairs);
    kernels.weightedScatterAdd(out, ys, tokens, weights, numPairs, d);
  }

  /**
   * The held expert at which to cut this rank's MoE work in two halves of equal compute: routed experts
   * [firstExpert, cut) first, then [cut, end) and the shared experts. A (token, expert) pair costs one
   * expert's rows on this rank; a token costs the shared experts' rows on this rank.
   */
  halfwayExpert(assignment: ExpertAssignment, T: number): number {
    const first = this.firstExpert;
    const last = first + this.experts.length;
    const routedRows = this.experts[0]?.intermediate ?? 0;
    const sharedRows = this.shared?.intermediate ?? 0;
    const pairs = (e: number) => assignment.offsets[e]! - assignment.offsets[first]!;
    const total = pairs(last) * routedRows + T * sharedRows;
    let cut = first;
    while (cut < last && pairs(cut + 1) * routedRows * 2 <= total) cut++;
    return cut;
  }

  /** out += shared_experts(x) (this rank's partial sum under tensor parallelism). */
  runShared(kernels: Kernels, out: Float32Array, x: Float32Array, T: number): void {
    if (!this.shared) return;
    const y = this.scratch.get('moe.shared', T * this.hidden);
    this.shared.forward(kernels, y, x, T);
    kernels.add(out, out, y, T * this.hidden);
  }
}
