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
    else kernels.sigmoid(scores, scores, T * E);

    // Selection: biased scores (noaux_tc), limited to the best groups unless greedy; the weights are the
    // chosen experts' unbiased scores, renormalised for sigmoid scoring or norm_topk_prob, then scaled.
    const experts = kernels.allocateIndices(T * K);
    const weights = kernels.allocateActivations(T * K);
    kernels.groupedTopK(
      experts,
      weights,
      scores,
      this.bias,
      T,
      E,
      K,
      c.topkMethod !== 'greedy' && c.nGroup > 1 ? c.nGroup : 1,
      c.topkGroup,
      c.scoringFunc === 'sigmoid' || c.normTopkProb,
      c.routedScalingFactor,
    );
    return { topK: K, experts, weights };
  }
}
