// The typed message protocol between the HTTP process's main thread (the `AsyncEngine` client) and the
// engine worker thread that owns the `LLMEngine`. Only plain data crosses: ids, numbers, strings, arrays
// and plain objects (structured clone). Nothing is shared or mutated across the two threads.
//
//   main → worker: add, abort, stats, shutdown
//   worker → main: log, ready | startFailed, outputs, rejected, stats, fatal
//
// Ordering: messages are handled in the order sent. The worker applies `add` / `abort` between engine
// steps (never during one) and answers `stats` after every message sent before it has been applied, so a
// `stats` reply reflects every earlier abort. Every `add` ends with exactly one `rejected` or with one
// output whose `finished` is true (for an abort too), unless the worker dies first: the client then fails
// the request itself.

import type { EngineConfig } from '../../config/engine-config.js';
import type { FinishReason } from '../../core/request.js';
import type { SchedulerStats } from '../../core/scheduler-output.js';
import type { TokenLogprobs } from '../../sampling/logprobs.js';
import type { SamplingDefaults, SamplingParams } from '../../sampling/sampling-params.js';

/** What the worker is started with (its `workerData`). */
export interface EngineWorkerData {
  readonly config: EngineConfig;
}

/** Facts about the loaded engine that the HTTP side needs, sent once in `ready`. */
export interface EngineInfo {
  /** Longest sequence (prompt + output) the engine accepts. */
  readonly maxModelLen: number;
  /** Size of the model's vocabulary: prompt token ids must be below it. */
  readonly vocabSize: number;
  /** The model's generation_config.json sampling defaults, in the sampler's terms (undefined: none). */
  readonly samplingDefaults: SamplingDefaults | undefined;
  /** The model folder (the embedded default's folder when `isEmbedded`). */
  readonly modelDir: string;
  readonly isEmbedded: boolean;
  /** Whether the weights are seeded random ones. */
  readonly isDummy: boolean;
  /** e.g. DeepseekV3ForCausalLM. */
  readonly architecture: string;
  /** Kernel backend name, e.g. wasm-relaxed-simd x2. */
  readonly kernelsName: string;
  /** KV cache usage with no request running (0 unless the engine keeps blocks for itself). */
  readonly idleKvCacheUsage: number;
  /** The worker thread's id (node:worker_threads threadId): the engine never runs on the HTTP thread. */
  readonly engineThreadId: number;
}

/** Per-request timings measured on the worker's clock, in seconds (vLLM's request phases). */
export interface RequestTimings {
  /** Arrival in the engine → first scheduled (WAITING phase). */
  readonly queueTime: number;
  /** First scheduled → first token (PREFILL phase). */
  readonly prefillTime: number;
  /** First token → finish (DECODE phase); 0 when no token was generated. */
  readonly decodeTime: number;
  /** First scheduled → finish (RUNNING phase). */
  readonly inferenceTime: number;
}

/** One request's progress in one engine step, as plain data (the cross-thread form of RequestUpdate). */
export interface EngineOutput {
  readonly requestId: string;
  /** Tokens generated in this step. */
  readonly newTokenIds: readonly number[];
  /** Text that became final in this step (stop-string safe). */
  readonly textDelta: string;
  /** Log-probs of the new tokens, when asked; else null. */
  readonly newLogprobs: readonly TokenLogprobs[] | null;
  /** Output tokens so far, newTokenIds included. */
  readonly numOutputTokens: number;
  readonly numPromptTokens: number;
  /**
   * Prompt log-probs (index 0 is null), sent once with the request's first output when they were asked;
   * otherwise undefined.
   */
  readonly promptLogprobs?: readonly (TokenLogprobs | null)[];
  readonly finished: boolean;
  readonly finishReason: FinishReason | null;
  /** The stop string or stop token id that ended the output; null otherwise. */
  readonly stopReason: string | number | null;
  /** Why the request failed (finishReason 'error'); else null. */
  readonly error: string | null;
  /** On the finished output only: the full output text and the request's phase timings. */
  readonly final?: {
    readonly outputText: string;
    readonly cumulativeLogprob: number | null;
    readonly timings: RequestTimings;
  };
}

/** A snapshot of the engine's gauges and counters (read at /metrics scrape time). */
export interface EngineStatsSnapshot extends SchedulerStats {
  /** Prompt tokens of every accepted request, generated tokens, finished requests, engine steps. */
  readonly promptTokens: number;
  readonly generationTokens: number;
  readonly numFinished: number;
  readonly numSteps: number;
  /**
   * Dual-batch overlap: forward steps, those split into two micro-batches, and ms their collectives ran
   * under compute.
   */
  readonly dboSteps: number;
  readonly dboSplitSteps: number;
  readonly dboOverlapMs: number;
}

/** Messages from the main thread to the engine worker. */
export type ToWorkerMessage =
  /** Submit a request (params already resolved and validated, n = 1). */
  | {
      readonly type: 'add';
      readonly requestId: string;
      readonly promptTokenIds: readonly number[];
      readonly params: SamplingParams;
    }
  /** Cancel requests; their KV blocks are freed at once. Unknown or finished ids are ignored. */
  | { readonly type: 'abort'; readonly requestIds: readonly string[] }
  /** Ask for a stats snapshot; answered with `stats` carrying the same queryId. */
  | { readonly type: 'stats'; readonly queryId: number }
  /** Abort everything, release the kernels and exit. */
  | { readonly type: 'shutdown' };

/** Messages from the engine worker to the main thread. */
export type FromWorkerMessage =
  /** A progress or diagnostic line from the worker (loading weights, building kernels...). */
  | { readonly type: 'log'; readonly level: 'debug' | 'info' | 'warn' | 'error'; readonly message: string }
  /** The engine is loaded and accepts requests. */
  | { readonly type: 'ready'; readonly info: EngineInfo }
  /** The engine could not be built (bad model folder, out of memory...). The worker exits next. */
  | { readonly type: 'startFailed'; readonly message: string; readonly errorName: string }
  /** Every output of one engine step (or of an abort), in order. */
  | { readonly type: 'outputs'; readonly outputs: readonly EngineOutput[] }
  /**
   * An `add` the engine refused: invalid input (empty prompt, id out of vocabulary, too long: HTTP 400),
   * or, when `isInvalidInput` is false, a fault of the engine (HTTP 500).
   */
  | {
      readonly type: 'rejected';
      readonly requestId: string;
      readonly message: string;
      /** The request field at fault (snake_case), when known. */
      readonly param: string | null;
      readonly isInvalidInput: boolean;
    }
  | { readonly type: 'stats'; readonly queryId: number; readonly stats: EngineStatsSnapshot }
  /** The engine failed beyond one request; the worker exits next and every live request has failed. */
  | { readonly type: 'fatal'; readonly message: string };
