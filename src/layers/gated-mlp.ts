// The SwiGLU feed-forward block used by DeepSeek's dense layers, its shared experts and each routed
// expert: down(silu(gate(x)) · up(x)), with gate and up fused into one GEMM.

import type { Kernels, LinearWeight } from '../kernels/kernels.js';
import { Scratch } from './scratch.js';
import { type LoadContext, loadLinear, type Slice } from './weight-loading.js';

/** Bytes of intermediate activations ([rows, 3·intermediate] f32) one chunk of rows may take. */
const MAX_INTERMEDIATE_BYTES = 32 * 1024 * 1024;

export class GatedMlp {
  /** Intermediate features on this rank. */
  readonly intermediate: number;
  /** [2 · intermediate, hidden]: gate rows, then up rows. */
  private readonly gateUp: LinearWeight;
  /** [hidden, intermediate] */
  private readonly down: LinearWeight;
  private readonly scratch: Scratch;

  constructor(
    ctx: LoadContext,
    prefix: string,
    readonly hidden: number,
    fullIntermediate: number,
    /** This rank's intermediate features (tensor parallel); all when absent. */
    shard?: Slice,
  ) {
    this.scratch = ctx.scratch ?? new Scratch(ctx.kernels);
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
    const I = this.intermediate;
    const H = this.hidden;
    // Rows in chunks, so that a long prefill's intermediate activations stay bounded (a dense layer's
    // [T, 2·intermediate] is hundreds of MB at T = 2048); chunks of ≥ 64 rows keep the GEMMs efficient.
    const rows = Math.min(T, Math.max(64, Math.floor(MAX_INTERMEDIATE_BYTES / (12 * I))));
    const gu = this.scratch.get('mlp.gateUp', rows * 2 * I);
    const act = this.scratch.get('mlp.act', rows * I);
    for (let r0 = 0; r0 < T; r0 += rows) {
      const n = Math.min(rows, T - r0);
      kernels.linear(gu, x.subarray(r0 * H, (r0 + n) * H), this.gateUp, n);
      kernels.siluAndMul(act, gu, n, I);
      kernels.linear(out.subarray(r0 * H, (r0 + n) * H), act, this.down, n);
    }
  }
}
