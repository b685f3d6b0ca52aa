// Multi-head latent attention (MLA) of DeepSeek-V2/V3 in the absorbed-weight form: the key/value
// up-projection `kv_b_proj` is folded into the query (W_UK) and the output (W_UV), so attention runs
// directly over the compressed latent cache, which stores per token only the normalised latent and the
// rotated rope key.

import type { DeepseekConfig } from '../config/model-config.js';
import type { LinearWeight } from '../kernels/kernels.js';
import type { ForwardBatch } from '../models/forward-batch.js';
import type { MlaKvCache } from '../models/mla-kv-cache.js';
import { evenShare, type ParallelPlan } from './parallel-plan.js';
import type { RopeTables } from './rope.js';
import { copyColumns } from './tensor-ops.js';
import {
  type LoadContext,
  loadLinear,
  loadMatrix,
  loadVector,
  sliceRows,
  transposeRaw,
} from './weight-loading.js';

export class MlaAttention {
  /** Heads on this rank (all heads / tensor-parallel size). */
  private readonly numHeads: number;
  private readonly nope: number;
  private readonly rope: number;
  private readonly vDim: number;
  private readonly latent: number;
  private readonly qLora: number | null;
  /** Width of one head's query: nope + rope. */
  private readonly qHead: number;
  /** [qLora or numHeads·qHead, + latent + rope; hidden]: q (or its compression) and kv_a fused. */
  private readonly inProj: LinearWeight;
  /** [qLora] when q is compressed. */
  private readonly qANorm: Float32Array | null;
  /** [numHeads·qHead, qLora] when q is compressed. */
  private readonly qBProj: LinearWeight | null;
  /** [latent] */
  private readonly kvANorm: Float32Array;
  /** Per head: W_UKᵀ [latent, nope], absorbing the key up-projection into the query. */
  private readonly wUkT: LinearWeight[];
  /** Per head: W_UV [vDim, latent], the value up-projection applied after attention. */
  private readonly wUv: LinearWeight[];
  /** [hidden, numHeads·vDim] */
  private readonly oProj: LinearWeight;

  constructor(
    private readonly ctx: LoadContext,
    private readonly config: DeepseekConfig,
    prefix: string,
    private readonly ropeTables: RopeTables,
    private readonly softmaxScale: number,
    plan: ParallelPlan,
  ) {
    const c = config;
    const heads = evenShare(c.numAttentionHeads, plan.rank, plan.size, 'num_attention_heads');
    this.numHeads = heads.count;
    this.nope = c.qkNopeHeadDim;
    this.rope = c.qkRopeHeadDim;
    this.vDim = c.vHeadDim;
    this.latent = c.kvLoraRank;
    this.qLora = c.qLoraRank;
    this.qHead = this.nope + this.rope;
    const hidden = c.hiddenSize;
    const H = c.numAttentionHeads;
    // This rank's query rows: its heads' (nope + rope) features. The latent down-projections are replicated.
    const qTake = { start: heads.start * this.qHead, count: heads.count * this.qHead };
    this.inProj = loadLinear(
      ctx,
      [
        this.qLora === null
          ? { name: `${prefix}.q_proj.weight`, rows: H * this.qHead, take: qTake }
          : { name: `${prefix}.q_a_proj.weight`, rows: this.qLora },
        { name: `${prefix}.kv_a_proj_with_mqa.weight`, rows: this.latent + this.rope },
      ],
      hidden,
    );
    if (this.qLora !== null) {
      this.qANorm = loadVector(ctx, `${prefix}.q_a_layernorm.weight`, this.qLora);
      this.qBProj = loadLinear(
        ctx,
        [{ name: `${prefix}.q_b_proj.weight`, rows: H * this.qHead, take: qTake }],
        this.qLora,
      );
    } else {
      this.qANorm = null;
      this.qBProj = null;
    }
    this.kvANorm = loadVector(ctx, `${prefix}.kv_a_layernorm.weight`, this.latent);
    // kv_b_proj: [H · (nope + vDim), latent]; head h's rows are its W_UK (nope rows) then W_UV (vDim rows).
    const kvB = loadMatrix(ctx, `${prefix}.kv_b_proj.weight`, H * (this.nope + this.vDim), this.latent);
    this.wUkT = [];
    this.wUv = [];
    for (let h = 0; h < this.numHeads; h++) {
      const base = (heads.start + h) * (this.nope + this.vDim);
      const wUk = sliceRows(kvB, this.latent, base, this.nope);
      this.wUkT.push(
        ctx.kernels.prepareLinear(
          transposeRaw(wUk, this.nope, this.latent),
          this.latent,
          this.nope,
          ctx.weightDType,
        ),
      );
      const wUv = sliceRows(kvB, this.latent, base + this.nope, this.vDim);
      this.wUv.push(ctx.kernels.prepareLinear(wUv, this.vDim, this.latent, ctx.weightDType));
    }
    // Row-parallel: this rank's heads' value features; the partial outputs are summed across ranks.
    this.oProj = loadLinear(ctx, [{ name: `${prefix}.o_proj.weight`, rows: hidden }], H * this.vDim, {
      start: heads.start * this.vDim,
      count: heads.count * this.vDim,
    });
  }

  /**
   * Attention of the batch's tokens. `x`: [T, hidden] (already normalised). Writes each token's latent KV
   * into `cache` layer `layer` before attending. Returns [T, hidden], the output projection's partial
   * sum (a tensor-parallel all-reduce follows in the decoder layer).
   */
  forward(x: Float32Array, batch: ForwardBatch, cache: MlaKvCache, layer: number): Float32Array {
    const k = this.ctx.kernels;
    const T = batch.numTokens;
    const H = this.numHeads;
    const hidden = this.config.hiddenSize;
    const entry = this.latent + this.rope;
    const qRows = this.qLora ?? H * this.qHead;
    const inWidth = qRows + entry;

    const fused = new Float32Array(T * inWidth);
    k.linear(fused, x, this.inProj, T);

    // q: [T, H, qHead]
    let q = new Float32Array(T * H * this.qHead);
    if (this.qLora !== null) {
      const qa = new Float32Array(T * this.qLora);
      copyColumns(qa, this.qLora, 0, fused, inWidth, 0, T, this.qLora);
      k.rmsNorm(qa, qa, this.qANorm!, T, this.qLora, this.config.rmsNormEps);
      k.linear(q, qa, this.qBProj!, T);
    } else {
      copyColumns(q, qRows, 0, fused, inWidth, 0, T, qRows);
    }

    // The token's cache entry: normalised latent, then rotated rope key. kv: [T, entry]
    const lat = new Float32Array(T * this.latent);
    copyColumns(lat, this.latent, 0, fused, inWidth, qRows, T, this.latent);
    k.rmsNorm(lat, lat, this.kvANorm, T, this.latent, this.config.rmsNormEps);
    const kv = new Float32Array(T * entry);
    copyColumns(kv, entry, 0, lat, this.latent, 0, T, this.latent);
    copyColumns(kv, entry, this.latent, fused, inWidth, qRows + this.latent, T, this.rope);
    const { cos, sin } = this.ropeTables;
    k.rope(kv, batch.positions, cos, sin, T, 1, entry, this.latent, this.rope);
    const layerCache = cache.layers[layer]!;
    for (let t = 0; t < T; t++) {
      layerCache.set(kv.subarray(t * entry, (t + 1) * entry), batch.slotMapping[t]! * entry);
    }

    k.rope(q, batch.positions, cos, sin, T, H, this.qHead, this.nope, this.rope);

    // Absorbed query per head: [q_nope · W_UK, q_rope], laid out [T, H, entry].
    const qAttn = new Float32Array(T * H * entry);
    const qNopeH = new Float32Array(T * this.nope);
    const qLatH = new Float32Array(T * this.latent);
    for (let h = 0; h < H; h++) {
      copyColumns(qNopeH, this.nope, 0, q, H * this.qHead, h * this.qHead, T, this.nope);
      k.linear(qLatH, qNopeH, this.wUkT[h]!, T);
      copyColumns(qAttn, H * entry, h * entry, qLatH, this.latent, 0, T, this.latent);
      copyColumns(
        qAttn,
        H * entry,
        h * entry + this.latent,
        q,
        H * this.qHead,
        h * this.qHead + this.nope,
        T,
        this.rope,
      );
    }
    q = qAttn;

    // Attention per sequence over the paged latent cache: [T, H, latent].
    const outLat = new Float32Array(T * H * this.latent);
    for (const s of batch.seqs) {
      const a = s.queryStart;
      const b = a + s.queryLen;
      k.mlaAttention(
        outLat.subarray(a * H * this.latent, b * H * this.latent),
        q.subarray(a * H * entry, b * H * entry),
        layerCache,
        s.blockTable,
        batch.positions.subarray(a, b),
        s.queryLen,
        H,
        this.latent,
        this.rope,
        cache.blockSize,
        this.softmaxScale,
      );
    }

    // Value up-projection per head, then the output projection.
    const attn = new Float32Array(T * H * this.vDim);
    const latH = new Float32Array(T * this.latent);
    const vH = new Float32Array(T * this.vDim);
    for (let h = 0; h < H; h++) {
      copyColumns(latH, this.latent, 0, outLat, H * this.latent, h * this.latent, T, this.latent);
      k.linear(vH, latH, this.wUv[h]!, T);
      copyColumns(attn, H * this.vDim, h * this.vDim, vH, this.vDim, 0, T, this.vDim);
    }
    const out = new Float32Array(T * hidden);
    k.linear(out, attn, this.oProj, T);
    return out;
  }
}
