// The benchmarks' way to queue work on an engine: one greedy request per prompt, each running to exactly
// `maxTokens` new tokens (EOS ignored), so every run does the same number of steps.

import type { LLMEngine } from '../src/engine/llm-engine.js';
import { resolveSamplingParams } from '../src/sampling/sampling-params.js';

/** Adds one greedy request of `maxTokens` tokens (EOS ignored) per prompt to `engine`. */
export function addGreedyRequests(
  engine: LLMEngine,
  prompts: readonly (readonly number[])[],
  maxTokens: number,
): void {
  for (const prompt of prompts) {
    const params = resolveSamplingParams(
      { temperature: 0, maxTokens, ignoreEos: true },
      {},
      {
        vocabSize: engine.loaded.config.vocabSize,
        maxModelLen: engine.maxModelLen,
        numPromptTokens: prompt.length,
      },
    );
    engine.addRequest(prompt, params);
  }
}
