// Logits at every position of whole prompts, each prefilled alone into a fresh KV cache: what the
// quantization accuracy tests compare against a reference's per-position outputs.

import type { DeepseekConfig } from '../../src/config/model-config.js';
import type { Kernels } from '../../src/kernels/kernels.js';
import type { DeepseekForCausalLM } from '../../src/models/deepseek.js';
import { prefillPrompt } from '../../src/models/prefill-prompt.js';

/** Logits at every position of each prompt, [L · vocab] per prompt. */
export async function prefillAll(
  config: DeepseekConfig,
  kernels: Kernels,
  model: DeepseekForCausalLM,
  prompts: readonly { ids: readonly number[] }[],
): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  for (const p of prompts) out.push(await prefillPrompt(config, kernels, model, p.ids));
  return out;
}
