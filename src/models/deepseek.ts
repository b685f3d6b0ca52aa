// DeepSeek-V2 / V2-Lite / V3 / R1 (DeepseekV2ForCausalLM, DeepseekV3ForCausalLM): embedding, decoder
// layers of MLA attention plus a dense MLP or a mixture of experts, final norm and LM head.
// The forward is asynchronous only at its communication points (the awaited collectives), so that two
// micro-batches can interleave there.

import { type DeepseekConfig, isMoeLayer } from '../config/model-config.js';
import { type Communicator, SingleRankCommunicator } from '../distributed/communicator.js';
import type { Kernels, LinearWeight, RawWeight, WeightDType } from '../kernels/kernels.js';
import { GatedMlp } from '../layers/gated-mlp.js';
import { MlaAttention } from '../layers/mla-attention.js';
import { Moe } from '../layers/moe.js';
import { buildRopeTables, mlaSoftmaxScale, type RopeTables } from '../layers/rope.js';
import { addInPlace, gatherRows } from '../layers/tensor-ops.js';
import { type LoadContext, loadLinear, loadVector, toF32 } from '../layers/weight-loading.js';
import type { WeightSource } from '../loader/weight-source.js';
import { type ForwardBatch, validateForwardBatch } from './forward-batch.js';
import type { MlaKvCache } from './mla-kv-cache.js';

/** Optional taps into the forward, for tests and debugging (golden comparisons). */
export interface ForwardObserver {
  /** Routed experts and weights of MoE layer `layer` ([T, topK] each). */
  onRouting?(layer: number, experts: Int32Array, weights: Float32Array, topK: number): void;
  /** A named activation: `embed`, `layers.N.attn_out`, `layers.N.ffn_out` ([T, hidden]). */
  onActivation?(name: string, data: Float32Array): void;
}

export interface DeepseekLoadOptions {
  readonly kernels: Kernels;
  readonly source: WeightSource;
  /** Storage dtype of linear weights. */
  readonly weightDType: WeightDType;
  /** Positions the rope tables cover (defaults to max_position_embeddings). */
  readonly maxPositions?: number;
  readonly communicator?: Communicator;
  /** Called after each decoder layer loads (for progress display). */
  readonly onLayerLoaded?: (layer: number, numLayers: number) => void;
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
  ) {
    const p = `model.layers.${index}`;
    const H = config.hiddenSize;
    this.inputNorm = loadVector(ctx, `${p}.input_layernorm.weight`, H);
    this.postAttnNorm = loadVector(ctx, `${p}.post_attention_layernorm.weight`, H);
    this.attn = new MlaAttention(ctx, config, `${p}.self_attn`, rope, scale);
    if (isMoeLayer(config, index)) {
      this.moe = new Moe(ctx, config, `${p}.mlp`);
      this.mlp = null;
    } else {
      this.mlp = new GatedMlp(ctx, `${p}.mlp`, H, config.intermediateSize);
      this.moe = null;
    }
  }

  /** Updates the residual stream `x` ([T, hidden]) in place. */
  async forward(
    kernels: Kernels,
    comm: Communicator,
    x: Float32Array,
    batch: ForwardBatch,
    cache: MlaKvCache,
    observer: ForwardObserver | undefined,
  ): Promise<void> {
    const T = batch.numTokens;
    const H = this.config.hiddenSize;
    const eps = this.config.rmsNormEps;
    const h = new Float32Array(T * H);

    kernels.rmsNorm(h, x, this.inputNorm, T, H, eps);
    const attnOut = this.attn.forward(h, batch, cache, this.index);
    // Communication point: tensor-parallel all-reduce of the attention output projection.
    await comm.allReduce(attnOut).wait();
    observer?.onActivation?.(`layers.${this.index}.attn_out`, attnOut);
    addInPlace(x, attnOut);

    kernels.rmsNorm(h, x, this.postAttnNorm, T, H, eps);
    const ffnOut = new Float32Array(T * H);
    if (this.moe) {
      const routing = this.moe.gate.route(kernels, h, T);
      observer?.onRouting?.(this.index, routing.experts, routing.weights, routing.topK);
      const assignment = Moe.assign(routing, T, this.moe.numExperts);
      // Communication point (expert parallel): dispatch tokens to the ranks holding their experts.
      this.moe.runExperts(kernels, ffnOut, h, assignment);
      // Communication point (expert parallel): combine expert outputs back to the tokens' ranks.
      this.moe.runShared(kernels, ffnOut, h, T);
    } else {
      this.mlp!.forward(kernels, ffnOut, h, T);
    }
    // Communication point: tensor-parallel all-reduce of the feed-forward output.
    await comm.allReduce(ffnOut).wait();
    observer?.onActivation?.(`layers.${this.index}.ffn_out`, ffnOut);
    addInPlace(x, ffnOut);
  }
}

export class DeepseekForCausalLM {
  readonly config: DeepseekConfig;
  private readonly kernels: Kernels;
  private readonly comm: Communicator;
  /** [vocab, hidden] kept as read (bf16 bits or f32); rows are widened on lookup. */
  private readonly embedding: RawWeight;
  private readonly layers: DecoderLayer[];
  private readonly finalNorm: Float32Array;
  /** [vocab, hidden] */
  private readonly lmHead: LinearWeight;
  readonly maxPositions: number;

  constructor(config: DeepseekConfig, opts: DeepseekLoadOptions) {
    this.config = config;
    this.kernels = opts.kernels;
    this.comm = opts.communicator ?? new SingleRankCommunicator();
    const ctx: LoadContext = { source: opts.source, kernels: opts.kernels, weightDType: opts.weightDType };
    const V = config.vocabSize;
    const H = config.hiddenSize;
    this.maxPositions = Math.min(
      opts.maxPositions ?? config.maxPositionEmbeddings,
      config.maxPositionEmbeddings,
    );
    const rope = buildRopeTables(config, this.maxPositions);
    const scale = mlaSoftmaxScale(config);

    this.embedding = opts.source.read('model.embed_tokens.weight', [V, H]);
    this.layers = [];
    for (let i = 0; i < config.numHiddenLayers; i++) {
      this.layers.push(new DecoderLayer(ctx, config, i, rope, scale));
      opts.onLayerLoaded?.(i, config.numHiddenLayers);
    }
    this.finalNorm = loadVector(ctx, 'model.norm.weight', H);
    this.lmHead = config.tieWordEmbeddings
      ? opts.kernels.prepareLinear(this.embedding, V, H, opts.weightDType)
      : loadLinear(ctx, [{ name: 'lm_head.weight', rows: V }], H);
  }

  /**
   * Runs the batch through the model, writing its tokens' latent KV into `cache`, and returns the logits
   * of the rows `batch.logitsIndices`: [logitsIndices.length, vocab].
   */
  async forward(batch: ForwardBatch, cache: MlaKvCache, observer?: ForwardObserver): Promise<Float32Array> {
    const c = this.config;
    validateForwardBatch(batch, c.vocabSize, this.maxPositions);
    const H = c.hiddenSize;
    const x = this.embed(batch.tokenIds);
    observer?.onActivation?.('embed', x);
    for (const layer of this.layers) await layer.forward(this.kernels, this.comm, x, batch, cache, observer);

    const R = batch.logitsIndices.length;
    const rows = new Float32Array(R * H);
    gatherRows(rows, x, batch.logitsIndices, H);
    this.kernels.rmsNorm(rows, rows, this.finalNorm, R, H, c.rmsNormEps);
    observer?.onActivation?.('final_norm', rows);
    const logits = new Float32Array(R * c.vocabSize);
    this.kernels.linear(logits, rows, this.lmHead, R);
    return logits;
  }

  /** Looks up token embeddings: [T, hidden]. */
  private embed(tokenIds: Int32Array): Float32Array {
    const H = this.config.hiddenSize;
    const x = new Float32Array(tokenIds.length * H);
    for (let t = 0; t < tokenIds.length; t++) {
      const row = tokenIds[t]! * H;
      const e = this.embedding;
      const slice =
        e.dtype === 'bf16'
          ? toF32({ dtype: 'bf16', data: e.data.subarray(row, row + H) })
          : e.data.subarray(row, row + H);
      x.set(slice, t * H);
    }
    return x;
  }
}
