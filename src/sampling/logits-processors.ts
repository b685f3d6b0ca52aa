// The logits processors that run before sampling, in vLLM V1's order: logit_bias, min_tokens (mask EOS and
// stop token ids), then the penalties — repetition on prompt + output tokens (divide a positive logit,
// multiply a negative one, as HF/vLLM), frequency (per occurrence) and presence (once) on output tokens.
// All are sparse: they touch only the ids named by the request, so a 129k-entry row costs little.

import type { RequestSamplingState } from './sampling-state.js';

/** Called before each write with the id and its value before the write (to undo the edits later). */
export type LogitEditRecorder = (tokenId: number, previousValue: number) => void;

/**
 * Applies logit_bias, min_tokens and the penalties of `state` to `row` [vocabSize] in place. Ids beyond the
 * row are ignored. `record`, when given, sees every write first.
 */
export function applyLogitsProcessors(
  row: Float32Array,
  state: RequestSamplingState,
  record?: LogitEditRecorder,
): void {
  const { params } = state;
  const write = (id: number, value: number): void => {
    if (id >= row.length) return;
    record?.(id, row[id]!);
    row[id] = value;
  };
  if (params.logitBias !== null) {
    for (const [id, bias] of params.logitBias) if (id < row.length) write(id, row[id]! + bias);
  }
  if (state.numOutputTokens < params.minTokens) {
    for (const id of state.minTokensBlockedIds) write(id, Number.NEGATIVE_INFINITY);
  }
  const counts = state.outputTokenCounts;
  if (params.repetitionPenalty !== 1) {
    const penalty = params.repetitionPenalty;
    const prompt = state.promptTokenSet;
    const penalise = (id: number): void => {
      if (id >= row.length) return;
      const v = row[id]!;
      write(id, v > 0 ? v / penalty : v * penalty);
    };
    if (prompt !== null) for (const id of prompt) penalise(id);
    for (const id of counts.keys()) if (prompt === null || !prompt.has(id)) penalise(id);
  }
  if (params.frequencyPenalty !== 0 || params.presencePenalty !== 0) {
    for (const [id, count] of counts) {
      if (id < row.length) write(id, row[id]! - params.frequencyPenalty * count - params.presencePenalty);
    }
  }
}
