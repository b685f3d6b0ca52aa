// Stop checking of one request, as vLLM reports it: EOS (unless ignore_eos), stop_token_ids, stop strings
// found across token boundaries, min_tokens (nothing stops before it), max_tokens and the context length,
// giving finish_reason 'stop' | 'length' and stop_reason (the stop string, the stop token id, or null).
// It also decides which text may be streamed: text that could be the start of a stop string is held back.

import type { SamplingParams } from '../worker/sampling-params.js';
import type { IncrementalDetokenizer } from './detokenizer.js';

/** Why a request finished, in OpenAI's terms. */
export type FinishReason = 'stop' | 'length';

/** How a request finished: finish_reason, and stop_reason as vLLM reports it. */
export interface FinishState {
  readonly finishReason: FinishReason;
  /** The stop string or stop token id that ended it; null for EOS and for 'length'. */
  readonly stopReason: string | number | null;
}

/** The sampling parameters stop checking reads. */
export type StopParams = Pick<
  SamplingParams,
  'maxTokens' | 'minTokens' | 'stop' | 'stopTokenIds' | 'includeStopStrInOutput' | 'ignoreEos'
>;

/** Facts about the model and request that stop checking needs. */
export interface StopLimits {
  /** EOS ids (the tokenizer's, plus generation_config.json's eos_token_id). */
  readonly eosTokenIds: readonly number[];
  /** The model's context length; a request ends 'length' when prompt + output reach it. */
  readonly maxModelLen?: number;
  readonly numPromptTokens?: number;
}

/** Feeding a token to a request that has already finished. */
export class StopCheckerFinishedError extends Error {
  override readonly name = 'StopCheckerFinishedError';
  constructor(finish: FinishState) {
    super(`the request already finished (finish_reason '${finish.finishReason}'); no token can be appended`);
  }
}

/**
 * The token-level stop rules (vLLM's scheduler check), for the `numOutputTokens`-th generated token
 * `tokenId`: before min_tokens nothing stops; then EOS (unless ignore_eos) and stop_token_ids stop, then
 * max_tokens and the context length cap. Pure: usable by a scheduler without a tokenizer.
 */
export function checkTokenStop(
  tokenId: number,
  numOutputTokens: number,
  params: StopParams,
  limits: StopLimits,
): FinishState | null {
  if (numOutputTokens < params.minTokens) return null;
  if (!params.ignoreEos && limits.eosTokenIds.includes(tokenId))
    return { finishReason: 'stop', stopReason: null };
  if (params.stopTokenIds.includes(tokenId)) return { finishReason: 'stop', stopReason: tokenId };
  if (params.maxTokens !== null && numOutputTokens >= params.maxTokens) {
    return { finishReason: 'length', stopReason: null };
  }
  const { maxModelLen, numPromptTokens } = limits;
  if (maxModelLen !== undefined && (numPromptTokens ?? 0) + numOutputTokens >= maxModelLen) {
    return { finishReason: 'length', stopReason: null };
  }
  return null;
}

/**
 * Per-request stop checker over a detokenizer: feed it each generated token; it keeps the output text
 * (cut at a stop string) and the finish state. As vLLM, the text of a stopping EOS / stop token is left
 * out unless include_stop_str_in_output, and when several stop strings match, the earliest one wins.
 */
export class StopChecker {
  private readonly detokenizer: IncrementalDetokenizer;
  private readonly params: StopParams;
  private readonly limits: StopLimits;
  private readonly maxStopLength: number;
  private text = '';
  private numOutput = 0;
  private numStreamed = 0;
  private finish: FinishState | null = null;

  constructor(detokenizer: IncrementalDetokenizer, params: StopParams, limits: StopLimits) {
    this.detokenizer = detokenizer;
    this.params = params;
    this.limits = limits;
    this.maxStopLength = Math.max(0, ...params.stop.map((s) => s.length));
  }

  /** The output text so far (final once finished: cut at the stop string). */
  get outputText(): string {
    return this.text;
  }

  get numOutputTokens(): number {
    return this.numOutput;
  }

  /** The finish state, or null while the request runs. */
  get finished(): FinishState | null {
    return this.finish;
  }

  /** Appends one generated token; returns the finish state when this token ends the request, else null. */
  appendToken(tokenId: number): FinishState | null {
    if (this.finish !== null) throw new StopCheckerFinishedError(this.finish);
    this.numOutput++;
    let finish = checkTokenStop(tokenId, this.numOutput, this.params, this.limits);
    const stoppedByToken = finish !== null && finish.finishReason === 'stop';
    if (stoppedByToken && !this.params.includeStopStrInOutput) {
      this.finish = finish;
      return finish;
    }
    const previousLength = this.text.length;
    this.text += this.detokenizer.push(tokenId);
    // Stop strings must end in text of tokens after the first min_tokens (they may start before, as vLLM).
    if (this.numOutput > this.params.minTokens && this.text.length > previousLength) {
      finish = this.checkStopStrings(previousLength) ?? finish;
    }
    this.finish = finish;
    return finish;
  }

  /**
   * The text not streamed yet that is safe to send: while running, a tail that could be the start of a
   * stop string is held back; once finished, everything left is returned.
   */
  takeStreamDelta(): string {
    let end = this.text.length;
    if (this.finish === null && !this.params.includeStopStrInOutput) end -= this.stopPrefixLength();
    if (end <= this.numStreamed) return '';
    const delta = this.text.slice(this.numStreamed, end);
    this.numStreamed = end;
    return delta;
  }

  /** Looks for a stop string ending in the text added after `previousLength`; cuts the text at it. */
  private checkStopStrings(previousLength: number): FinishState | null {
    let best = -1;
    let bestStop = '';
    for (const stop of this.params.stop) {
      const from = Math.max(previousLength - stop.length + 1, 0);
      const index = this.text.indexOf(stop, from);
      if (index !== -1 && (best === -1 || index < best)) {
        best = index;
        bestStop = stop;
      }
    }
    if (best === -1) return null;
    this.text = this.text.slice(0, this.params.includeStopStrInOutput ? best + bestStop.length : best);
    return { finishReason: 'stop', stopReason: bestStop };
  }

  /** Length of the longest tail of the text that is a proper prefix of some stop string. */
  private stopPrefixLength(): number {
    const maxLength = Math.min(this.maxStopLength - 1, this.text.length);
    for (let length = maxLength; length > 0; length--) {
      const tail = this.text.slice(this.text.length - length);
      if (this.params.stop.some((s) => s.length > length && s.startsWith(tail))) return length;
    }
    return 0;
  }
}
