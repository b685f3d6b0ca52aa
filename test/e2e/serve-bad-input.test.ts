// Bad input to `duet serve`: every case gets its HTTP status (400 invalid input, 401 no API key, 404 unknown
// model or route), vLLM's error shape, and a message naming the problem; none produces a 5xx, and the
// server stays healthy and keeps serving. The KV cache is cut to 8 blocks of 16 tokens so that the
// engine's own refusal (a request that could never fit the cache) is exercised too.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadGolden } from '../helpers/golden.js';
import { MODEL, postJson, startTestServer, type TestServer } from './serve-harness.js';

const API_KEY = 'sk-duet-test';
const AUTH = { authorization: `Bearer ${API_KEY}` };
const golden = loadGolden('v2-lite-tiny');

interface Case {
  readonly name: string;
  readonly path: string;
  readonly body: unknown;
  readonly status: number;
  /** What the message must say. */
  readonly message: RegExp;
  /** The field the error names (undefined: not checked). */
  readonly param?: string | null;
  readonly headers?: Record<string, string>;
}

const longPrompt = Array.from({ length: 300 }, (_, i) => 1 + (i % 400));
const chat = (extra: Record<string, unknown>) => ({
  model: MODEL,
  messages: [{ role: 'user', content: 'hi' }],
  ...extra,
});

const CASES: readonly Case[] = [
  {
    name: 'malformed JSON',
    path: '/v1/completions',
    body: '{"prompt": "hi",',
    status: 400,
    message: /not valid JSON/,
  },
  {
    name: 'a body that is a list',
    path: '/v1/completions',
    body: [1, 2],
    status: 400,
    message: /must be a JSON object/,
  },
  {
    name: 'no body',
    path: '/v1/completions',
    body: '',
    status: 400,
    message: /must be a JSON object, got no body/,
  },
  {
    name: 'temperature of the wrong type',
    path: '/v1/completions',
    body: { prompt: 'hi', temperature: 'hot' },
    status: 400,
    message: /temperature: expected number/,
    param: 'temperature',
  },
  {
    name: 'max_tokens not an integer',
    path: '/v1/completions',
    body: { prompt: 'hi', max_tokens: 1.5 },
    status: 400,
    message: /max_tokens/,
    param: 'max_tokens',
  },
  {
    name: 'negative temperature',
    path: '/v1/completions',
    body: { prompt: 'hi', temperature: -1 },
    status: 400,
    message: /temperature must be non-negative, got -1/,
    param: 'temperature',
  },
  {
    name: 'top_p above 1',
    path: '/v1/completions',
    body: { prompt: 'hi', top_p: 2 },
    status: 400,
    message: /top_p must be in \(0, 1\]/,
    param: 'top_p',
  },
  {
    name: 'n = 0',
    path: '/v1/completions',
    body: { prompt: 'hi', n: 0 },
    status: 400,
    message: /n must be at least 1/,
    param: 'n',
  },
  {
    name: 'max_tokens = 0',
    path: '/v1/completions',
    body: { prompt: 'hi', max_tokens: 0 },
    status: 400,
    message: /max_tokens must be at least 1/,
    param: 'max_tokens',
  },
  {
    name: 'too many logprobs',
    path: '/v1/completions',
    body: { prompt: 'hi', logprobs: 50 },
    status: 400,
    message: /logprobs of 50, which is greater than max allowed: 20/,
    param: 'logprobs',
  },
  {
    name: 'prompt longer than the context',
    path: '/v1/completions',
    body: { prompt: longPrompt },
    status: 400,
    message:
      /maximum context length is 256 tokens\. However, your request has 300 input tokens\. Please reduce/,
    param: 'prompt',
  },
  {
    name: 'prompt plus max_tokens longer than the context',
    path: '/v1/completions',
    body: { prompt: [1, 2, 3], max_tokens: 300 },
    status: 400,
    message: /'max_tokens' or 'max_completion_tokens' is too large: 300\. .*has 3 input tokens/,
    param: 'max_tokens',
  },
  {
    name: 'token id out of vocabulary',
    path: '/v1/completions',
    body: { prompt: [1, 512] },
    status: 400,
    message: /Token id 512 is out of vocabulary.*\[0, 511\]/,
    param: 'prompt',
  },
  {
    name: 'negative token id',
    path: '/v1/completions',
    body: { prompt: [-1] },
    status: 400,
    message: /Token id -1 is out of vocabulary/,
  },
  {
    name: 'empty prompt list',
    path: '/v1/completions',
    body: { prompt: [] },
    status: 400,
    message: /prompt is an empty list/,
  },
  {
    name: 'one empty prompt of several',
    path: '/v1/completions',
    body: { prompt: [[1, 2], []] },
    status: 400,
    message: /prompt\[1\] is empty/,
  },
  {
    name: 'no prompt',
    path: '/v1/completions',
    body: { model: MODEL },
    status: 400,
    message: /prompt is required/,
    param: 'prompt',
  },
  {
    name: 'prompt of the wrong shape',
    path: '/v1/completions',
    body: { prompt: { text: 'hi' } },
    status: 400,
    message: /prompt must be a string, a list of strings/,
  },
  {
    name: 'suffix',
    path: '/v1/completions',
    body: { prompt: 'hi', suffix: '!' },
    status: 400,
    message: /suffix is not currently supported/,
    param: 'suffix',
  },
  {
    name: 'unknown model',
    path: '/v1/completions',
    body: { model: 'gpt-9', prompt: 'hi' },
    status: 404,
    message: /The model `gpt-9` does not exist/,
    param: 'model',
  },
  {
    name: 'stop token id out of vocabulary',
    path: '/v1/completions',
    body: { prompt: 'hi', stop_token_ids: [9999] },
    status: 400,
    message: /stop_token_ids contains token id 9999, which is out of vocabulary/,
    param: 'stop_token_ids',
  },
  {
    name: 'stream_options without stream',
    path: '/v1/completions',
    body: { prompt: 'hi', stream_options: { include_usage: true } },
    status: 400,
    message: /Stream options can only be defined when `stream=True`/,
  },
  {
    name: 'beam search',
    path: '/v1/completions',
    body: { prompt: 'hi', use_beam_search: true },
    status: 400,
    message: /beam search .*not supported/,
  },
  {
    name: 'structured output',
    path: '/v1/completions',
    body: { prompt: 'hi', response_format: { type: 'json_object' } },
    status: 400,
    message: /structured output .*not supported/,
    param: 'response_format',
  },
  {
    name: 'a streaming request with an id out of vocabulary fails before streaming',
    path: '/v1/completions',
    body: { prompt: [700], stream: true },
    status: 400,
    message: /Token id 700 is out of vocabulary/,
  },
  {
    name: 'a request the whole KV cache could never hold (refused by the engine)',
    path: '/v1/completions',
    body: { prompt: golden.prompts.find((p) => p.ids.length >= 150)!.ids, max_tokens: 16 },
    status: 400,
    message: /blocks .*whole cache holds 8 blocks/,
  },
  {
    name: 'chat without messages',
    path: '/v1/chat/completions',
    body: { model: MODEL },
    status: 400,
    message: /messages/,
    param: 'messages',
  },
  {
    name: 'chat with no message',
    path: '/v1/chat/completions',
    body: chat({ messages: [] }),
    status: 400,
    message: /messages is empty/,
  },
  {
    name: 'chat message without a role',
    path: '/v1/chat/completions',
    body: chat({ messages: [{ content: 'hi' }] }),
    status: 400,
    message: /messages\[0\]\.role/,
    param: 'messages.0.role',
  },
  {
    name: 'top_logprobs without logprobs',
    path: '/v1/chat/completions',
    body: chat({ top_logprobs: 2 }),
    status: 400,
    message: /`logprobs` must be set to true/,
    param: 'top_logprobs',
  },
  {
    name: 'too many top_logprobs',
    path: '/v1/chat/completions',
    body: chat({ logprobs: true, top_logprobs: 50 }),
    status: 400,
    message: /top_logprobs must be in \[0, 20\]/,
  },
  {
    name: 'auto tool choice',
    path: '/v1/chat/completions',
    body: chat({ tool_choice: 'auto' }),
    status: 400,
    message: /tool-call parser/,
  },
  {
    name: 'a chat template in the request',
    path: '/v1/chat/completions',
    body: chat({ chat_template: '{{ 1 }}' }),
    status: 400,
    message: /--chat-template/,
  },
  {
    name: 'continue_final_message with add_generation_prompt',
    path: '/v1/chat/completions',
    body: chat({ continue_final_message: true, add_generation_prompt: true }),
    status: 400,
    message: /Cannot set both `continue_final_message` and `add_generation_prompt`/,
  },
  {
    name: 'an image content part',
    path: '/v1/chat/completions',
    body: chat({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }),
    status: 400,
    message: /only 'text' parts are supported/,
  },
  {
    name: 'chat longer than the context',
    path: '/v1/chat/completions',
    body: chat({ messages: [{ role: 'user', content: 'word '.repeat(300) }] }),
    status: 400,
    message: /maximum context length is 256 tokens\. However, your request has \d+ input tokens/,
    param: 'messages',
  },
  {
    name: 'no API key',
    path: '/v1/completions',
    body: { prompt: 'hi' },
    status: 401,
    message: /API key/,
    headers: {},
  },
  {
    name: 'a wrong API key',
    path: '/v1/chat/completions',
    body: chat({}),
    status: 401,
    message: /API key/,
    headers: { authorization: 'Bearer nope' },
  },
  {
    name: 'unknown route',
    path: '/v1/engines',
    body: {},
    status: 404,
    message: /no route POST \/v1\/engines/,
  },
  {
    name: 'tokenize without prompt or messages',
    path: '/tokenize',
    body: {},
    status: 400,
    message: /either prompt .* or messages/,
  },
  {
    name: 'detokenize an id out of vocabulary',
    path: '/detokenize',
    body: { tokens: [1, 5000] },
    status: 400,
    message: /token id 5000 is not in the vocabulary/,
  },
];

describe('duet serve: bad input', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ apiKey: API_KEY }, { numGpuBlocksOverride: 8, kvCacheMemory: undefined });
  });
  after(async () => {
    await t.server.close();
  });

  for (const c of CASES) {
    test(`${c.name}: ${c.status}`, async () => {
      const r = await postJson(`${t.baseUrl}${c.path}`, c.body, c.headers ?? AUTH);
      assert.equal(r.status, c.status, JSON.stringify(r.json));
      const err = r.json.error;
      assert.equal(typeof err.message, 'string');
      assert.match(err.message, c.message);
      assert.equal(err.code, c.status);
      assert.equal(
        err.type,
        { 400: 'BadRequestError', 401: 'AuthenticationError', 404: 'NotFoundError' }[c.status],
      );
      if (c.param !== undefined) assert.equal(err.param, c.param);
    });
  }

  test('the openai client surfaces the error with its status and message', async () => {
    await assert.rejects(
      t.client.completions.create({ model: MODEL, prompt: [1, 600], max_tokens: 2 }),
      (e: { status?: number; message?: string }) =>
        e.status === 400 && /Token id 600 is out of vocabulary/.test(e.message ?? ''),
    );
  });

  test('afterwards the server is healthy and serves normally; /health needs no key, /metrics does', async () => {
    assert.equal((await fetch(`${t.baseUrl}/health`)).status, 200);
    assert.equal((await fetch(`${t.baseUrl}/metrics`)).status, 401);
    assert.equal((await fetch(`${t.baseUrl}/metrics`, { headers: AUTH })).status, 200);
    const r = await t.client.completions.create({
      model: MODEL,
      prompt: [500, 10, 20],
      max_tokens: 4,
      temperature: 0,
    });
    assert.equal(r.usage!.completion_tokens, 4);
    const models = await fetch(`${t.baseUrl}/v1/models`, { headers: AUTH });
    assert.equal(models.status, 200);
    const stats = await t.server.engine.stats();
    assert.equal(stats.numRunning + stats.numWaiting, 0);
  });
});
