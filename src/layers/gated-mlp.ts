// The SwiGLU feed-forward block used by DeepSeek's dense layers, its shared experts and each routed
// expert: down(silu(gate(x)) · up(x)), with gate and up fused into one GEMM.

import type { Kernels, LinearWeight } from '../kernels/kernels.js';
import { type LoadContext, loadLinear, type Slice } from './weight-loading.js';

export class GatedMlp {
  /** Intermediate features on this rank. */
  readonly intermediate: number;
  /** [2 · intermediate, hidden]: gate rows, then up rows. */
  private readonly gateUp: LinearWeight;
  /** [hidden, intermediate] */
  private readonly down: LinearWeight;

  constructor(
    ctx: LoadContext,
    prefix: string,
    readonly hidden: number,
    fullIntermediate: number,
    /** This rank's intermediate features (tensor parallel); all when absent. */
    shard?: Slice,
  ) {
    const take = shard ?? { start: 0, count: fullIntermediate };
    this.intermediate = take.count;
    // Column-parallel gate and up, row-parallel down: partial outputs are summed across ranks.
    this.gateUp = loadLinear(
      ctx,
      [
        { name: `${prefix}.gate_proj.weight`, rows: fullIntermediate, take },
        { name: `${prefix}.up_proj.weight`, rows: fullIntermediate, take },
      ],
      hidden,
    );
    this.down = loadLinear(
      ctx,
      [{ name: `${prefix}.down_proj.weight`, rows: hidden }],
      fullIntermediate,
      take,
    );
  }

  /** out[T, hidden] = down(silu(gate(x)) · up(x)); `x`: [T, hidden]. */
  forward(kernels: Kernels, out: Float32Array, x: Float32Array, T: number): void {
    const gu = new Float32Array(T * 2 * this.intermediate);
    kernels.linear(gu, x, this.gateUp, T);
    const act = new Float32Array(T * this.intermediate);
    kernels.siluAndMul(act, gu, T, this.intermediate);
    kernels.linear(out, act, this.down, T);
  }
}
