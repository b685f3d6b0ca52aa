// POST /v1/completions: OpenAI's (legacy) completions with vLLM's extras. Prompts may be text, a list of
// texts, token ids or a list of token-id lists; each prompt gets n choices (index prompt * n + j). With
// `stream` the reply is server-sent events, one choice per chunk, then a usage chunk when
// stream_options.include_usage is set, then [DONE].

import type { FastifyInstance, FastifyReply } from 'fastify';
import type { EncodedPrompt } from '../../engine/prompt.js';
import {
  checkSamplingLimits,
  resolveSamplingParams,
  type SamplingParams,
} from '../../sampling/sampling-params.js';
import { BadRequestError, toApiError } from '../errors.js';
import {
  type ChoiceOutput,
  type ChoiceResult,
  collectChoices,
  nowSeconds,
  runChoices,
} from '../generation.js';
import {
  completionLogprobs,
  endOffset,
  type PositionEntry,
  promptLogprobsOut,
  type TokenText,
  tokenTextOf,
} from '../logprobs-format.js';
import { type CompletionRequest, completionRequestSchema, parseBody } from '../openai/requests.js';
import type {
  CompletionChoice,
  CompletionChunk,
  CompletionLogprobs,
  CompletionResponse,
} from '../openai/responses.js';
import { checkPrompt, completionPromptSources, encodePrompts, truncatePrompt } from '../prompts.js';
import { completionSamplingInput, rejectUnsupported } from '../sampling-input.js';
import { modelName, type ServingContext } from '../serving-context.js';
import { SseWriter } from '../sse.js';
import {
  checkModel,
  checkNumChoices,
  disconnectSignal,
  expandChoices,
  logFinished,
  logRequest,
  logStalled,
  newRequestId,
  numCompletionTokens,
  unixNow,
  usageOf,
} from './common.js';

/** A validated completions request, ready to run. */
interface PreparedCompletion {
  readonly body: CompletionRequest;
  readonly prompts: EncodedPrompt[];
  readonly params: SamplingParams[];
  readonly tokenText: TokenText;
}

async function prepare(ctx: ServingContext, raw: unknown): Promise<PreparedCompletion> {
  const body = parseBody(completionRequestSchema, raw);
  checkModel(ctx, body.model);
  rejectUnsupported(body);
  if (body.suffix != null) throw new BadRequestError('suffix is not currently supported', 'suffix');
  const { info, tokenizer } = ctx;
  const input = completionSamplingInput(body);
  // Every size bound before any prompt is encoded.
  checkSamplingLimits(input, ctx.options.samplingLimits);
  const sources = completionPromptSources(body.prompt);
  checkNumChoices(ctx, sources.length, input.n ?? 1);
  const encoded = await encodePrompts(sources, ctx.encoder, body.add_special_tokens ?? true);
  const prompts = encoded.map((p) => truncatePrompt(p, body.truncate_prompt_tokens, info.maxModelLen));
  prompts.forEach((p, i) => {
    checkPrompt(p, info, 'prompt', input.maxTokens ?? null, prompts.length > 1 ? `prompt[${i}]` : 'prompt');
  });
  const params = prompts.map((p) =>
    resolveSamplingParams(input, info.samplingDefaults, {
      vocabSize: info.vocabSize,
      maxModelLen: info.maxModelLen,
      numPromptTokens: p.tokenIds.length,
      maxLogprobs: ctx.options.maxLogprobs,
      limits: ctx.options.samplingLimits,
    }),
  );
  const tokenText = tokenTextOf(
    tokenizer,
    body.return_tokens_as_token_ids ?? ctx.options.returnTokensAsTokenIds,
  );
  return { body, prompts, params, tokenText };
}

/** The echoed prompt text: as given, or the token ids decoded. */
function promptText(ctx: ServingContext, p: EncodedPrompt, params: SamplingParams): string {
  return p.text ?? ctx.tokenizer.decode(p.tokenIds, { skipSpecialTokens: params.skipSpecialTokens });
}

/** Legacy log-prob positions of the echoed prompt (the first has none). */
function promptPositions(
  p: EncodedPrompt,
  promptLogprobs: PositionEntry['logprobs'][] | null,
): PositionEntry[] {
  return p.tokenIds.map((tokenId, i) => ({ tokenId, logprobs: promptLogprobs?.[i] ?? null }));
}

export function registerCompletions(app: FastifyInstance, ctx: ServingContext): void {
  app.post('/v1/completions', async (request, reply) => {
    const arrival = nowSeconds();
    const c = await prepare(ctx, request.body);
    const id = newRequestId('cmpl');
    const choices = expandChoices(c.prompts, c.params);
    ctx.metrics.observeParams(c.params[0]!.n, c.params[0]!.maxTokens);
    logRequest(ctx, id, c.prompts, c.params[0]!);
    const events = runChoices(ctx, id, choices, arrival, disconnectSignal(reply));
    if (c.body.stream) return streamCompletion(ctx, c, id, choices.length, events, reply);

    const results = await collectChoices(events, choices.length);
    const response: CompletionResponse = {
      id,
      object: 'text_completion',
      created: unixNow(),
      model: modelName(ctx),
      choices: results.map((r, index) => completionChoice(ctx, c, index, r)),
      usage: usageOf(c.prompts, numCompletionTokens(results)),
      system_fingerprint: null,
    };
    logFinished(ctx, id, `${results.length} choice(s), ${response.usage!.completion_tokens} tokens`);
    return response;
  });
}

function completionChoice(
  ctx: ServingContext,
  c: PreparedCompletion,
  index: number,
  r: ChoiceResult,
): CompletionChoice {
  const promptIndex = Math.floor(index / c.params[0]!.n);
  const prompt = c.prompts[promptIndex]!;
  const params = c.params[promptIndex]!;
  const echo = c.body.echo === true;
  let logprobs: CompletionLogprobs | null = null;
  if (params.logprobs !== null) {
    const positions = [
      ...(echo ? promptPositions(prompt, r.promptLogprobs ? [...r.promptLogprobs] : null) : []),
      ...r.logprobs.map((lp) => ({ tokenId: lp.tokenId, logprobs: lp })),
    ];
    logprobs = completionLogprobs(positions, c.tokenText, 0);
  }
  return {
    index,
    text: (echo ? promptText(ctx, prompt, params) : '') + r.text,
    logprobs,
    finish_reason: r.finishReason,
    stop_reason: r.stopReason,
    prompt_logprobs:
      c.body.prompt_logprobs != null && r.promptLogprobs
        ? promptLogprobsOut(r.promptLogprobs, c.tokenText)
        : null,
  };
}

async function streamCompletion(
  ctx: ServingContext,
  c: PreparedCompletion,
  id: string,
  numChoices: number,
  events: AsyncIterable<ChoiceOutput>,
  reply: FastifyReply,
): Promise<void> {
  const created = unixNow();
  const model = modelName(ctx);
  const n = c.params[0]!.n;
  const includeUsage = c.body.stream_options?.include_usage === true;
  const continuousUsage = includeUsage && c.body.stream_options?.continuous_usage_stats === true;
  const echoed = new Array<boolean>(numChoices).fill(false);
  const offsets = new Array<number>(numChoices).fill(0);
  const numTokens = new Array<number>(numChoices).fill(0);
  const sse = new SseWriter(reply.raw, ctx.options.streamStallTimeoutMs, () => logStalled(ctx, id));
  let opened = false;
  const open = () => {
    if (opened) return;
    opened = true;
    reply.hijack();
    sse.open(reply.getHeaders() as Record<string, string>);
  };
  try {
    for await (const { index, output } of events) {
      open();
      const promptIndex = Math.floor(index / n);
      const prompt = c.prompts[promptIndex]!;
      const params = c.params[promptIndex]!;
      if (output.finishReason === 'error') {
        throw toApiError(new Error(`generation failed: ${output.error ?? 'unknown engine error'}`));
      }
      numTokens[index]! += output.newTokenIds.length;
      let text = output.textDelta;
      const positions: PositionEntry[] = [];
      if (c.body.echo && !echoed[index]) {
        echoed[index] = true;
        text = promptText(ctx, prompt, params) + text;
        if (params.logprobs !== null) {
          positions.push(
            ...promptPositions(prompt, output.promptLogprobs ? [...output.promptLogprobs] : null),
          );
        }
      }
      for (const lp of output.newLogprobs ?? []) positions.push({ tokenId: lp.tokenId, logprobs: lp });
      if (text === '' && positions.length === 0 && !output.finished) continue;
      let logprobs: CompletionLogprobs | null = null;
      if (params.logprobs !== null) {
        logprobs = completionLogprobs(positions, c.tokenText, offsets[index]!);
        offsets[index] = endOffset(logprobs, offsets[index]!);
      }
      const choice: CompletionChoice = {
        index,
        text,
        logprobs,
        finish_reason: output.finished ? output.finishReason : null,
        stop_reason: output.finished ? output.stopReason : null,
        ...(output.promptLogprobs && c.body.prompt_logprobs != null
          ? { prompt_logprobs: promptLogprobsOut(output.promptLogprobs, c.tokenText) }
          : {}),
      };
      const chunk: CompletionChunk = { id, object: 'text_completion', created, model, choices: [choice] };
      if (includeUsage) chunk.usage = continuousUsage ? usageOf([prompt], numTokens[index]!) : null;
      await sse.send(chunk);
    }
    open();
    const total = numTokens.reduce((a, b) => a + b, 0);
    if (includeUsage) {
      await sse.send({
        id,
        object: 'text_completion',
        created,
        model,
        choices: [],
        usage: usageOf(c.prompts, total),
      });
    }
    await sse.done();
    logFinished(ctx, id, `${numChoices} choice(s) streamed, ${total} tokens`);
  } catch (e) {
    if (!opened) throw e;
    const err = toApiError(e);
    if (err.status >= 500) ctx.logger.error(`request ${id} failed: ${err.message}`);
    await sse.send(err.toBody());
    await sse.done();
  }
}
