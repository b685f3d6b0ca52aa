// One prompt through a model on its own: prefilled whole into a fresh KV cache sized for it, with the
// logits of every position returned. What calibration and accuracy probes run over their prompts.

import type { DeepseekConfig } from '../config/model-config.js';
import type { Kernels } from '../kernels/kernels.js';
import { MlaKvCache } from '../layers/mla-kv-cache.js';
import type { CausalLM } from './model-registry.js';

/** Tokens per block of the prompt's own KV cache. */
const BLOCK_SIZE = 16;

/** Logits at every position of the prompt `ids`, [ids.length · vocab]. */
export function prefillPrompt(
  config: DeepseekConfig,
  kernels: Kernels,
  model: Pick<CausalLM, 'forward'>,
  ids: readonly number[],
): Promise<Float32Array> {
  const L = ids.length;
  const numBlocks = Math.ceil(L / BLOCK_SIZE);
  const cache = MlaKvCache.forModel(kernels, config, numBlocks, BLOCK_SIZE);
  const every = Int32Array.from({ length: L }, (_, i) => i);
  return model.forward(
    {
      numTokens: L,
      tokenIds: Int32Array.from(ids),
      positions: every,
      slotMapping: every,
      seqs: [{ queryStart: 0, queryLen: L, blockTable: Int32Array.from({ length: numBlocks }, (_, i) => i) }],
      logitsIndices: every,
    },
    cache,
  );
}
