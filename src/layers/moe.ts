// DeepSeek's mixture-of-experts feed-forward: a router, routed SwiGLU experts run on the tokens assigned to
// them, and always-on shared experts. Written as explicit stages — route, dispatch, experts, combine,
// shared — because dispatch and combine are where expert-parallel all-to-all communication goes.

import type { DeepseekConfig } from '../config/model-config.js';
import type { Kernels } from '../kernels/kernels.js';
import { GatedMlp } from './gated-mlp.js';
import { MoeGate, type Routing } from './moe-gate.js';
import { gatherRows } from './tensor-ops.js';
import type { LoadContext } from './weight-loading.js';

/** Tokens grouped by expert: for expert e, entries [offsets[e], offsets[e + 1]) of `tokens` and `weights`. */
export interface ExpertAssignment {
  /** [numExperts + 1] */
  readonly offsets: Int32Array;
  /** [T · topK] token index of each (token, expert) pair, grouped by expert. */
  readonly tokens: Int32Array;
  /** [T · topK] routing weight of each pair. */
  readonly weights: Float32Array;
}

export class Moe {
  readonly gate: MoeGate;
  private readonly experts: GatedMlp[];
  private readonly shared: GatedMlp | null;
  private readonly hidden: number;

  constructor(ctx: LoadContext, config: DeepseekConfig, prefix: string) {
    this.hidden = config.hiddenSize;
    this.gate = new MoeGate(ctx, config, `${prefix}.gate`);
    this.experts = [];
    for (let e = 0; e < config.nRoutedExperts!; e++) {
      this.experts.push(new GatedMlp(ctx, `${prefix}.experts.${e}`, this.hidden, config.moeIntermediateSize));
    }
    this.shared =
      config.nSharedExperts > 0
        ? new GatedMlp(
            ctx,
            `${prefix}.shared_experts`,
            this.hidden,
            config.moeIntermediateSize * config.nSharedExperts,
          )
        : null;
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
   * Runs the routed experts on their tokens and accumulates weight · expert(x) into `out` ([T, hidden]).
   * With expert parallelism, this rank runs only the experts it holds on tokens dispatched to it.
   */
  runExperts(kernels: Kernels, out: Float32Array, x: Float32Array, assignment: ExpertAssignment): void {
    const d = this.hidden;
    for (let e = 0; e < this.experts.length; e++) {
      const start = assignment.offsets[e]!;
      const count = assignment.offsets[e + 1]! - start;
      if (count === 0) continue;
      const toks = assignment.tokens.subarray(start, start + count);
      const xe = new Float32Array(count * d);
      gatherRows(xe, x, toks, d);
      const ye = new Float32Array(count * d);
      this.experts[e]!.forward(kernels, ye, xe, count);
      for (let i = 0; i < count; i++) {
        const w = assignment.weights[start + i]!;
        const o = toks[i]! * d;
        for (let j = 0; j < d; j++) out[o + j]! += w * ye[i * d + j]!;
      }
    }
  }

  /** out += shared_experts(x). */
  runShared(kernels: Kernels, out: Float32Array, x: Float32Array, T: number): void {
    if (!this.shared) return;
    const y = new Float32Array(T * this.hidden);
    this.shared.forward(kernels, y, x, T);
    for (let i = 0; i < y.length; i++) out[i]! += y[i]!;
  }

  get numExperts(): number {
    return this.experts.length;
  }
}
