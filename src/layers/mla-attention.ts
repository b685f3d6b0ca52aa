// Multi-head latent attention (MLA) of DeepSeek-V2/V3. The cache stores per token only the normalised
// latent and the rotated rope key. Decodes and short chunks attend in the absorbed-weight form: the
// key/value up-projection `kv_b_proj` is folded into the query (W_UK) and the output (W_UV), so attention
// runs directly over the latent cache. Long prefills are cheaper the other way (as vLLM's MLA prefill):
// the context's latents are up-projected to per-head keys and values once, and attention is ordinary
// multi-head attention with smaller per-pair work. Both compute the same function.

import type { DeepseekConfig } from '../config/model-config.js';
import type { HeadLinearWeight, LinearWeight, RawWeight } from '../kernels/kernels.js';
import type { AttentionMetadata } from './attention-metadata.js';
import type { ForwardBatch } from './forward-batch.js';
import type { MlaKvCache } from './mla-kv-cache.js';
import { evenShare, type ParallelPlan } from './parallel-plan.js';
import type { RopeTables } from './rope.js';
import { Scratch } from './scratch.js';
import {
  type LoadContext,
  loadLinear,
  loadMatrix,
  loadVector,
  type Slice,
  sliceRows,
  stackRows,
  transposeRaw,
} from './weight-loading.js';

/** A sequence needs at least this many query tokens in a step to be attended without absorption. */
const MHA_MIN_QUERY_TOKENS = 16;

/** A rank's attention heads under `plan`; throws `ParallelPlanError` where they do not split evenly. */
export function attentionHeadShare(c: DeepseekConfig, plan: ParallelPlan): Slice {
  return evenShare(c.numAttentionHeads, plan.rank, plan.size, 'num_attention_heads');
}

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
  /** [numHeads][latent, nope]: W_UKᵀ per head, absorbing the key up-projection into the query. */
  private readonly wUkT: HeadLinearWeight;
  /** [numHeads][vDim, latent]: W_UV per head, the value up-projection applied after attention. */
  private readonly wUv: HeadLinearWeight;
  /** [numHeads·(nope + vDim), latent]: kv_b_proj of this rank's heads, for prefills without absorption. */
  private readonly kvB: LinearWeight;
  /** [hidden, numHeads·vDim] */
  private readonly oProj: LinearWeight;
  private readonly scratch: Scratch;

  constructor(
    private readonly ctx: LoadContext,
    private readonly config: DeepseekConfig,
    prefix: string,
    private readonly ropeTables: RopeTables,
    private readonly softmaxScale: number,
    plan: ParallelPlan,
  ) {
    const c = config;
    this.scratch = ctx.scratch ?? new Scratch(ctx.kernels);
    const heads = attentionHeadShare(c, plan);
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
    // This rank reads only its heads' rows: kvB is [numHeads · (nope + vDim), latent].
    const perHead = this.nope + this.vDim;
    const kvB = loadMatrix(ctx, `${prefix}.kv_b_proj.weight`, H * perHead, this.latent, {
      start: heads.start * perHead,
      count: this.numHeads * perHead,
    });
    const ukT: RawWeight[] = [];
    const uv: RawWeight[] = [];
    for (let h = 0; h < this.numHeads; h++) {
      const base = h * perHead;
      ukT.push(transposeRaw(sliceRows(kvB, this.latent, base, this.nope), this.nope, this.latent));
      uv.push(sliceRows(kvB, this.latent, base + this.nope, this.vDim));
    }
    const headElems = this.nope * this.latent;
    this.wUkT = ctx.kernels.prepareHeadLinear(
      stackRows(ukT, this.numHeads * headElems),
      this.numHeads,
      this.latent,
      this.nope,
      ctx.weightDType,
    );
    this.wUv = ctx.kernels.prepareHeadLinear(
      stackRows(uv, this.numHeads * this.vDim * this.latent),
      this.numHeads,
      this.vDim,
      this.latent,
      ctx.weightDType,
    );
    this.kvB = ctx.kernels.prepareLinear(kvB, this.numHeads * perHead, this.latent, ctx.weightDType);
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
  forward(
    x: Float32Array,
    batch: ForwardBatch,
    cache: MlaKvCache,
    layer: number,
    meta: AttentionMetadata,
  ): Float32Array {
    const k = this.ctx.kernels;
    // Everything but the returned output is scratch: this method never awaits.
    const sc = this.scratch;
    const T = batch.numTokens;
    const H = this.numHeads;
    const hidden = this.config.hiddenSize;
    const entry = this.latent + this.rope;
    const qRows = this.qLora ?? H * this.qHead;
    const inWidth = qRows + entry;

    const fused = sc.get('attn.fused', T * inWidth);
    k.linear(fused, x, this.inProj, T);

    // q: [T, H, qHead]
    const q = sc.get('attn.q', T * H * this.qHead);
    if (this.qLora !== null) {
      const qa = sc.get('attn.qa', T * this.qLora);
      k.copyRows(qa, null, this.qLora, 0, fused, null, inWidth, 0, T, this.qLora);
      k.rmsNorm(qa, qa, this.qANorm!, T, this.qLora, this.config.rmsNormEps);
      k.linear(q, qa, this.qBProj!, T);
    } else {
      k.copyRows(q, null, qRows, 0, fused, null, inWidth, 0, T, qRows);
    }

    // The token's cache entry: normalised latent, then rotated rope key. kv: [T, entry]
    const lat = sc.get('attn.lat', T * this.latent);
    k.copyRows(lat, null, this.latent, 0, fused, null, inWidth, qRows, T, this.latent);
    k.rmsNorm(lat, lat, this.kvANorm, T, this.latent, this.config.rmsNormEps);
    const kv = sc.get('attn.kv', T * entry);
    k.copyRows(kv, null, entry, 0, lat, null, this.latent, 0, T, this.latent);
    k.copyRows(kv, null, entry, this.latent, fused, null, inWidth, qRows + this.latent, T, this.rope);
    const { cos, sin } = this.ropeTables;
    k.rope(kv, batch.positions, cos, sin, T, 1, entry, this.latent, this.rope);
    const layerCache = cache.layers[layer]!;
    // The KV-cache write: token t's entry into slot slotMapping[t].
    k.copyRows(layerCache, batch.slotMapping, entry, 0, kv, null, entry, 0, T, entry);

    k.rope(q, batch.positions, cos, sin, T, H, this.qHead, this.nope, this.rope);

    // Each sequence's attention values [T, H, vDim]: long prefills without absorption, the rest absorbed.
    const values = sc.get('attn.values', T * H * this.vDim);
    const absorbed: number[] = [];
    batch.seqs.forEach((s, i) => {
      const last = batch.positions[s.queryStart + s.queryLen - 1]!;
      if (
        this.prefersMha(
          s.queryLen,
          last + 1,
          batch.positions.subarray(s.queryStart, s.queryStart + s.queryLen),
        )
      ) {
        this.attendMha(values, q, batch, i, layerCache, cache.blockSize);
      } else {
        absorbed.push(i);
      }
    });
    if (absorbed.length === batch.seqs.length) {
      this.attendAbsorbed(values, q, batch.positions, meta, T, layerCache, cache.blockSize);
    } else if (absorbed.length > 0) {
      this.attendAbsorbedSubset(values, q, batch, meta, absorbed, layerCache, cache.blockSize);
    }

    const out = k.allocateActivations(T * hidden);
    k.linear(out, values, this.oProj, T);
    return out;
  }

  /**
   * Whether a sequence's step costs fewer multiply-adds without absorption: up-projecting the keys and
   * values of its whole context (numCtx positions) and attending with per-head keys, against absorbing
   * W_UK and W_UV into its queryLen queries and attending over the latent. True for prompts and long
   * chunks, false for decodes and short chunks over a long context.
   */
  private prefersMha(queryLen: number, numCtx: number, positions: Int32Array): boolean {
    if (queryLen < MHA_MIN_QUERY_TOKENS) return false;
    let pairs = 0;
    for (const p of positions) pairs += p + 1;
    const upProject = this.latent * (this.nope + this.vDim);
    const absorbedCost = queryLen * upProject + pairs * (2 * this.latent + this.rope);
    const mhaCost = numCtx * upProject + pairs * (this.nope + this.rope + this.vDim);
    return mhaCost < absorbedCost;
  }

  /**
   * Sequence `s` of the batch without absorption: its context's latents and rope keys gathered from the
   * cache, up-projected to per-head keys and values by kv_b_proj, and attended by its queries.
   */
  private attendMha(
    values: Float32Array,
    q: Float32Array,
    batch: ForwardBatch,
    s: number,
    layerCache: Float32Array,
    blockSize: number,
  ): void {
    const k = this.ctx.kernels;
    const sc = this.scratch;
    const H = this.numHeads;
    const entry = this.latent + this.rope;
    const { queryStart: a, queryLen: n, blockTable } = batch.seqs[s]!;
    const numCtx = batch.positions[a + n - 1]! + 1;
    // The context: latents [numCtx, latent] and rope keys [numCtx, rope], in position order.
    const ctxLat = sc.get('attn.ctxLat', numCtx * this.latent);
    const ctxRope = sc.get('attn.ctxRope', numCtx * this.rope);
    // The KV-cache read: the cache slot of each context position, then the two column ranges.
    const slots = new Int32Array(numCtx);
    for (let p = 0; p < numCtx; p++)
      slots[p] = blockTable[Math.floor(p / blockSize)]! * blockSize + (p % blockSize);
    k.copyRows(ctxLat, null, this.latent, 0, layerCache, slots, entry, 0, numCtx, this.latent);
    k.copyRows(ctxRope, null, this.rope, 0, layerCache, slots, entry, this.latent, numCtx, this.rope);
    // Per-head keys and values [numCtx, H, nope + vDim].
    const kvUp = sc.get('attn.kvUp', numCtx * H * (this.nope + this.vDim));
    k.linear(kvUp, ctxLat, this.kvB, numCtx);
    k.mhaAttention(
      values.subarray(a * H * this.vDim, (a + n) * H * this.vDim),
      q.subarray(a * H * this.qHead, (a + n) * H * this.qHead),
      kvUp,
      ctxRope,
      batch.positions.subarray(a, a + n),
      n,
      numCtx,
      H,
      this.nope,
      this.rope,
      this.vDim,
      this.softmaxScale,
    );
  }

  /**
   * Absorbed attention of T tokens (the sequences of `meta`): q_nope · W_UK per head, attention over the
   * latent cache, then W_UV per head. `values`: [T, H, vDim]; `q`: [T, H, qHead] (rope applied).
   */
  private attendAbsorbed(
    values: Float32Array,
    q: Float32Array,
    positions: Int32Array,
    meta: AttentionMetadata,
    T: number,
    layerCache: Float32Array,
    blockSize: number,
  ): void {
    const k = this.ctx.kernels;
    const sc = this.scratch;
    const H = this.numHeads;
    const entry = this.latent + this.rope;
    // Absorbed query [T, H, entry]: q_nope · W_UK per head, then the rotated q_rope.
    const qAttn = sc.get('attn.qAttn', T * H * entry);
    k.headLinear(qAttn, entry, 0, q, this.qHead, 0, this.wUkT, T);
    k.copyRows(qAttn, null, entry, this.latent, q, null, this.qHead, this.nope, T * H, this.rope);
    // Attention of every sequence over the paged latent cache: [T, H, latent].
    const outLat = sc.get('attn.outLat', T * H * this.latent);
    k.mlaAttentionBatch(
      outLat,
      qAttn,
      layerCache,
      meta.blockTables,
      meta.maxBlocksPerSeq,
      meta.seqStarts,
      positions,
      meta.numSeqs,
      H,
      this.latent,
      this.rope,
      blockSize,
      this.softmaxScale,
    );
    // Value up-projection per head: [T, H, vDim].
    k.headLinear(values, this.vDim, 0, outLat, this.latent, 0, this.wUv, T);
  }

  /** Absorbed attention of some of the batch's sequences (`seqs`), gathered into a compact batch. */
  private attendAbsorbedSubset(
    values: Float32Array,
    q: Float32Array,
    batch: ForwardBatch,
    meta: AttentionMetadata,
    seqs: readonly number[],
    layerCache: Float32Array,
    blockSize: number,
  ): void {
    const k = this.ctx.kernels;
    const sc = this.scratch;
    const H = this.numHeads;
    const qw = H * this.qHead;
    const vw = H * this.vDim;
    const seqStarts = new Int32Array(seqs.length + 1);
    seqs.forEach((s, i) => {
      seqStarts[i + 1] = seqStarts[i]! + batch.seqs[s]!.queryLen;
    });
    const T = seqStarts[seqs.length]!;
    const qSub = sc.get('attn.qSub', T * qw);
    const positions = new Int32Array(T);
    const blockTables = new Int32Array(seqs.length * meta.maxBlocksPerSeq);
    seqs.forEach((s, i) => {
      const { queryStart: a, queryLen: n } = batch.seqs[s]!;
      const at = seqStarts[i]!;
      k.copyRows(qSub, null, qw, at * qw, q, null, qw, a * qw, n, qw);
      positions.set(batch.positions.subarray(a, a + n), at);
      const row = s * meta.maxBlocksPerSeq;
      blockTables.set(meta.blockTables.subarray(row, row + meta.maxBlocksPerSeq), i * meta.maxBlocksPerSeq);
    });
    const sub: AttentionMetadata = {
      numSeqs: seqs.length,
      seqStarts,
      maxBlocksPerSeq: meta.maxBlocksPerSeq,
      blockTables,
    };
    const vSub = sc.get('attn.valuesSub', T * vw);
    this.attendAbsorbed(vSub, qSub, positions, sub, T, layerCache, blockSize);
    seqs.forEach((s, i) => {
      const { queryStart: a, queryLen: n } = batch.seqs[s]!;
      k.copyRows(values, null, vw, a * vw, vSub, null, vw, seqStarts[i]! * vw, n, vw);
    });
  }
}
