// Streaming request functions for OpenAI-compatible servers (vLLM, Duet, any other): POST with
// `stream: true` and `stream_options.include_usage`, read the SSE stream, and time it as vLLM's
// benchmark does. A chunk "carries a token" when its first choice has text (completions `text`, chat
// `delta.content` or `delta.reasoning_content`), even empty text (a token that decodes to nothing yet),
// except chat's role-only opening chunk and an empty closing chunk that only brings finish_reason.
// TTFT is the first such chunk, ITL every gap between such chunks, E2EL the last one; usage gives the
// generated and prompt token counts when the server reports them.

import { postRequest, readAllText, readText } from './http-stream.js';
import {
  emptyOutput,
  monotonicSeconds,
  type RequestFunc,
  type RequestFuncInput,
  type RequestFuncOutput,
  type RequestOptions,
} from './request-func.js';
import { SseParser } from './sse-parser.js';

/** The error text vLLM's benchmark records for a stream without any token. */
export const NO_TOKEN_ERROR =
  'Never received a valid chunk to calculate TTFT.This response will be marked as failed!';

/** The token-bearing content of one parsed chunk, or null when the chunk carries no token. */
type ChunkReader = (choice: Record<string, unknown>, firstSeen: boolean) => string | null;

/** Completions: `choices[0].text`. */
const readCompletionChunk: ChunkReader = (choice, firstSeen) => {
  const text = choice.text;
  if (typeof text !== 'string') return null;
  return isToken(text, choice, firstSeen) ? text : null;
};

/** Chat: `choices[0].delta.content` (or a reasoning model's `reasoning_content` / `reasoning`). */
const readChatChunk: ChunkReader = (choice, firstSeen) => {
  const delta = choice.delta;
  if (delta === null || typeof delta !== 'object') return null;
  const d = delta as Record<string, unknown>;
  const parts = [d.reasoning_content, d.reasoning, d.content].filter(
    (v): v is string => typeof v === 'string',
  );
  if (parts.length === 0) return null;
  const text = parts.join('');
  if (text === '' && typeof d.role === 'string') return null; // the role announcement, not a token
  return isToken(text, choice, firstSeen) ? text : null;
};

function isToken(text: string, choice: Record<string, unknown>, firstSeen: boolean): boolean {
  const finished = choice.finish_reason !== null && choice.finish_reason !== undefined;
  return text !== '' || !finished || !firstSeen;
}

/** The body of a completions request (vLLM's fields). */
export function completionsPayload(input: RequestFuncInput): Record<string, unknown> {
  return {
    model: input.model,
    prompt: input.promptTokenIds !== undefined ? [...input.promptTokenIds] : input.prompt,
    repetition_penalty: 1.0,
    max_tokens: input.outputLen,
    ...(input.logprobs !== undefined ? { logprobs: input.logprobs } : {}),
    stream: true,
    stream_options: { include_usage: true },
    ...(input.ignoreEos ? { ignore_eos: true } : {}),
    ...input.extraBody,
  };
}

/** The body of a chat completions request: the prompt as one user message. */
export function chatPayload(input: RequestFuncInput): Record<string, unknown> {
  return {
    model: input.model,
    messages: [{ role: 'user', content: input.prompt }],
    max_completion_tokens: input.outputLen,
    stream: true,
    stream_options: { include_usage: true },
    ...(input.ignoreEos ? { ignore_eos: true } : {}),
    ...input.extraBody,
  };
}

/** Streams one completions request. */
export const requestOpenAICompletions: RequestFunc = (input, options) =>
  streamRequest(input, completionsPayload(input), readCompletionChunk, options);

/** Streams one chat completions request. */
export const requestOpenAIChatCompletions: RequestFunc = (input, options) =>
  streamRequest(input, chatPayload(input), readChatChunk, options);

async function streamRequest(
  input: RequestFuncInput,
  payload: Record<string, unknown>,
  readChunk: ChunkReader,
  options: RequestOptions = {},
): Promise<RequestFuncOutput> {
  const now = options.now ?? monotonicSeconds;
  const output = emptyOutput(input.promptLen);
  const headers: Record<string, string> = {
    'Content-Type': 'application/json',
    ...(input.requestId !== undefined ? { 'x-request-id': input.requestId } : {}),
    ...input.headers,
  };
  const st = now();
  output.startTime = st;
  let mostRecent = st;
  let firstSeen = false;
  let generated = '';
  try {
    const response = await postRequest(input.apiUrl, headers, JSON.stringify(payload), {
      ...(options.agents !== undefined ? { agents: options.agents } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    if (response.statusCode !== 200) {
      const body = await readAllText(response, 1000).catch(() => '');
      output.error = `HTTP ${response.statusCode} ${response.statusMessage}${body ? `: ${body}` : ''}`;
      return output;
    }
    const parser = new SseParser();
    const handle = (data: string): string | null => {
      if (data === '[DONE]' || data === '') return null;
      let chunk: Record<string, unknown>;
      try {
        chunk = JSON.parse(data) as Record<string, unknown>;
      } catch {
        return `the stream sent a chunk that is not JSON: ${data.slice(0, 200)}`;
      }
      if (chunk.error !== undefined)
        return `the server reported an error mid-stream: ${JSON.stringify(chunk.error)}`;
      const usage = chunk.usage as Record<string, unknown> | null | undefined;
      if (usage !== null && typeof usage === 'object') {
        if (typeof usage.completion_tokens === 'number') output.outputTokens = usage.completion_tokens;
        if (typeof usage.prompt_tokens === 'number') output.promptLen = usage.prompt_tokens;
      }
      const choices = chunk.choices;
      const choice = Array.isArray(choices) ? (choices[0] as Record<string, unknown> | undefined) : undefined;
      if (choice === undefined || choice === null || typeof choice !== 'object') return null;
      const text = readChunk(choice, firstSeen);
      if (text === null) return null;
      const timestamp = now();
      if (!firstSeen) {
        firstSeen = true;
        output.ttft = timestamp - st;
      } else {
        output.itl.push(timestamp - mostRecent);
      }
      mostRecent = timestamp;
      generated += text;
      return null;
    };
    let streamError: string | null = null;
    await readText(response, (text) => {
      for (const data of parser.push(text)) streamError ??= handle(data);
    });
    for (const data of parser.end()) streamError ??= handle(data);
    output.generatedText = generated;
    output.latency = mostRecent - st;
    if (streamError !== null) {
      output.error = streamError;
    } else if (!firstSeen) {
      output.error = NO_TOKEN_ERROR;
    } else {
      output.success = true;
    }
  } catch (e) {
    output.generatedText = generated;
    output.error = describeError(e);
  }
  return output;
}

/** An exception as one line, with its cause when it has one. */
function describeError(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const cause = e.cause instanceof Error ? ` (${e.cause.name}: ${e.cause.message})` : '';
  return `${e.name}: ${e.message}${cause}`;
}
