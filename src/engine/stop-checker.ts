// Stop checking of one request, as vLLM reports it: EOS (unless ignore_eos), stop_token_ids, stop strings
// found across token boundaries, min_tokens (nothing stops before it), max_tokens and the context length,
// giving finish_reason 'stop' | 'length' and stop_reason (the stop string, the stop token id, or null).
// It also decides which text may be streamed: text that could be the start of a stop string is held back.
// Stop strings are matched by one automaton per request fed only the new text, and stop token ids are
// looked up in a set, so a step costs the same however many stop strings and ids a request gives.

import type { FinishReason } from '../core/request.js';
import type { SamplingParams } from '../sampling/sampling-params.js';
import type { IncrementalDetokenizer } from './detokenizer.js';
import { StopStringMatcher } from './stop-string-matcher.js';

/** The finish reasons a stop check gives (the others, abort and error, come from elsewhere). */
export type StopFinishReason = Extract<FinishReason, 'stop' | 'length'>;

/** How a request finished: finish_reason, and stop_reason as vLLM reports it. */
export interface FinishState {
  readonly finishReason: StopFinishReason;
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
  readonly eosTokenIds: readonly number[] | ReadonlySet<number>;
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
  stopTokenIds: ReadonlySet<number> | readonly number[] = params.stopTokenIds,
): FinishState | null {
  if (numOutputTokens < params.minTokens) return null;
  if (!params.ignoreEos && contains(limits.eosTokenIds, tokenId))
    return { finishReason: 'stop', stopReason: null };
  if (contains(stopTokenIds, tokenId)) return { finishReason: 'stop', stopReason: tokenId };
  if (params.maxTokens !== null && numOutputTokens >= params.maxTokens) {
    return { finishReason: 'length', stopReason: null };
  }
  const { maxModelLen, numPromptTokens } = limits;
  if (maxModelLen !== undefined && (numPromptTokens ?? 0) + numOutputTokens >= maxModelLen) {
    return { finishReason: 'length', stopReason: null };
  }
  return null;
}

function contains(ids: ReadonlySet<number> | readonly number[], id: number): boolean {
  return ids instanceof Set ? ids.has(id) : (ids as readonly number[]).includes(id);
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
  private readonly stopTokenIds: ReadonlySet<number>;
  /** The stop strings' automaton; null when the request has none. */
  private readonly matcher: StopStringMatcher | null;
  private text = '';
  private numOutput = 0;
  private numStreamed = 0;
  private finish: FinishState | null = null;

  /** Builds the request's stop-string automaton (throws StopStringsError for a bad stop list). */
  constructor(detokenizer: IncrementalDetokenizer, params: StopParams, limits: StopLimits) {
    this.detokenizer = detokenizer;
    this.params = params;
    this.limits = { ...limits, eosTokenIds: new Set(limits.eosTokenIds) };
    this.stopTokenIds = new Set(params.stopTokenIds);
    this.matcher = params.stop.length > 0 ? new StopStringMatcher(params.stop) : null;
  }

  /** The output text so far (final once finished: cut at the stop string). */
  get outputText(): string {
    return this.text;
  }

  get numOutputTokens(): number {
    return this.numOutput;
  }

  /** Trie moves made matching stop strings (at most twice the text's length, whatever the stop list). */
  get numStopStringMoves(): number {
    return this.matcher?.numMoves ?? 0;
  }

  /** The finish state, or null while the request runs. */
  get finished(): FinishState | null {
    return this.finish;
  }

  /** Appends one generated token; returns the finish state when this token ends the request, else null. */
  appendToken(tokenId: number): FinishState | null {
    if (this.finish !== null) throw new StopCheckerFinishedError(this.finish);
    this.numOutput++;
    let finish = checkTokenStop(tokenId, this.numOutput, this.params, this.limits, this.stopTokenIds);
    const stoppedByToken = finish !== null && finish.finishReason === 'stop';
    if (stoppedByToken && !this.params.includeStopStrInOutput) {
      this.finish = finish;
      return finish;
    }
    const delta = this.detokenizer.push(tokenId);
    this.text += delta;
    // The automaton sees all the text; stop strings must end in text of tokens after the first min_tokens
    // (they may start before, as vLLM).
    const match = this.matcher !== null && delta.length > 0 ? this.matcher.feed(delta) : null;
    if (match !== null && this.numOutput > this.params.minTokens) finish = this.cutAt(match);
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

  /** Cuts the text at a stop string found in the new text (before it, or after it when included). */
  private cutAt(match: { readonly start: number; readonly stopIndex: number }): FinishState {
    const stop = this.params.stop[match.stopIndex]!;
    this.text = this.text.slice(
      0,
      this.params.includeStopStrInOutput ? match.start + stop.length : match.start,
    );
    return { finishReason: 'stop', stopReason: stop };
  }

  /** Length of the longest tail of the text that is a proper prefix of some stop string. */
  private stopPrefixLength(): number {
    return this.matcher?.holdBackLength ?? 0;
  }
}
