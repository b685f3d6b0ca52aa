// Prompts of API requests: the four shapes a completions `prompt` may take (text, list of texts, token
// ids, list of token-id lists), chat messages rendered with the chat template, and the checks every
// prompt passes before anything is submitted (not empty, ids in the vocabulary, fits the context), worded
// as vLLM words them. Texts are encoded by the PromptEncoder, which refuses what cannot fit before encoding.

import type { EngineInfo } from '../engine/async/protocol.js';
import type { EncodedPrompt } from '../engine/prompt.js';
import type { ChatMessage } from '../tokenizer/chat-template.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { BadRequestError } from './errors.js';
import { describe } from './openai/requests.js';
import type { PromptEncoder } from './tokenize/prompt-encoder.js';

const PROMPT_SHAPES =
  'a string, a list of strings, a list of token ids (integers) or a list of lists of token ids';

function isTokenIdList(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((t) => typeof t === 'number');
}

/** One completions prompt as given, before encoding: a text, or token ids. */
export type PromptSource = { readonly text: string } | { readonly tokenIds: number[] };

/**
 * Checks the shape of a completions `prompt` and lists its prompts (one choice list each, as OpenAI),
 * without encoding anything yet: the caller bounds their number first.
 */
export function completionPromptSources(prompt: unknown): PromptSource[] {
  if (prompt === undefined || prompt === null) {
    throw new BadRequestError(`prompt is required: give ${PROMPT_SHAPES}`, 'prompt');
  }
  if (typeof prompt === 'string') return [{ text: prompt }];
  if (!Array.isArray(prompt)) {
    throw new BadRequestError(`prompt must be ${PROMPT_SHAPES}, got ${describe(prompt)}`, 'prompt');
  }
  if (prompt.length === 0) {
    throw new BadRequestError('prompt is an empty list: give at least one prompt or one token id', 'prompt');
  }
  if (prompt.every((p) => typeof p === 'string')) return (prompt as string[]).map((text) => ({ text }));
  if (isTokenIdList(prompt)) return [{ tokenIds: checkIntegers(prompt, 'prompt') }];
  if (prompt.every(isTokenIdList)) {
    return (prompt as number[][]).map((ids, i) => ({ tokenIds: checkIntegers(ids, `prompt[${i}]`) }));
  }
  throw new BadRequestError(`prompt must be ${PROMPT_SHAPES}; got a list mixing other values`, 'prompt');
}

/** Encodes the text prompts (off the HTTP thread when long; too-long texts refused before encoding). */
export async function encodePrompts(
  sources: readonly PromptSource[],
  encoder: PromptEncoder,
  addSpecialTokens: boolean,
): Promise<EncodedPrompt[]> {
  const out: EncodedPrompt[] = [];
  for (const [i, source] of sources.entries()) {
    if ('tokenIds' in source) {
      out.push({ text: null, tokenIds: source.tokenIds });
      continue;
    }
    const where = sources.length > 1 ? `prompt[${i}]` : 'prompt';
    const tokenIds = await encoder.encode(source.text, addSpecialTokens, 'prompt', where);
    out.push({ text: source.text, tokenIds });
  }
  return out;
}

function checkIntegers(ids: number[], where: string): number[] {
  for (const t of ids) {
    if (!Number.isSafeInteger(t)) {
      throw new BadRequestError(`${where} holds ${t}, which is not a token id (ids are integers)`, 'prompt');
    }
  }
  return ids;
}

/** vLLM's truncate_prompt_tokens: keep the last `k` tokens (k >= 1). */
export function truncatePrompt(
  p: EncodedPrompt,
  k: number | null | undefined,
  maxModelLen: number,
): EncodedPrompt {
  if (k === null || k === undefined) return p;
  if (k < 1 || k > maxModelLen) {
    throw new BadRequestError(
      `truncate_prompt_tokens must be in [1, ${maxModelLen}] (the model's context length), got ${k}`,
      'truncate_prompt_tokens',
    );
  }
  return p.tokenIds.length <= k ? p : { text: null, tokenIds: p.tokenIds.slice(-k) };
}

/**
 * Checks a prompt before submission: not empty, every id in the vocabulary, shorter than the context,
 * and (when given) room for max_tokens. `param` names the request field in messages.
 */
export function checkPrompt(
  p: EncodedPrompt,
  info: Pick<EngineInfo, 'vocabSize' | 'maxModelLen'>,
  param: 'prompt' | 'messages',
  maxTokens: number | null,
  where: string = param,
): void {
  const n = p.tokenIds.length;
  if (n === 0) throw new BadRequestError(`${where} is empty: it must hold at least one token`, param);
  const V = info.vocabSize;
  for (const t of p.tokenIds) {
    if (t < 0 || t >= V) {
      throw new BadRequestError(
        `Token id ${t} is out of vocabulary: ${where} token ids must be in [0, ${V - 1}]`,
        param,
      );
    }
  }
  const L = info.maxModelLen;
  if (n >= L) {
    throw new BadRequestError(
      `This model's maximum context length is ${L} tokens. However, your request has ${n} input tokens. ` +
        'Please reduce the length of the input messages.',
      param,
    );
  }
  if (maxTokens !== null && n + maxTokens > L) {
    throw new BadRequestError(
      `'max_tokens' or 'max_completion_tokens' is too large: ${maxTokens}. This model's maximum context ` +
        `length is ${L} tokens and your request has ${n} input tokens (${maxTokens} > ${L} - ${n}).`,
      'max_tokens',
    );
  }
}

/** What renders a chat request into a prompt. */
export interface ChatRenderOptions {
  readonly addGenerationPrompt: boolean;
  readonly continueFinalMessage: boolean;
  readonly tools: readonly unknown[] | null;
  readonly documents: readonly unknown[] | null;
  readonly chatTemplateKwargs: Readonly<Record<string, unknown>> | null;
}

/**
 * Renders chat messages with the model's template. With continueFinalMessage the last message is left
 * open (rendered without its end-of-turn), so the model continues it, as transformers does.
 */
export function renderChat(
  tokenizer: Tokenizer,
  messages: readonly ChatMessage[],
  o: ChatRenderOptions,
  encoder?: PromptEncoder,
): string {
  if (messages.length === 0) {
    throw new BadRequestError('messages is empty: give at least one message', 'messages');
  }
  // A template copies each message's text into the prompt: refuse a chat too long to fit before rendering.
  encoder?.checkLength(numTextChars(messages), 'messages', "the messages' text");
  if (o.addGenerationPrompt && o.continueFinalMessage) {
    throw new BadRequestError(
      'Cannot set both `continue_final_message` and `add_generation_prompt` to True.',
      'continue_final_message',
    );
  }
  const rendered = tokenizer.applyChatTemplate(messages, {
    addGenerationPrompt: o.addGenerationPrompt,
    tools: o.tools,
    documents: o.documents,
    ...(o.chatTemplateKwargs ? { extra: o.chatTemplateKwargs } : {}),
  });
  encoder?.checkLength(rendered.length, 'messages', 'the rendered chat');
  if (!o.continueFinalMessage) return rendered;
  const last = messages[messages.length - 1]!;
  const content = typeof last.content === 'string' ? last.content.trim() : '';
  const at = content === '' ? -1 : rendered.lastIndexOf(content);
  if (at === -1) {
    throw new BadRequestError(
      'continue_final_message needs a final message with text content that the chat template renders',
      'messages',
    );
  }
  return rendered.slice(0, at + content.length);
}

/** Characters of every string inside `value` (a chat's messages), counted without copying them. */
function numTextChars(value: unknown): number {
  let total = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const v = stack.pop();
    if (typeof v === 'string') total += v.length;
    else if (typeof v === 'object' && v !== null) {
      // A loop, not push(...spread): a list of a million items must not overflow the call stack.
      for (const item of Array.isArray(v) ? v : Object.values(v)) stack.push(item);
    }
  }
  return total;
}
