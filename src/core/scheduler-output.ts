// The typed messages between the scheduler and the engine / executor, one step at a time:
//
//   const out = scheduler.schedule();             // SchedulerOutput: what to compute this step
//   const res = await executor.execute(out);        // ExecutorOutput: sampled tokens
//   const done = scheduler.updateFromOutput(res); // RequestStepOutput[]: new tokens, finishes
//
// Everything here is plain data (ids, numbers, arrays), safe to serialize to another thread or rank.
// The scheduler never sees tensors; the executor never sees the scheduler's request objects.

import type { FinishReason } from './request.js';

/** How a scheduled request came to be in this step. */
export type ScheduledKind =
  /** First step of a new request: the engine creates its per-request state. */
  | 'new'
  /** First step after a preemption: its KV was dropped; block table and state start over. */
  | 'resumed'
  /** Was scheduled before and still holds its blocks: a later prefill chunk or a decode. */
  | 'continuing';

/** One request's share of a step. */
export interface ScheduledRequest {
  readonly requestId: string;
  readonly kind: ScheduledKind;
  /**
   * Token ids whose KV this step computes, at positions startPosition .. startPosition + n - 1:
   * a prompt chunk, the last sampled token (decode), or, after a preemption, a recompute chunk that
   * may include previously generated tokens.
   */
  readonly tokenIds: readonly number[];
  /** Position of tokenIds[0] = tokens whose KV was computed before this step (prefix hits included). */
  readonly startPosition: number;
  /** tokenIds.length, at least 1. */
  readonly numScheduledTokens: number;
  /**
   * The request's whole block table after this step's allocation: block i holds positions
   * [i * blockSize, (i + 1) * blockSize). Covers every position up to startPosition + n - 1.
   */
  readonly blockIds: readonly number[];
  /** Ids appended to the block table this step (all of blockIds for 'new' and 'resumed'). */
  readonly newBlockIds: readonly number[];
  /**
   * True when this step reaches the end of the request's known tokens (its prefill finishes, or a
   * decode): the engine samples one token for it from the logits of its last scheduled position.
   * False for a prompt chunk with more to come: the engine samples nothing for it.
   */
  readonly samplesToken: boolean;
}

/** What the executor must compute in one step. */
export interface SchedulerOutput {
  /** Step counter, from 0, incremented by every schedule() call. */
  readonly stepIndex: number;
  /** Requests that were running first (in running order), then newly admitted ones (FCFS order). */
  readonly scheduledRequests: readonly ScheduledRequest[];
  /** Sum of numScheduledTokens; at most maxNumBatchedTokens. */
  readonly totalNumScheduledTokens: number;
  /** Requests finished (any reason, aborts included) since the previous step: free their per-request state. */
  readonly finishedRequestIds: readonly string[];
  /** Requests preempted in this step: their KV is gone; drop their per-request state until they resume. */
  readonly preemptedRequestIds: readonly string[];
}

/** What the engine reports back after computing a SchedulerOutput. */
export interface ExecutorOutput {
  /**
   * Sampled tokens for every scheduled request with samplesToken = true (normally one token each; more
   * are appended in order and the extra ones computed next step). Requests aborted while the step ran may
   * be present or absent; they are ignored. (Their blocks are freed at abort, but no block is handed out
   * again before the next schedule(), so the running step may still write into them.)
   */
  readonly sampledTokenIds: ReadonlyMap<string, readonly number[]>;
  /**
   * Requests the engine finishes with this step (EOS, stop token or string: 'stop'; failures:
   * 'error'). The given reason wins over the scheduler's own length check. Optional: the engine may
   * instead call Scheduler.finish(id, reason) after updateFromOutput.
   */
  readonly finished?: ReadonlyMap<string, FinishReason>;
}

/** One request's result from updateFromOutput, for the engine's output processing. */
export interface RequestStepOutput {
  readonly requestId: string;
  /** Tokens appended to the request's output in this step (empty for a finish without a token). */
  readonly newTokenIds: readonly number[];
  /** Set when the request finished in this update; the scheduler has already freed its blocks. */
  readonly finishReason: FinishReason | null;
  /** Output tokens so far, including newTokenIds. */
  readonly numOutputTokens: number;
}

/** Gauges and counters for metrics. Counters are totals since start; take differences for rates. */
export interface SchedulerStats {
  readonly numRunning: number;
  /** Waiting requests, preempted ones included. */
  readonly numWaiting: number;
  /** Waiting requests that were preempted. */
  readonly numPreemptedWaiting: number;
  /** Fraction of KV blocks held by live requests, 0..1. */
  readonly kvCacheUsage: number;
  /** Tokens looked up in the prefix cache at admissions (each admission's whole sequence; 0 when off). */
  readonly prefixCacheQueries: number;
  /** Of those, tokens found in the cache. */
  readonly prefixCacheHits: number;
  /** Preemptions since start. */
  readonly numPreemptions: number;
  /** Cached blocks whose content was evicted to reuse the block. */
  readonly numPrefixCacheEvictions: number;
}
