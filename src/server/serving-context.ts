// What every route handler needs: the engine client, the main thread's tokenizer and prompt encoder, the
// metrics and the server's options. Built once by startServer (or by tests) and passed to the routes, never global.

import type { AsyncEngine } from '../engine/async/async-engine.js';
import type { EngineInfo } from '../engine/async/protocol.js';
import type { SamplingLimits } from '../sampling/sampling-params.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { Logger } from '../util/logger.js';
import type { CorsPolicy } from './cors.js';
import type { ServerMetrics } from './metrics.js';
import type { PromptEncoder } from './tokenize/prompt-encoder.js';

/** The API behaviour chosen by `duet serve`'s flags. */
export interface ServingOptions {
  /** Names the model is served under; the first one is reported in responses. */
  readonly servedModelNames: readonly string[];
  /** When set, every route but the open probes requires `Authorization: Bearer <apiKey>` (api-key.ts). */
  readonly apiKey: string | null;
  /** Log each request's prompt and parameters, and its end (--enable-log-requests). */
  readonly enableLogRequests: boolean;
  /** Longest prompt text or id list logged with --enable-log-requests (null: all). */
  readonly maxLogLen: number | null;
  /** Cap on logprobs, top_logprobs and prompt_logprobs (--max-logprobs). */
  readonly maxLogprobs: number;
  /** Role of the generated chat message (--response-role). */
  readonly responseRole: string;
  /** Report log-prob tokens as "token_id:<id>" (--return-tokens-as-token-ids). */
  readonly returnTokensAsTokenIds: boolean;
  /** Which web pages may call the server (--allowed-origins, --allowed-methods, ...). */
  readonly cors: CorsPolicy;
  /** Size limits of a request's sampling fields (--max-n, --max-stop-strings, ...). */
  readonly samplingLimits: SamplingLimits;
  /** Most choices (prompts × n) in one request (--max-choices-per-request). */
  readonly maxChoicesPerRequest: number;
  /** A stream whose client reads nothing for this long is closed and its request aborted (ms). */
  readonly streamStallTimeoutMs: number;
}

export interface ServingContext {
  readonly engine: AsyncEngine;
  readonly info: EngineInfo;
  readonly tokenizer: Tokenizer;
  /** Prompt text to token ids, off the HTTP thread when long. */
  readonly encoder: PromptEncoder;
  readonly metrics: ServerMetrics;
  readonly logger: Logger;
  readonly options: ServingOptions;
  /** Duet's version, reported by /version. */
  readonly version: string;
  /** Unix seconds when the server started (the models' `created`). */
  readonly startedAt: number;
}

/** The name reported in responses. */
export function modelName(ctx: ServingContext): string {
  return ctx.options.servedModelNames[0]!;
}
