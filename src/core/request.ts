// The scheduler's view of one generation request: its tokens, how far its KV cache has been computed,
// and where it stands in its life (waiting, running, preempted, finished). Pure data plus a few helpers;
// sampling parameters are not here: the engine keeps them beside the request id.

import type { BlockHash } from './prefix-hash.js';

/** Where a request stands. `preempted` requests sit in the waiting queue and are recomputed on resume. */
export type RequestStatus =
  | 'waiting'
  | 'running'
  | 'preempted'
  | 'finished_stopped'
  | 'finished_length'
  | 'finished_aborted'
  | 'finished_error';

/**
 * Why a request finished, in the words of the OpenAI API and vLLM (`finish_reason`), used from the
 * scheduler to the HTTP response. `stop`: EOS, a stop token or a stop string (decided by the engine);
 * `length`: max_tokens reached or the model's context is full; `abort`: the client went away;
 * `error`: the engine gave up on it.
 */
export type FinishReason = 'stop' | 'length' | 'abort' | 'error';

/** The finished status that goes with each finish reason. */
export function finishedStatus(reason: FinishReason): RequestStatus {
  switch (reason) {
    case 'stop':
      return 'finished_stopped';
    case 'length':
      return 'finished_length';
    case 'abort':
      return 'finished_aborted';
    case 'error':
      return 'finished_error';
  }
}

/** True for the four finished statuses. */
export function isFinishedStatus(status: RequestStatus): boolean {
  return status.startsWith('finished_');
}

/** What the engine hands to `Scheduler.addRequest`. */
export interface RequestInit {
  /** Unique among live requests. */
  readonly requestId: string;
  /** The tokenized prompt; at least one token. */
  readonly promptTokenIds: readonly number[];
  /** Most tokens to generate (OpenAI `max_tokens`), at least 1; the engine resolves any default first. */
  readonly maxTokens: number;
  /** Caller's clock reading at arrival (for metrics only; the core never reads a clock). */
  readonly arrivalTime?: number;
  /**
   * Compute every prompt position even when its KV is in the prefix cache (the engine needs the
   * logits of each prompt position for prompt_logprobs). The request's own blocks are still cached.
   */
  readonly skipPrefixCacheHits?: boolean;
}

/** One request as the scheduling core tracks it. Mutated only by the scheduler and KV cache manager. */
export class EngineRequest {
  readonly requestId: string;
  readonly promptTokenIds: readonly number[];
  readonly maxTokens: number;
  readonly arrivalTime: number;
  /** See RequestInit.skipPrefixCacheHits. */
  readonly skipPrefixCacheHits: boolean;
  /** Position in arrival order, assigned by the scheduler (0, 1, 2, ...). */
  readonly arrivalIndex: number;
  /** Generated tokens so far, in order. */
  readonly outputTokenIds: number[] = [];
  /** Prompt followed by the outputs: every token whose KV the request will need. */
  readonly allTokenIds: number[];
  status: RequestStatus = 'waiting';
  /** Leading tokens of `allTokenIds` whose KV is computed (or scheduled to be, once a step is out). */
  numComputedTokens = 0;
  /** Prompt tokens served from the prefix cache at first admission (-1 until first admitted). */
  numCachedTokens = -1;
  /** Times this request was preempted (its KV dropped, to be recomputed). */
  numPreemptions = 0;
  /** Set when the request finishes. */
  finishReason: FinishReason | null = null;
  /**
   * Hashes of the full blocks of `allTokenIds`, one per block, maintained by the KV cache manager
   * (all requests of one engine share one block size).
   */
  readonly blockHashes: BlockHash[] = [];

  constructor(init: RequestInit, arrivalIndex: number) {
    this.requestId = init.requestId;
    this.promptTokenIds = [...init.promptTokenIds];
    this.maxTokens = init.maxTokens;
    this.arrivalTime = init.arrivalTime ?? 0;
    this.skipPrefixCacheHits = init.skipPrefixCacheHits ?? false;
    this.arrivalIndex = arrivalIndex;
    this.allTokenIds = [...init.promptTokenIds];
  }

  /** Prompt plus output tokens. */
  get numTokens(): number {
    return this.allTokenIds.length;
  }

  get numPromptTokens(): number {
    return this.promptTokenIds.length;
  }

  get numOutputTokens(): number {
    return this.outputTokenIds.length;
  }

  get isFinished(): boolean {
    return isFinishedStatus(this.status);
  }

  /** Appends one generated token. */
  appendOutputToken(tokenId: number): void {
    this.outputTokenIds.push(tokenId);
    this.allTokenIds.push(tokenId);
  }
}
