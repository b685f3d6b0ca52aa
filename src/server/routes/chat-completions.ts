// POST /v1/chat/completions: messages rendered with the model's chat template (add_generation_prompt,
// continue_final_message, tools and documents passed to it), n choices, chat log-probs, and with `stream`
// server-sent `chat.completion.chunk`s: a role delta per choice first, then content deltas, the finish
// reason, an optional usage chunk, and [DONE].

import type { FastifyInstance, FastifyReply } from 'fastify';
import type { EncodedPrompt } from '../../engine/prompt.js';
import {
  checkSamplingLimits,
  resolveSamplingParams,
  type SamplingParams,
} from '../../sampling/sampling-params.js';
import type { ChatMessage } from '../../tokenizer/chat-template.js';
import { BadRequestError, toApiError } from '../errors.js';
import { type ChoiceOutput, collectChoices, nowSeconds, runChoices } from '../generation.js';
import { chatLogprobs, promptLogprobsOut, type TokenText, tokenTextOf } from '../logprobs-format.js';
import { type ChatCompletionRequest, chatCompletionRequestSchema, parseBody } from '../openai/requests.js';
import type { ChatChunkChoice, ChatCompletionChunk, ChatCompletionResponse } from '../openai/responses.js';
import { checkPrompt, renderChat } from '../prompts.js';
import { chatSamplingInput, checkToolChoice, rejectUnsupported } from '../sampling-input.js';
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

interface PreparedChat {
  readonly body: ChatCompletionRequest;
  readonly prompt: EncodedPrompt;
  readonly params: SamplingParams;
  readonly tokenText: TokenText;
  /** Text prepended to each choice's content with echo (the last message, when it has the reply's role). */
  readonly echoText: string;
}

async function prepare(ctx: ServingContext, raw: unknown): Promise<PreparedChat> {
  const body = parseBody(chatCompletionRequestSchema, raw);
  checkModel(ctx, body.model);
  rejectUnsupported(body);
  checkToolChoice(body);
  if (body.chat_template != null) {
    throw new BadRequestError(
      'a chat_template in the request is not allowed; start the server with --chat-template instead',
      'chat_template',
    );
  }
  const { info, tokenizer } = ctx;
  const input = chatSamplingInput(body, ctx.options.maxLogprobs, info.samplingDefaults?.maxTokens);
  // Every size bound before the chat is rendered and encoded.
  checkSamplingLimits(input, ctx.options.samplingLimits);
  checkNumChoices(ctx, 1, input.n ?? 1);
  const messages = body.messages as ChatMessage[];
  const continueFinal = body.continue_final_message === true;
  const text = renderChat(
    tokenizer,
    messages,
    {
      addGenerationPrompt: body.add_generation_prompt ?? !continueFinal,
      continueFinalMessage: continueFinal,
      tools: body.tools ?? null,
      documents: body.documents ?? null,
      chatTemplateKwargs: body.chat_template_kwargs ?? null,
    },
    ctx.encoder,
  );
  // Templates write BOS themselves: no special tokens unless asked (vLLM's default for chat).
  const prompt: EncodedPrompt = {
    text,
    tokenIds: await ctx.encoder.encode(text, body.add_special_tokens ?? false, 'messages'),
  };
  checkPrompt(prompt, info, 'messages', input.maxTokens ?? null);
  const params = resolveSamplingParams(input, info.samplingDefaults, {
    vocabSize: info.vocabSize,
    maxModelLen: info.maxModelLen,
    numPromptTokens: prompt.tokenIds.length,
    maxLogprobs: ctx.options.maxLogprobs,
    limits: ctx.options.samplingLimits,
  });
  const last = messages[messages.length - 1]!;
  const echoText =
    body.echo && last.role === ctx.options.responseRole && typeof last.content === 'string'
      ? last.content
      : '';
  const tokenText = tokenTextOf(
    tokenizer,
    body.return_tokens_as_token_ids ?? ctx.options.returnTokensAsTokenIds,
  );
  return { body, prompt, params, tokenText, echoText };
}

export function registerChatCompletions(app: FastifyInstance, ctx: ServingContext): void {
  app.post('/v1/chat/completions', async (request, reply) => {
    const arrival = nowSeconds();
    const c = await prepare(ctx, request.body);
    const id = newRequestId('chatcmpl');
    const choices = expandChoices([c.prompt], [c.params]);
    ctx.metrics.observeParams(c.params.n, c.params.maxTokens);
    logRequest(ctx, id, [c.prompt], c.params);
    const events = runChoices(ctx, id, choices, arrival, disconnectSignal(reply));
    if (c.body.stream) return streamChat(ctx, c, id, choices.length, events, reply);

    const results = await collectChoices(events, choices.length);
    const numTop = c.body.top_logprobs ?? 0;
    const first = results[0];
    const response: ChatCompletionResponse = {
      id,
      object: 'chat.completion',
      created: unixNow(),
      model: modelName(ctx),
      choices: results.map((r, index) => ({
        index,
        message: {
          role: ctx.options.responseRole,
          content: c.echoText + r.text,
          reasoning_content: null,
          tool_calls: [],
        },
        logprobs:
          c.params.logprobs !== null ? { content: chatLogprobs(r.logprobs, c.tokenText, numTop) } : null,
        finish_reason: r.finishReason,
        stop_reason: r.stopReason,
      })),
      usage: usageOf([c.prompt], numCompletionTokens(results)),
      prompt_logprobs:
        c.params.promptLogprobs !== null && first?.promptLogprobs
          ? promptLogprobsOut(first.promptLogprobs, c.tokenText)
          : null,
      system_fingerprint: null,
    };
    logFinished(ctx, id, `${results.length} choice(s), ${response.usage.completion_tokens} tokens`);
    return response;
  });
}

async function streamChat(
  ctx: ServingContext,
  c: PreparedChat,
  id: string,
  numChoices: number,
  events: AsyncIterable<ChoiceOutput>,
  reply: FastifyReply,
): Promise<void> {
  const created = unixNow();
  const model = modelName(ctx);
  const includeUsage = c.body.stream_options?.include_usage === true;
  const continuousUsage = includeUsage && c.body.stream_options?.continuous_usage_stats === true;
  const numTop = c.body.top_logprobs ?? 0;
  const numTokens = new Array<number>(numChoices).fill(0);
  const sse = new SseWriter(reply.raw, ctx.options.streamStallTimeoutMs, () => logStalled(ctx, id));
  const chunk = (choice: ChatChunkChoice, index: number): ChatCompletionChunk => {
    const out: ChatCompletionChunk = {
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [choice],
    };
    if (includeUsage) out.usage = continuousUsage ? usageOf([c.prompt], numTokens[index]!) : null;
    return out;
  };
  let opened = false;
  const open = async () => {
    if (opened) return;
    opened = true;
    reply.hijack();
    sse.open(reply.getHeaders() as Record<string, string>);
    // The role first, for every choice (with the echoed text, if any), as vLLM.
    for (let index = 0; index < numChoices; index++) {
      const delta = { role: ctx.options.responseRole, content: c.echoText };
      await sse.send(chunk({ index, delta, logprobs: null, finish_reason: null }, index));
    }
  };
  try {
    for await (const { index, output } of events) {
      await open();
      if (output.finishReason === 'error') {
        throw toApiError(new Error(`generation failed: ${output.error ?? 'unknown engine error'}`));
      }
      numTokens[index]! += output.newTokenIds.length;
      const lps = output.newLogprobs ?? [];
      if (output.textDelta === '' && lps.length === 0 && !output.finished) continue;
      const choice: ChatChunkChoice = {
        index,
        delta: output.textDelta === '' && output.finished ? {} : { content: output.textDelta },
        logprobs: c.params.logprobs !== null ? { content: chatLogprobs(lps, c.tokenText, numTop) } : null,
        finish_reason: output.finished ? output.finishReason : null,
        ...(output.finished ? { stop_reason: output.stopReason } : {}),
      };
      const out = chunk(choice, index);
      if (output.promptLogprobs && c.params.promptLogprobs !== null) {
        out.prompt_logprobs = promptLogprobsOut(output.promptLogprobs, c.tokenText);
      }
      await sse.send(out);
    }
    await open();
    const total = numTokens.reduce((a, b) => a + b, 0);
    if (includeUsage) {
      await sse.send({
        id,
        object: 'chat.completion.chunk',
        created,
        model,
        choices: [],
        usage: usageOf([c.prompt], total),
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
