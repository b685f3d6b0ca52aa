// Request bodies of the OpenAI-compatible API with vLLM's extra fields, as zod schemas: types are checked
// here (a wrong type is a 400 naming the field); ranges are checked where the value is used (sampling
// parameters, prompt lengths), with messages that name the field and the allowed range. Field names stay
// as on the wire (snake_case). Unknown fields are ignored, as vLLM does.

import { z } from 'zod';
import { BadRequestError } from '../errors.js';

const int = z.int();
const num = z.number();
const nullableInt = int.nullish();
const nullableNum = num.nullish();
const nullableBool = z.boolean().nullish();

const streamOptions = z
  .object({
    include_usage: nullableBool,
    /** vLLM extra: usage in every chunk. */
    continuous_usage_stats: nullableBool,
  })
  .nullish();

/** Sampling fields common to completions and chat (OpenAI's and vLLM's extras). */
const samplingFields = {
  model: z.string().nullish(),
  n: nullableInt,
  temperature: nullableNum,
  top_p: nullableNum,
  presence_penalty: nullableNum,
  frequency_penalty: nullableNum,
  logit_bias: z.record(z.string(), num).nullish(),
  seed: nullableInt,
  stop: z.union([z.string(), z.array(z.string())]).nullish(),
  stream: nullableBool,
  stream_options: streamOptions,
  user: z.string().nullish(),
  best_of: nullableInt,
  // vLLM's extra sampling parameters.
  use_beam_search: nullableBool,
  top_k: nullableInt,
  min_p: nullableNum,
  repetition_penalty: nullableNum,
  length_penalty: nullableNum,
  stop_token_ids: z.array(int).nullish(),
  include_stop_str_in_output: nullableBool,
  ignore_eos: nullableBool,
  min_tokens: nullableInt,
  skip_special_tokens: nullableBool,
  spaces_between_special_tokens: nullableBool,
  truncate_prompt_tokens: nullableInt,
  allowed_token_ids: z.array(int).nullish(),
  bad_words: z.array(z.string()).nullish(),
  prompt_logprobs: nullableInt,
  add_special_tokens: nullableBool,
  echo: nullableBool,
  response_format: z.object({ type: z.string() }).loose().nullish(),
  guided_json: z.unknown().optional(),
  guided_regex: z.unknown().optional(),
  guided_choice: z.unknown().optional(),
  guided_grammar: z.unknown().optional(),
  structured_outputs: z.unknown().optional(),
  logits_processors: z.unknown().optional(),
  priority: nullableInt,
  request_id: z.string().nullish(),
  return_tokens_as_token_ids: nullableBool,
};

/** POST /v1/completions. `prompt` is checked by normaliseCompletionPrompt (four accepted shapes). */
export const completionRequestSchema = z.object({
  ...samplingFields,
  prompt: z.unknown().optional(),
  suffix: z.string().nullish(),
  /** Default 16, as vLLM and OpenAI. */
  max_tokens: nullableInt,
  /** Top-k log-probs per generated token (OpenAI legacy; 0..max-logprobs). */
  logprobs: nullableInt,
});
export type CompletionRequest = z.infer<typeof completionRequestSchema>;

const contentPart = z.object({ type: z.string(), text: z.string().optional() }).loose();

/** One chat message; keys besides role and content (name, tool_calls...) reach the template unchanged. */
const chatMessage = z
  .object({
    role: z.string(),
    content: z.union([z.string(), z.array(contentPart)]).nullish(),
  })
  .loose();

/** POST /v1/chat/completions. */
export const chatCompletionRequestSchema = z.object({
  ...samplingFields,
  messages: z.array(chatMessage),
  /** Deprecated by OpenAI in favour of max_completion_tokens; both accepted. Default: the rest of the context. */
  max_tokens: nullableInt,
  max_completion_tokens: nullableInt,
  logprobs: nullableBool,
  top_logprobs: nullableInt,
  tools: z.array(z.unknown()).nullish(),
  tool_choice: z.unknown().optional(),
  parallel_tool_calls: nullableBool,
  // vLLM's chat extras.
  add_generation_prompt: nullableBool,
  continue_final_message: nullableBool,
  documents: z.array(z.unknown()).nullish(),
  chat_template: z.string().nullish(),
  chat_template_kwargs: z.record(z.string(), z.unknown()).nullish(),
});
export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>;

/** POST /tokenize: a text prompt, or chat messages rendered with the chat template. */
export const tokenizeRequestSchema = z.object({
  model: z.string().nullish(),
  prompt: z.string().optional(),
  messages: z.array(chatMessage).optional(),
  add_special_tokens: nullableBool,
  add_generation_prompt: nullableBool,
  continue_final_message: nullableBool,
  chat_template_kwargs: z.record(z.string(), z.unknown()).nullish(),
  tools: z.array(z.unknown()).nullish(),
  return_token_strs: nullableBool,
});
export type TokenizeRequest = z.infer<typeof tokenizeRequestSchema>;

/** POST /detokenize. */
export const detokenizeRequestSchema = z.object({
  model: z.string().nullish(),
  tokens: z.array(int),
});
export type DetokenizeRequest = z.infer<typeof detokenizeRequestSchema>;

/**
 * Parses a request body with `schema`; a body that is not a JSON object, or a field of the wrong type,
 * is a BadRequestError naming the field.
 */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.infer<S> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new BadRequestError(
      `the request body must be a JSON object, got ${body === undefined ? 'no body' : describe(body)}`,
    );
  }
  const result = schema.safeParse(body);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const param = issue.path.map(String).join('.') || null;
  const field = issue.path.length === 0 ? 'request body' : formatPath(issue.path);
  const value = valueAt(body, issue.path);
  const got = value === undefined ? 'it is missing' : `got ${describe(value)}`;
  throw new BadRequestError(
    `invalid ${field}: ${issue.message.replace(/^Invalid input: /, '')} (${got})`,
    param,
  );
}

function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
}

function valueAt(body: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = body;
  for (const p of path) {
    if (typeof v !== 'object' || v === null) return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

/** A short description of a JSON value for messages: its type and, when short, the value. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  return `${typeof value} ${text.length > 40 ? `${text.slice(0, 40)}...` : text}`;
}
