// What the engine keeps per request between steps, beside the scheduling core's record of it (whose
// token lists are the one record of the prompt and the output): sampling state, the detokenizer and stop
// checker, log-probs gathered so far, and how the request finished.

import type { EngineRequest, FinishReason } from '../core/request.js';
import type { TokenLogprobs } from '../sampling/logprobs.js';
import type { SamplingParams } from '../sampling/sampling-params.js';
import type { RequestSamplingState } from '../sampling/sampling-state.js';
import type { StopChecker } from './stop-checker.js';

export class EngineRequestState {
  /** Per generated token (when logprobs were asked): the sampled token's log-prob and the top-K. */
  readonly logprobs: TokenLogprobs[] | null;
  /** Per prompt token (index 0 is always null) when prompt_logprobs were asked. */
  readonly promptLogprobs: (TokenLogprobs | null)[] | null;
  /** Sum of the sampled tokens' log-probs (when logprobs were asked). */
  cumulativeLogprob = 0;
  finishReason: FinishReason | null = null;
  stopReason: string | number | null = null;
  /** Error message when finishReason is 'error'. */
  error: string | null = null;

  constructor(
    /** The scheduler's record of the request (read it, do not change it); outlives its finish. */
    private readonly request: EngineRequest,
    readonly params: SamplingParams,
    readonly sampling: RequestSamplingState,
    readonly stopChecker: StopChecker,
    readonly arrivalTime: number,
  ) {
    this.logprobs = params.logprobs !== null ? [] : null;
    this.promptLogprobs = params.promptLogprobs !== null ? [null] : null;
  }

  get requestId(): string {
    return this.request.requestId;
  }

  get promptTokenIds(): readonly number[] {
    return this.request.promptTokenIds;
  }

  /** The tokens generated so far (the scheduler appends them as each step's output is applied). */
  get outputTokenIds(): readonly number[] {
    return this.request.outputTokenIds;
  }

  /** Whether every prompt log-prob has been computed (they are computed once, even across preemptions). */
  get hasAllPromptLogprobs(): boolean {
    return this.promptLogprobs === null || this.promptLogprobs.length >= this.promptTokenIds.length;
  }
}

/** One request's progress in one engine step: what a streaming client receives. */
export interface RequestUpdate {
  readonly requestId: string;
  /** Tokens generated in this step. */
  readonly newTokenIds: readonly number[];
  /** Text that became final in this step (held back while it could start a stop string). */
  readonly textDelta: string;
  /** Log-probs of the new tokens, when asked. */
  readonly newLogprobs: readonly TokenLogprobs[] | null;
  readonly finished: boolean;
  readonly finishReason: FinishReason | null;
  readonly stopReason: string | number | null;
  /** Set for finishReason 'error'. */
  readonly error: string | null;
  /** The request's state (read-only use): full output so far, prompt log-probs. */
  readonly state: EngineRequestState;
}
