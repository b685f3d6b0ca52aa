// Helpers the API routes share: the model name check, the bound on choices per request, request ids, client-disconnect detection, usage
// counts and request logging.

import { randomUUID } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { FastifyReply } from 'fastify';
import type { EncodedPrompt } from '../../engine/prompt.js';
import { forkSamplingParams, type SamplingParams } from '../../sampling/sampling-params.js';
import { BadRequestError, modelNotFound } from '../errors.js';
import type { ChoiceRequest, ChoiceResult } from '../generation.js';
import type { UsageInfo } from '../openai/responses.js';
import type { ServingContext } from '../serving-context.js';

/** Checks the request's `model` against the served names (absent or null: the served model). */
export function checkModel(ctx: ServingContext, model: string | null | undefined): void {
  if (model == null) return;
  if (!ctx.options.servedModelNames.includes(model)) throw modelNotFound(model);
}

/**
 * Refuses a request whose choices (prompts × n, each its own engine sequence) exceed the server's limit
 * (--max-choices-per-request), before any prompt is encoded.
 */
export function checkNumChoices(ctx: ServingContext, numPrompts: number, n: number): void {
  const max = ctx.options.maxChoicesPerRequest;
  if (numPrompts * n <= max) return;
  const what = numPrompts > 1 ? `${numPrompts} prompts × n = ${n}` : `n = ${n}`;
  throw new BadRequestError(
    `this request asks for ${numPrompts * n} completions (${what}); at most ${max} are allowed in one request ` +
      '(--max-choices-per-request)',
    numPrompts > 1 ? 'prompt' : 'n',
  );
}

/** A random request id with vLLM's prefixes (cmpl-, chatcmpl-). */
export function newRequestId(prefix: string): string {
  return `${prefix}-${randomUUID().replaceAll('-', '')}`;
}

/** Unix seconds, the responses' `created`. */
export function unixNow(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * An AbortSignal that fires when the client goes away before the response is complete (streaming or
 * not), so that its engine requests are aborted and their KV blocks freed at once.
 */
export function disconnectSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  // One listener per choice, and choices are bounded by --max-choices-per-request: no leak to warn about.
  setMaxListeners(0, controller.signal);
  const res = reply.raw;
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  return controller.signal;
}

/** The choices of a request: prompt i, sample j has index i * n + j (OpenAI's order). */
export function expandChoices(
  prompts: readonly EncodedPrompt[],
  params: readonly SamplingParams[],
): ChoiceRequest[] {
  const out: ChoiceRequest[] = [];
  prompts.forEach((prompt, i) => {
    const p = params[i]!;
    for (let j = 0; j < p.n; j++) {
      out.push({ index: i * p.n + j, promptIndex: i, prompt, params: forkSamplingParams(p, j) });
    }
  });
  return out;
}

/** Usage of a finished request: each prompt counted once, completion tokens summed over choices. */
export function usageOf(prompts: readonly EncodedPrompt[], completionTokens: number): UsageInfo {
  const promptTokens = prompts.reduce((sum, p) => sum + p.tokenIds.length, 0);
  return {
    prompt_tokens: promptTokens,
    total_tokens: promptTokens + completionTokens,
    completion_tokens: completionTokens,
    prompt_tokens_details: null,
  };
}

/** Total generated tokens of finished choices. */
export function numCompletionTokens(results: readonly ChoiceResult[]): number {
  return results.reduce((sum, r) => sum + r.tokenIds.length, 0);
}

function clip(text: string, max: number | null): string {
  return max !== null && text.length > max ? `${text.slice(0, max)}...` : text;
}

/** With --enable-log-requests: one line per request with its prompt and parameters. */
export function logRequest(
  ctx: ServingContext,
  requestId: string,
  prompts: readonly EncodedPrompt[],
  params: SamplingParams,
): void {
  if (!ctx.options.enableLogRequests) return;
  const max = ctx.options.maxLogLen;
  prompts.forEach((p, i) => {
    const ids = p.tokenIds.slice(0, max ?? undefined);
    ctx.logger.info(
      `Received request ${requestId}${prompts.length > 1 ? ` (prompt ${i})` : ''}: ` +
        `prompt: ${p.text === null ? 'null' : JSON.stringify(clip(p.text, max))}, ` +
        `params: ${JSON.stringify({ ...params, logitBias: params.logitBias ? Object.fromEntries(params.logitBias) : null })}, ` +
        `prompt_token_ids: [${ids.join(', ')}${max !== null && p.tokenIds.length > max ? ', ...' : ''}]`,
    );
  });
}

/** With --enable-log-requests: one line when a request ends. */
export function logFinished(ctx: ServingContext, requestId: string, how: string): void {
  if (ctx.options.enableLogRequests) ctx.logger.info(`Finished request ${requestId}: ${how}`);
}

/** A stream closed because its client read nothing within --stream-stall-timeout. */
export function logStalled(ctx: ServingContext, requestId: string): void {
  ctx.logger.warn(
    `request ${requestId}: the client read nothing for ${ctx.options.streamStallTimeoutMs / 1000} s ` +
      '(--stream-stall-timeout); its stream is closed and the request aborted',
  );
}
