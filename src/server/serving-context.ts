// What every route handler needs: the engine client, the main thread's tokenizer, the metrics and the
// server's options. Built once by startServer (or by tests) and passed to the routes, never global.

import type { AsyncEngine } from '../engine/async/async-engine.js';
import type { EngineInfo } from '../engine/async/protocol.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { Logger } from '../util/logger.js';
import type { ServerMetrics } from './metrics.js';

/** The API behaviour chosen by `duet serve`'s flags. */
export interface ServingOptions {
  /** Names the model is served under; the first one is reported in responses. */
  readonly servedModelNames: readonly string[];
  /** When set, /v1 routes require `Authorization: Bearer <apiKey>`. */
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
  /** CORS origins allowed ("*" for any); empty: no CORS headers. */
  readonly allowedOrigins: readonly string[];
}

export interface ServingContext {
  readonly engine: AsyncEngine;
  readonly info: EngineInfo;
  readonly tokenizer: Tokenizer;
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
