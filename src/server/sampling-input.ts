// From an API request body to the engine's sampling parameters: OpenAI's and vLLM's field names mapped to
// SamplingParamsInput (ranges are then checked by resolveSamplingParams, naming the field), and the
// features Duet does not have (beam search, structured output, tool-call parsing...) refused with a clear
// 400 instead of being silently ignored.

import type { SamplingParamsInput } from '../sampling/sampling-params.js';
import { BadRequestError } from './errors.js';
import type { ChatCompletionRequest, CompletionRequest } from './openai/requests.js';

type CommonRequest = CompletionRequest | ChatCompletionRequest;

function unsupported(param: string, what: string): never {
  throw new BadRequestError(`${what} is not supported by this server`, param);
}

/** Refuses fields Duet cannot honour, whatever the endpoint. */
export function rejectUnsupported(body: CommonRequest): void {
  if (body.use_beam_search) unsupported('use_beam_search', 'beam search (use_beam_search)');
  if (body.best_of != null && body.best_of !== (body.n ?? 1)) {
    unsupported('best_of', `best_of (${body.best_of}) other than n`);
  }
  if (body.allowed_token_ids != null && body.allowed_token_ids.length > 0) {
    unsupported('allowed_token_ids', 'allowed_token_ids');
  }
  if (body.bad_words != null && body.bad_words.length > 0) unsupported('bad_words', 'bad_words');
  for (const key of [
    'guided_json',
    'guided_regex',
    'guided_choice',
    'guided_grammar',
    'structured_outputs',
  ] as const) {
    if (body[key] != null) unsupported(key, `structured output (${key})`);
  }
  if (body.response_format != null && body.response_format.type !== 'text') {
    unsupported('response_format', `structured output (response_format type "${body.response_format.type}")`);
  }
  if (body.logits_processors != null) unsupported('logits_processors', 'custom logits_processors');
  if (body.priority != null && body.priority !== 0) {
    unsupported('priority', 'priority scheduling (a non-zero priority)');
  }
  if (body.stream_options != null && !body.stream) {
    throw new BadRequestError('Stream options can only be defined when `stream=True`.', 'stream_options');
  }
}

/** The sampling fields both endpoints share. */
function commonInput(body: CommonRequest): SamplingParamsInput {
  const out: { -readonly [K in keyof SamplingParamsInput]: SamplingParamsInput[K] } = {};
  if (body.n != null) out.n = body.n;
  if (body.temperature != null) out.temperature = body.temperature;
  if (body.top_p != null) out.topP = body.top_p;
  if (body.top_k != null) out.topK = body.top_k;
  if (body.min_p != null) out.minP = body.min_p;
  if (body.seed != null) out.seed = body.seed;
  if (body.presence_penalty != null) out.presencePenalty = body.presence_penalty;
  if (body.frequency_penalty != null) out.frequencyPenalty = body.frequency_penalty;
  if (body.repetition_penalty != null) out.repetitionPenalty = body.repetition_penalty;
  if (body.stop != null) out.stop = body.stop;
  if (body.stop_token_ids != null) out.stopTokenIds = body.stop_token_ids;
  if (body.include_stop_str_in_output != null) out.includeStopStrInOutput = body.include_stop_str_in_output;
  if (body.ignore_eos != null) out.ignoreEos = body.ignore_eos;
  if (body.min_tokens != null) out.minTokens = body.min_tokens;
  if (body.skip_special_tokens != null) out.skipSpecialTokens = body.skip_special_tokens;
  if (body.spaces_between_special_tokens != null) {
    out.spacesBetweenSpecialTokens = body.spaces_between_special_tokens;
  }
  if (body.logit_bias != null) out.logitBias = body.logit_bias;
  if (body.prompt_logprobs != null) out.promptLogprobs = body.prompt_logprobs;
  return out;
}

/**
 * Sampling input of a completions request. max_tokens defaults to 16 (vLLM, OpenAI); `logprobs` is the
 * legacy top-k count; with echo and logprobs the prompt's log-probs are returned too.
 */
export function completionSamplingInput(body: CompletionRequest): SamplingParamsInput {
  const out = { ...commonInput(body), maxTokens: body.max_tokens === undefined ? 16 : body.max_tokens };
  if (body.logprobs != null) {
    Object.assign(out, { logprobs: body.logprobs });
    if (body.echo && body.prompt_logprobs == null) Object.assign(out, { promptLogprobs: body.logprobs });
  }
  return out;
}

/**
 * Sampling input of a chat request. max_completion_tokens (or the deprecated max_tokens) defaults to the
 * rest of the context, capped by the model's max_new_tokens default when it has one.
 */
export function chatSamplingInput(
  body: ChatCompletionRequest,
  maxLogprobs: number,
  defaultMaxTokens: number | undefined,
): SamplingParamsInput {
  const top = body.top_logprobs;
  if (top != null) {
    if (!body.logprobs) {
      throw new BadRequestError('when using `top_logprobs`, `logprobs` must be set to true.', 'top_logprobs');
    }
    if (top < 0 || top > maxLogprobs) {
      throw new BadRequestError(`top_logprobs must be in [0, ${maxLogprobs}], got ${top}.`, 'top_logprobs');
    }
  }
  const maxTokens = body.max_completion_tokens ?? body.max_tokens ?? defaultMaxTokens ?? null;
  return {
    ...commonInput(body),
    maxTokens,
    ...(body.logprobs ? { logprobs: top ?? 0 } : {}),
  };
}

/** The tool_choice values a server without a tool-call parser can honour: none (tools only shown). */
export function checkToolChoice(body: ChatCompletionRequest): void {
  const choice = body.tool_choice;
  if (choice === undefined || choice === null || choice === 'none') return;
  if (choice === 'auto') {
    throw new BadRequestError(
      '"auto" tool choice requires a tool-call parser, which this server does not have; ' +
        'use tool_choice "none" (tools are still passed to the chat template)',
      'tool_choice',
    );
  }
  unsupported('tool_choice', 'a required or named tool_choice (it needs structured output)');
}
