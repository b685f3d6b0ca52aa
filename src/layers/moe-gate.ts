// The MoE router of DeepSeek: scores every routed expert per token (softmax or sigmoid), optionally limits
// the choice to the best groups of experts, picks the top-k, and derives the routing weights as the
// reference does (the selection bias of noaux_tc steers the choice only; sigmoid weights are renormalised;
// all weights are multiplied by routed_scaling_factor).

import type { DeepseekConfig } from '../config/model-config.js';
import type { Kernels, LinearWeight } from '../kernels/kernels.js';
import { Scratch } from './scratch.js';
import { type LoadContext, loadLinear, loadVector } from './weight-loading.js';

/** The routing decision for a batch of tokens. */
export interface Routing {
  /** Experts per token (top-k). */
  readonly topK: number;
  /** [T, topK] chosen experts, in descending selection score. */
  readonly experts: Int32Array;
  /** [T, topK] routing weights (after normalisation and scaling). */
  readonly weights: Float32Array;
}

export class MoeGate {
  private readonly numExperts: number;
  /** [numExperts, hidden] */
  private readonly weight: LinearWeight;
  /** [numExperts] selection bias (noaux_tc), or null. */
  private readonly bias: Float32Array | null;
  private readonly scratch: Scratch;

  constructor(
    ctx: LoadContext,
    private readonly config: DeepseekConfig,
    prefix: string,
  ) {
    this.numExperts = config.nRoutedExperts!;
    this.scratch = ctx.scratch ?? new Scratch(ctx.kernels);
    this.weight = loadLinear(ctx, [{ name: `${prefix}.weight`, rows: this.numExperts }], config.hiddenSize);
    this.bias =
      config.topkMethod === 'noaux_tc'
        ? loadVector(ctx, `${prefix}.e_score_correction_bias`, this.numExperts)
        : null;
  }

  /** Routes `x` ([T, hidden], normalised). */
  route(kernels: Kernels, x: Float32Array, T: number): Routing {
    const c = this.config;
    const E = this.numExperts;
    const K = c.numExpertsPerTok;
    const scores = this.scratch.get('gate.scores', T * E);
    kernels.linear(scores, x, this.weight, T);
    if (c.scoringFunc === 'softmax') kernels.softmax(scores, T, E);
    else for (let i = 0; i < scores.length; i++) scores[i] = 1 / (1 + Math.exp(-scores[i]!));

    // Selection scores: biased (noaux_tc), with experts outside the kept groups masked out.
    const select = this.scratch.get('gate.select', T * E);
    select.set(scores);
    if (this.bias)
      for (let t = 0; t < T; t++) for (let e = 0; e < E; e++) select[t * E + e]! += this.bias[e]!;
    if (c.topkMethod !== 'greedy' && c.nGroup > 1) this.maskGroups(kernels, select, T);

    const experts = new Int32Array(T * K);
    const picked = new Float32Array(T * K);
    kernels.topK(experts, picked, select, T, E, K);
    const weights = new Float32Array(T * K);
    for (let t = 0; t < T; t++) {
      let sum = 0;
      for (let j = 0; j < K; j++) {
        const w = scores[t * E + experts[t * K + j]!]!;
        weights[t * K + j] = w;
        sum += w;
      }
      const norm = c.scoringFunc === 'sigmoid' || c.normTopkProb ? 1 / sum : 1;
      for (let j = 0; j < K; j++) weights[t * K + j] = weights[t * K + j]! * norm * c.routedScalingFactor;
    }
    return { topK: K, experts, weights };
  }

  /**
   * Keeps only the `topk_group` best groups per token (a group scores by its best expert, or by the sum of
   * its best two when a selection bias is used) and sets every other expert's score to -Infinity.
   */
  private maskGroups(kernels: Kernels, select: Float32Array, T: number): void {
    const c = this.config;
    const E = this.numExperts;
    const G = c.nGroup;
    const perGroup = E / G;
    const groupScores = new Float32Array(T * G);
    for (let t = 0; t < T; t++) {
      for (let g = 0; g < G; g++) {
        let best = Number.NEGATIVE_INFINITY;
        let second = Number.NEGATIVE_INFINITY;
        for (let e = g * perGroup; e < (g + 1) * perGroup; e++) {
          const v = select[t * E + e]!;
          if (v > best) {
            second = best;
            best = v;
          } else if (v > second) second = v;
        }
        groupScores[t * G + g] = this.bias ? best + second : best;
      }
    }
    const keptGroups = new Int32Array(T * c.topkGroup);
    kernels.topK(keptGroups, new Float32Array(T * c.topkGroup), groupScores, T, G, c.topkGroup);
    const keep = new Uint8Array(G);
    for (let t = 0; t < T; t++) {
      keep.fill(0);
      for (let j = 0; j < c.topkGroup; j++) keep[keptGroups[t * c.topkGroup + j]!] = 1;
      for (let g = 0; g < G; g++) {
        if (keep[g]) continue;
        select.fill(Number.NEGATIVE_INFINITY, t * E + g * perGroup, t * E + (g + 1) * perGroup);
      }
    }
  }
}
