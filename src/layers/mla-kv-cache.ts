// The paged latent KV cache of MLA: per layer, per cache slot, the normalised compressed latent
// (kv_lora_rank) followed by the rotated rope key (qk_rope_head_dim). Nothing else is cached.

import type { DeepseekConfig } from '../config/model-config.js';
import type { Kernels } from '../kernels/kernels.js';

export class MlaKvCache {
  /** Floats per cache slot: latentDim + ropeDim. */
  readonly entryDim: number;
  /** Per layer: [numBlocks · blockSize, entryDim]. */
  readonly layers: readonly Float32Array[];

  constructor(
    kernels: Kernels,
    readonly numLayers: number,
    readonly numBlocks: number,
    readonly blockSize: number,
    readonly latentDim: number,
    readonly ropeDim: number,
  ) {
    this.entryDim = latentDim + ropeDim;
    const perLayer = numBlocks * blockSize * this.entryDim;
    this.layers = Array.from({ length: numLayers }, () => kernels.allocate(perLayer));
  }

  /** A cache of `numBlocks` blocks of `blockSize` tokens for every layer of the model `config` describes. */
  static forModel(
    kernels: Kernels,
    config: Pick<DeepseekConfig, 'numHiddenLayers' | 'kvLoraRank' | 'qkRopeHeadDim'>,
    numBlocks: number,
    blockSize: number,
  ): MlaKvCache {
    const { numHiddenLayers, kvLoraRank, qkRopeHeadDim } = config;
    return new MlaKvCache(kernels, numHiddenLayers, numBlocks, blockSize, kvLoraRank, qkRopeHeadDim);
  }

  /** Bytes one token occupies across all layers. */
  static bytesPerToken(numLayers: number, latentDim: number, ropeDim: number): number {
    return numLayers * (latentDim + ropeDim) * 4;
  }
}
