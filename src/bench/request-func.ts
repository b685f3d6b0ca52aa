// The contract between the benchmark loop and the per-backend request functions: what one request sends
// (RequestFuncInput) and what it measured (RequestFuncOutput), with vLLM's field meanings. Times are in
// seconds on a monotonic clock.

import type { ClientAgents } from './http-stream.js';

/** One request to send. */
export interface RequestFuncInput {
  /** Full URL of the endpoint, e.g. http://127.0.0.1:8000/v1/completions. */
  readonly apiUrl: string;
  /** The `model` field of the request. */
  readonly model: string;
  /** Prompt text (completions `prompt`, or the chat user message). */
  readonly prompt: string;
  /** When set, completions send these ids as `prompt` instead of the text. */
  readonly promptTokenIds?: readonly number[];
  /** The dataset's prompt length (replaced by the server's usage.prompt_tokens when it reports one). */
  readonly promptLen: number;
  /** Tokens to ask for (`max_tokens`, or `max_completion_tokens` for chat). */
  readonly outputLen: number;
  /** Send `ignore_eos: true`. */
  readonly ignoreEos: boolean;
  /** `logprobs` (completions), when set. */
  readonly logprobs?: number;
  /** More body fields (sampling parameters, --extra-body); they override the defaults. */
  readonly extraBody?: Readonly<Record<string, unknown>>;
  /** More headers (Authorization, --header). */
  readonly headers?: Readonly<Record<string, string>>;
  /** Sent as `x-request-id`. */
  readonly requestId?: string;
}

/** What one request measured. */
export interface RequestFuncOutput {
  /** The generated text, concatenated from the stream. */
  generatedText: string;
  success: boolean;
  /** End-to-end latency: from sending to the last chunk that carried a token (s). */
  latency: number;
  /** Generated tokens as usage.completion_tokens reports them; 0 when the server did not say. */
  outputTokens: number;
  /** Time to first token (s). */
  ttft: number;
  /** Gaps between consecutive token-carrying chunks (s). */
  itl: number[];
  /** Prompt tokens: usage.prompt_tokens when reported, else the dataset's count. */
  promptLen: number;
  /** Why the request failed ('' on success). */
  error: string;
  /** When the request was sent, on the benchmark's clock (s). */
  startTime: number;
  /** Time spent waiting for a --max-concurrency slot before sending (s). */
  clientQueueTime: number;
}

/** How a request function reaches the server. */
export interface RequestOptions {
  /** Keep-alive connection pools (http-stream.ts); Node's global agents when absent. */
  readonly agents?: ClientAgents;
  /** Seconds on a monotonic clock (default performance.now() / 1000). */
  readonly now?: () => number;
  /** Aborting it cancels the request as a client that goes away does (the soak test's cancellations). */
  readonly signal?: AbortSignal;
}

/** Sends one request and measures it; never throws (failures are reported in the output). */
export type RequestFunc = (input: RequestFuncInput, options?: RequestOptions) => Promise<RequestFuncOutput>;

/** A fresh, failed-until-proven-otherwise output. */
export function emptyOutput(promptLen: number): RequestFuncOutput {
  return {
    generatedText: '',
    success: false,
    latency: 0,
    outputTokens: 0,
    ttft: 0,
    itl: [],
    promptLen,
    error: '',
    startTime: 0,
    clientQueueTime: 0,
  };
}

/** The monotonic clock of the benchmark, in seconds. */
export function monotonicSeconds(): number {
  return performance.now() / 1000;
}
