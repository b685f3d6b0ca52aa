// The sampling defaults a model sets (vLLM's --generation-config auto): the sampling fields of its
// generation_config.json, in the sampler's terms (max_new_tokens is max_tokens there).

import type { GenerationDefaults } from '../loader/generation-config.js';
import type { SamplingDefaults } from '../sampling/sampling-params.js';

/** The sampler's defaults from a model's generation_config.json (undefined when it has none). */
export function samplingDefaultsFrom(g: GenerationDefaults | null): SamplingDefaults | undefined {
  if (!g) return undefined;
  const out: { -readonly [K in keyof SamplingDefaults]: SamplingDefaults[K] } = {};
  if (g.temperature !== undefined) out.temperature = g.temperature;
  if (g.topP !== undefined) out.topP = g.topP;
  if (g.topK !== undefined) out.topK = g.topK;
  if (g.minP !== undefined) out.minP = g.minP;
  if (g.repetitionPenalty !== undefined) out.repetitionPenalty = g.repetitionPenalty;
  if (g.maxNewTokens !== undefined) out.maxTokens = g.maxNewTokens;
  return out;
}
