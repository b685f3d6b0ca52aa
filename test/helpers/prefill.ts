// Logits at every position of whole prompts, each prefilled alone into a fresh KV cache: what the
// quantization accuracy tests compare against a reference's per-position outputs.

import type { DeepseekConfig } from '../../src/config/model-config.js';
import type { Kernels } from '../../src/kernels/kernels.js';
import { MlaKvCache } from '../../src/layers/mla-kv-cache.js';
import type { DeepseekForCausalLM } from '../../src/models/deepseek.js';

/** Logits at every position of each prompt, [L · vocab] per prompt. */
export async function prefillAll(
  config: DeepseekConfig,
  kernels: Kernels,
  model: DeepseekForCausalLM,
  prompts: readonly { ids: readonly number[] }[],
): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const p of prompts) {
    const L = p.ids.length;
    const blockSize = 16;
    const numBlocks = Math.ceil(L / blockSize);
    const cache = MlaKvCache.forModel(kernels, config, numBlocks, blockSize);
    const blockTable = Int32Array.from({ length: numBlocks }, (_, i) => i);
    out.push(
      await model.forward(
        {
          numTokens: L,
          tokenIds: Int32Array.from(p.ids),
          positions: Int32Array.from({ length: L }, (_, i) => i),
          slotMapping: Int32Array.from({ length: L }, (_, i) => i),
          seqs: [{ queryStart: 0, queryLen: L, blockTable }],
          logitsIndices: Int32Array.from({ length: L }, (_, i) => i),
        },
        cache,
      ),
    );
  }
  return out;
}
