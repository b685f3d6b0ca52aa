// Request body parsing: wrong types are 400s whose message names the field and what was sent; unknown
// fields are ignored, as vLLM does; sampling fields map to the engine's names with OpenAI's defaults.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { BadRequestError } from '../../src/server/errors.js';
import {
  chatCompletionRequestSchema,
  completionRequestSchema,
  parseBody,
} from '../../src/server/openai/requests.js';
import {
  chatSamplingInput,
  checkToolChoice,
  completionSamplingInput,
  rejectUnsupported,
} from '../../src/server/sampling-input.js';

function badRequest(fn: () => unknown, message: RegExp, param?: string | null): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BadRequestError, String(e));
    assert.match(e.message, message);
    if (param !== undefined) assert.equal(e.param, param);
    return true;
  });
}

describe('parseBody', () => {
  test('a field of the wrong type names the field, the expected type and the value', () => {
    badRequest(
      () => parseBody(completionRequestSchema, { prompt: 'x', temperature: 'hot' }),
      /^invalid temperature: expected number, received string \(got string "hot"\)$/,
      'temperature',
    );
    badRequest(() => parseBody(completionRequestSchema, { prompt: 'x', n: 1.5 }), /invalid n: /, 'n');
    badRequest(
      () => parseBody(chatCompletionRequestSchema, { messages: [{ role: 'user', content: 3 }] }),
      /invalid messages\[0\]\.content/,
      'messages.0.content',
    );
    badRequest(
      () => parseBody(chatCompletionRequestSchema, {}),
      /invalid messages: .*it is missing/,
      'messages',
    );
  });
  test('bodies that are not objects are refused', () => {
    badRequest(() => parseBody(completionRequestSchema, null), /must be a JSON object, got null/);
    badRequest(() => parseBody(completionRequestSchema, 'x'), /must be a JSON object, got string/);
  });
  test('unknown fields are ignored; chat message keys pass through', () => {
    const body = parseBody(chatCompletionRequestSchema, {
      messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 1 }] }],
      whatever: 1,
    });
    assert.equal((body as Record<string, unknown>).whatever, undefined);
    assert.deepEqual(body.messages[0], { role: 'assistant', content: null, tool_calls: [{ id: 1 }] });
  });
});

describe('sampling input', () => {
  test('completions: snake_case to the engine names, max_tokens 16 by default, echo asks prompt log-probs', () => {
    const body = parseBody(completionRequestSchema, {
      prompt: 'x',
      temperature: 0.5,
      top_k: 5,
      stop: '\n',
      ignore_eos: true,
      logprobs: 2,
      echo: true,
    });
    assert.deepEqual(completionSamplingInput(body), {
      temperature: 0.5,
      topK: 5,
      stop: '\n',
      ignoreEos: true,
      maxTokens: 16,
      logprobs: 2,
      promptLogprobs: 2,
    });
    const unlimited = parseBody(completionRequestSchema, { prompt: 'x', max_tokens: null });
    assert.equal(completionSamplingInput(unlimited).maxTokens, null);
  });
  test('chat: max_completion_tokens wins, else max_tokens, else the model default, else the context', () => {
    const base = { messages: [{ role: 'user', content: 'x' }] };
    const parse = (extra: object) => parseBody(chatCompletionRequestSchema, { ...base, ...extra });
    assert.equal(
      chatSamplingInput(parse({ max_completion_tokens: 5, max_tokens: 9 }), 20, undefined).maxTokens,
      5,
    );
    assert.equal(chatSamplingInput(parse({ max_tokens: 9 }), 20, undefined).maxTokens, 9);
    assert.equal(chatSamplingInput(parse({}), 20, 64).maxTokens, 64);
    assert.equal(chatSamplingInput(parse({}), 20, undefined).maxTokens, null);
    assert.equal(chatSamplingInput(parse({ logprobs: true }), 20, undefined).logprobs, 0);
    assert.equal(chatSamplingInput(parse({ logprobs: true, top_logprobs: 3 }), 20, undefined).logprobs, 3);
    badRequest(
      () => chatSamplingInput(parse({ top_logprobs: 3 }), 20, undefined),
      /`logprobs` must be set/,
      'top_logprobs',
    );
    badRequest(
      () => chatSamplingInput(parse({ logprobs: true, top_logprobs: 21 }), 20, undefined),
      /\[0, 20\]/,
    );
  });
  test('features Duet lacks are refused by name', () => {
    const parse = (extra: object) => parseBody(completionRequestSchema, { prompt: 'x', ...extra });
    badRequest(() => rejectUnsupported(parse({ best_of: 3 })), /best_of/, 'best_of');
    rejectUnsupported(parse({ best_of: 2, n: 2 }));
    badRequest(() => rejectUnsupported(parse({ guided_json: {} })), /guided_json/, 'guided_json');
    badRequest(() => rejectUnsupported(parse({ allowed_token_ids: [1] })), /allowed_token_ids/);
    badRequest(() => rejectUnsupported(parse({ priority: 1 })), /priority/);
    rejectUnsupported(parse({ response_format: { type: 'text' } }));
    const chat = (extra: object) => parseBody(chatCompletionRequestSchema, { messages: [], ...extra });
    checkToolChoice(chat({ tool_choice: 'none' }));
    badRequest(() => checkToolChoice(chat({ tool_choice: 'required' })), /tool_choice/, 'tool_choice');
  });
});
