// DeepSeek-V2 / V2-Lite / V3 / R1 (DeepseekV2ForCausalLM, DeepseekV3ForCausalLM): embedding, decoder
// layers of MLA attention plus a dense MLP or a mixture of experts, final norm and LM head.
// The forward is asynchronous only at its communication points (the awaited collectives), so that two
// micro-batches can interleave there.

import { type DeepseekConfig, isMoeLayer } from '../config/model-config.js';
import { type Communicator, SingleRankCommunicator } from '../distributed/communicator.js';
import type { Kernels, LinearWeight, RawWeight, WeightDType } from '../kernels/kernels.js';
import type { PreparedWeightCache } from '../kernels/weight-cache.js';
import { type AttentionMetadata, buildAttentionMetadata } from '../layers/attention-metadata.js';
import { type ForwardBatch, validateForwardBatch } from '../layers/forward-batch.js';
import { GatedMlp } from '../layers/gated-mlp.js';
import { type ForwardStage, pauseAt, waitAt } from '../layers/hand-over.js';
import { attentionHeadShare, MlaAttention } from '../layers/mla-attention.js';
import type { MlaKvCache } from '../layers/mla-kv-cache.js';
import { Moe, moeShares } from '../layers/moe.js';
import { moeAllGatherDataParallel, moeAllGatherDataParallelStages } from '../layers/moe-all-gather-dp.js';
import { moeAllToAll, moeAllToAllStages } from '../layers/moe-all-to-all.js';
import {
  evenShare,
  moeGroupPosition,
  type ParallelPlan,
  SINGLE_RANK_PLAN,
  unevenCounts,
  unevenShare,
} from '../layers/parallel-plan.js';
import type { RankGroups } from '../layers/rank-groups.js';
import { buildRopeTables, mlaSoftmaxScale, placeRopeTables, type RopeTables } from '../layers/rope.js';
import { Scratch } from '../layers/scratch.js';
import {
  type LoadContext,
  loadLinear,
  loadRows,
  loadVector,
  type Slice,
  StackingBuffer,
} from '../layers/weight-loading.js';
import type { LinearSource } from '../loader/w8a8/linear-source.js';
import type { WeightSource } from '../loader/weight-source.js';

/** Optional taps into the forward, for tests and debugging (golden comparisons). */
export interface ForwardObserver {
  /** Routed experts and weights of MoE layer `layer` ([T, topK] each). */
  onRouting?(layer: number, experts: Int32Array, weights: Float32Array, topK: number): void;
  /** A named activation: `embed`, `layers.N.attn_out`, `layers.N.ffn_out` ([T, hidden]). */
  onActivation?(name: string, data: Float32Array): void;
  /** Decoder layer `layer` starts (tracing). */
  onLayerStart?(layer: number): void;
}

export interface DeepseekLoadOptions {
  readonly kernels: Kernels;
  readonly source: WeightSource;
  /** Storage dtype of float linear weights. */
  readonly weightDType: WeightDType;
  /** Where linear weights come from, float or int8 (W8A8); default: the source's float weights. */
  readonly linears?: LinearSource;
  /** Positions the rope tables cover (defaults to max_position_embeddings). */
  readonly maxPositions?: number;
  /** The tensor-parallel group this rank belongs to (default: a group of one). */
  readonly communicator?: Communicator;
  /**
   * With data parallelism: the group of every replica's ranks, which shares the MoE layers (rank
   * dataParallelRank · tp + rank). Default: the tensor-parallel group.
   */
  readonly moeCommunicator?: Communicator;
  /** This rank's share of the model (default: everything). */
  readonly plan?: ParallelPlan;
  /**
   * Keep the whole embedding table on every rank (instead of this rank's vocabulary rows), so the forward
   * needs no embedding all-reduce: DBO sets it, to open each step without a compute-free collective
   * (memory: vocab · hidden more per rank). Default false.
   */
  readonly replicateEmbedding?: boolean;
  /** Called after each decoder layer loads (for progress display). */
  readonly onLayerLoaded?: (layer: number, numLayers: number) => void;
  /** The kernel set's prepared-weight cache for this load (`--weight-cache-dir`), if any. */
  readonly weightCache?: PreparedWeightCache;
}

class DecoderLayer {
  private readonly inputNorm: Float32Array;
  private readonly postAttnNorm: Float32Array;
  readonly attn: MlaAttention;
  private readonly mlp: GatedMlp | null;
  private readonly moe: Moe | null;

  constructor(
    ctx: LoadContext,
    private readonly config: DeepseekConfig,
    readonly index: number,
    rope: RopeTables,
    scale: number,
    private readonly plan: ParallelPlan,
  ) {
    const p = `model.layers.${index}`;
    const H = config.hiddenSize;
    this.inputNorm = loadVector(ctx, `${p}.input_layernorm.weight`, H);
    this.postAttnNorm = loadVector(ctx, `${p}.post_attention_layernorm.weight`, H);
    this.attn = new MlaAttention(ctx, config, `${p}.self_attn`, rope, scale, plan);
    if (isMoeLayer(config, index)) {
      this.moe = new Moe(ctx, config, `${p}.mlp`, plan);
      this.mlp = null;
    } else {
      const I = config.intermediateSize;
      this.mlp = new GatedMlp(ctx, `${p}.mlp`, H, I, denseMlpShare(config, plan));
      this.moe = null;
    }
  }

  /** Updates the residual stream `x` ([T, hidden]) in place. */
  async forward(
    kernels: Kernels,
    groups: RankGroups,
    x: Float32Array,
    batch: ForwardBatch,
    meta: AttentionMetadata,
    cache: MlaKvCache,
    observer: ForwardObserver | undefined,
    /** Tokens of every replica this step, with data parallelism; null without. */
    replicaTokens: readonly number[] | null,
  ): Promise<void> {
    const comm = groups.tp;
    const T = batch.numTokens;
    const H = this.config.hiddenSize;
    const eps = this.config.rmsNormEps;
    observer?.onLayerStart?.(this.index);
    const h = kernels.allocateActivations(T * H);

    kernels.rmsNorm(h, x, this.inputNorm, T, H, eps);
    const attnOut = this.attn.forward(h, batch, cache, this.index, meta);
    // Communication point: tensor-parallel all-reduce of the attention output projection.
    await waitAt(groups, `L${this.index} attn all-reduce`, comm.allReduce(attnOut));
    observer?.onActivation?.(`layers.${this.index}.attn_out`, attnOut);
    kernels.add(x, x, attnOut, T * H);

    kernels.rmsNorm(h, x, this.postAttnNorm, T, H, eps);
    let ffnOut: Float32Array;
    if (this.moe) {
      const alltoall = this.plan.expertParallel && this.plan.moeComm === 'alltoall';
      if (replicaTokens !== null && !alltoall) {
        // Every replica's tokens meet at the experts (all-gather, reduce-scatter inside).
        ffnOut = await moeAllGatherDataParallel(
          kernels,
          groups,
          `L${this.index}`,
          this.plan,
          this.moe,
          h,
          T,
          H,
          replicaTokens,
          (routing, first) => {
            const K = routing.topK;
            observer?.onRouting?.(
              this.index,
              routing.experts.subarray(first * K, (first + T) * K),
              routing.weights.subarray(first * K, (first + T) * K),
              K,
            );
          },
        );
      } else if (alltoall && groups.world.worldSize > 1) {
        const routing = this.moe.gate.route(kernels, h, T);
        observer?.onRouting?.(this.index, routing.experts, routing.weights, routing.topK);
        // Dispatch, experts, combine and the shared experts' reduction happen inside, each an awaited
        // communication point; the result is complete on every rank of the replica.
        ffnOut = await moeAllToAll(kernels, groups, `L${this.index}`, this.plan, this.moe, h, routing, T, H);
      } else {
        const routing = this.moe.gate.route(kernels, h, T);
        observer?.onRouting?.(this.index, routing.experts, routing.weights, routing.topK);
        ffnOut = kernels.allocateActivations(T * H);
        const assignment = Moe.assign(routing, T, this.moe.numExperts);
        if (groups.points) {
          // Under DBO the experts run in two halves of equal compute with a pause between, where the
          // schedule may let the other micro-batch compute (dbo/dbo-order.ts: the staggered order). The
          // sums into ffnOut happen in the same order either way.
          const cut = this.moe.halfwayExpert(assignment, T);
          this.moe.runExperts(kernels, ffnOut, h, assignment, this.moe.firstExpert, cut);
          await pauseAt(groups, `L${this.index} experts 1/2`);
          this.moe.runExperts(kernels, ffnOut, h, assignment, cut);
        } else {
          this.moe.runExperts(kernels, ffnOut, h, assignment);
        }
        this.moe.runShared(kernels, ffnOut, h, T);
        // Communication point: all-reduce of the routed and shared experts' partial sums.
        await waitAt(groups, `L${this.index} moe all-reduce`, comm.allReduce(ffnOut));
      }
    } else {
      ffnOut = kernels.allocateActivations(T * H);
      this.mlp!.forward(kernels, ffnOut, h, T);
      // Communication point: tensor-parallel all-reduce of the dense MLP output.
      await waitAt(groups, `L${this.index} mlp all-reduce`, comm.allReduce(ffnOut));
    }
    observer?.onActivation?.(`layers.${this.index}.ffn_out`, ffnOut);
    kernels.add(x, x, ffnOut, T * H);
  }

  /** The stages of `forward` with hand-over points (under DBO), in order. */
  stages(groups: RankGroups, dataParallel: boolean): ForwardStage[] {
    const L = `L${this.index}`;
    const out: ForwardStage[] = [{ name: `${L} attn all-reduce`, end: 'collective' }];
    if (!this.moe) {
      out.push({ name: `${L} mlp all-reduce`, end: 'collective' });
      return out;
    }
    const alltoall = this.plan.expertParallel && this.plan.moeComm === 'alltoall';
    if (dataParallel && !alltoall) out.push(...moeAllGatherDataParallelStages(L, this.plan));
    else if (alltoall && groups.world.worldSize > 1) out.push(...moeAllToAllStages(L, this.plan));
    else {
      out.push({ name: `${L} experts 1/2`, end: 'pause' });
      out.push({ name: `${L} moe all-reduce`, end: 'collective' });
    }
    return out;
  }
}

/** A rank's share of a dense MLP under `plan`; throws `ParallelPlanError` where it does not split evenly. */
function denseMlpShare(c: DeepseekConfig, plan: ParallelPlan): Slice {
  return evenShare(c.intermediateSize, plan.rank, plan.size, 'intermediate_size');
}

/**
 * Throws the `ParallelPlanError` that loading under `plan` would meet (heads, dense MLPs, experts that do
 * not split evenly), before any weight is read or any rank thread is started.
 */
export function checkSharding(c: DeepseekConfig, plan: ParallelPlan): void {
  attentionHeadShare(c, plan);
  // In layer order, as loading meets them: the first error is the one loading would throw.
  const kinds = new Set(Array.from({ length: c.numHiddenLayers }, (_, i) => isMoeLayer(c, i)));
  for (const moe of kinds) {
    if (moe) moeShares(c, plan);
    else denseMlpShare(c, plan);
  }
}

export class DeepseekForCausalLM {
  readonly config: DeepseekConfig;
  private readonly kernels: Kernels;
  private readonly groups: RankGroups;
  private readonly plan: ParallelPlan;
  /** This rank's vocabulary rows (vocabulary-parallel embedding and LM head). */
  private readonly vocab: Slice;
  /** [embedRows.count, hidden] kept as read (bf16 bits or f32); rows are widened on lookup. */
  private readonly embedding: RawWeight;
  /** The vocabulary rows `embedding` holds: `vocab`, or all of them with a replicated embedding. */
  private readonly embedRows: Slice;
  /** Whether every rank holds the whole embedding (no embedding all-reduce). */
  readonly replicatedEmbedding: boolean;
  private readonly layers: DecoderLayer[];
  private readonly finalNorm: Float32Array;
  /** [vocab.count, hidden] */
  private readonly lmHead: LinearWeight;
  readonly maxPositions: number;

  constructor(config: DeepseekConfig, opts: DeepseekLoadOptions) {
    this.config = config;
    this.kernels = opts.kernels;
    const tp = opts.communicator ?? new SingleRankCommunicator();
    this.groups = { tp, world: opts.moeCommunicator ?? tp };
    this.plan = opts.plan ?? SINGLE_RANK_PLAN;
    if (this.plan.size !== tp.worldSize) {
      throw new RangeError(`parallel plan of ${this.plan.size} ranks with a group of ${tp.worldSize}`);
    }
    const moeGroup = moeGroupPosition(this.plan);
    if (moeGroup.size !== this.groups.world.worldSize || moeGroup.rank !== this.groups.world.rank) {
      throw new RangeError(
        `MoE group rank ${moeGroup.rank} of ${moeGroup.size} in the plan, ${this.groups.world.rank} of ${this.groups.world.worldSize} in the communicator`,
      );
    }
    const ctx: LoadContext = {
      source: opts.source,
      kernels: opts.kernels,
      weightDType: opts.weightDType,
      ...(opts.linears ? { linears: opts.linears } : {}),
      ...(opts.weightCache ? { weightCache: opts.weightCache } : {}),
      // Activation buffers the layers share and reuse from step to step (see Scratch for why it is safe).
      scratch: new Scratch(opts.kernels),
      stacking: new StackingBuffer(),
    };
    const V = config.vocabSize;
    const H = config.hiddenSize;
    this.maxPositions = Math.min(
      opts.maxPositions ?? config.maxPositionEmbeddings,
      config.maxPositionEmbeddings,
    );
    const rope = placeRopeTables(opts.kernels, buildRopeTables(config, this.maxPositions));
    const scale = mlaSoftmaxScale(config);

    this.vocab = unevenShare(V, this.plan.rank, this.plan.size);
    this.replicatedEmbedding = (opts.replicateEmbedding ?? false) && this.plan.size > 1;
    // This rank's vocabulary rows only, unless replicated.
    this.embedRows = this.replicatedEmbedding ? { start: 0, count: V } : this.vocab;
    this.embedding = loadRows(ctx, 'model.embed_tokens.weight', [V, H], this.embedRows);
    this.layers = [];
    for (let i = 0; i < config.numHiddenLayers; i++) {
      this.layers.push(new DecoderLayer(ctx, config, i, rope, scale, this.plan));
      opts.onLayerLoaded?.(i, config.numHiddenLayers);
    }
    this.finalNorm = loadVector(ctx, 'model.norm.weight', H);
    this.lmHead = config.tieWordEmbeddings
      ? opts.kernels.prepareLinear(this.vocabRowsOf(this.embedding), this.vocab.count, H, opts.weightDType)
      : loadLinear(ctx, [{ name: 'lm_head.weight', rows: V, take: this.vocab }], H);
  }

  /**
   * Runs the batch through the model, writing its tokens' latent KV into `cache`, and returns the logits
   * of the rows `batch.logitsIndices`: [logitsIndices.length, vocab] (complete on every rank).
   */
  async forward(
    batch: ForwardBatch,
    cache: MlaKvCache,
    observer?: ForwardObserver,
    /** The groups for this forward's collectives (a micro-batch's view under DBO). */
    groups: RankGroups = this.groups,
  ): Promise<Float32Array> {
    const c = this.config;
    validateForwardBatch(batch, c.vocabSize, this.maxPositions);
    const H = c.hiddenSize;
    const comm = groups.tp;
    let replicaTokens: number[] | null = null;
    const group = moeGroupPosition(this.plan);
    if (group.dataParallelSize > 1) {
      // Communication point: every rank learns how many tokens each replica runs (the MoE layers'
      // collectives are sized by them). A replica with no work runs an empty batch.
      const counts = new Int32Array(group.size);
      await waitAt(
        groups,
        'replica tokens all-gather',
        groups.world.allGather(counts, Int32Array.of(batch.numTokens), new Array(group.size).fill(1)),
      );
      replicaTokens = Array.from({ length: group.dataParallelSize }, (_, r) => counts[r * this.plan.size]!);
    }
    const x = this.embed(batch.tokenIds);
    // Communication point: vocabulary-parallel embedding (each rank filled only its vocabulary rows).
    if (!this.replicatedEmbedding) await waitAt(groups, 'embed all-reduce', comm.allReduce(x));
    observer?.onActivation?.('embed', x);
    const meta = buildAttentionMetadata(batch, cache.blockSize);
    for (const layer of this.layers)
      await layer.forward(this.kernels, groups, x, batch, meta, cache, observer, replicaTokens);

    const R = batch.logitsIndices.length;
    const k = this.kernels;
    const rows = k.allocateActivations(R * H);
    k.copyRows(rows, null, H, 0, x, batch.logitsIndices, H, 0, R, H);
    this.kernels.rmsNorm(rows, rows, this.finalNorm, R, H, c.rmsNormEps);
    observer?.onActivation?.('final_norm', rows);
    const local = k.allocateActivations(R * this.vocab.count);
    this.kernels.linear(local, rows, this.lmHead, R);
    if (this.plan.size === 1) return local;
    // Communication point: all-gather of the vocabulary-parallel logits ([rank][R, vocab share]).
    const counts = unevenCounts(c.vocabSize, this.plan.size, R);
    const gathered = k.allocateActivations(R * c.vocabSize);
    await waitAt(groups, 'logits all-gather', comm.allGather(gathered, local, counts));
    const logits = k.allocateActivations(R * c.vocabSize);
    let at = 0;
    for (let r = 0; r < this.plan.size; r++) {
      // Rank r's block [R, share] goes to columns [share.start, share.start + share.count) of the logits.
      const share = unevenShare(c.vocabSize, r, this.plan.size);
      k.copyRows(logits, null, c.vocabSize, share.start, gathered, null, share.count, at, R, share.count);
      at += R * share.count;
    }
    return logits;
  }

  /**
   * The forward's stages, each ending at a hand-over point (a collective, or a pause where DBO may switch
   * micro-batch), as `forward` passes them with `groups.points` set: the data of DBO's schedule.
   */
  forwardStages(groups: RankGroups = this.groups): ForwardStage[] {
    const dataParallel = moeGroupPosition(this.plan).dataParallelSize > 1;
    const out: ForwardStage[] = [];
    if (dataParallel) out.push({ name: 'replica tokens all-gather', end: 'collective' });
    if (!this.replicatedEmbedding) out.push({ name: 'embed all-reduce', end: 'collective' });
    for (const layer of this.layers) out.push(...layer.stages(groups, dataParallel));
    if (this.plan.size > 1) out.push({ name: 'logits all-gather', end: 'collective' });
    out.push({ name: 'done', end: 'done' });
    return out;
  }

  /** The LM head's rows (this rank's vocabulary share) of the embedding table. */
  private vocabRowsOf(e: RawWeight): RawWeight {
    const H = this.config.hiddenSize;
    const at = (this.vocab.start - this.embedRows.start) * H;
    const end = at + this.vocab.count * H;
    return e.dtype === 'bf16'
      ? { dtype: 'bf16', data: e.data.subarray(at, end) }
      : { dtype: 'f32', data: e.data.subarray(at, end) };
  }

  /** Looks up token embeddings of the rows this rank holds (zeros elsewhere): [T, hidden]. */
  private embed(tokenIds: Int32Array): Float32Array {
    const H = this.config.hiddenSize;
    const x = this.kernels.allocateActivations(tokenIds.length * H);
    this.kernels.embedding(
      x,
      this.embedding,
      tokenIds,
      this.embedRows.start,
      this.embedRows.count,
      tokenIds.length,
      H,
    );
    return x;
  }
}
