// Prompt handling of the server without a model: the four completions prompt shapes, the checks before
// submission with vLLM's wording, truncate_prompt_tokens, and chat rendering with continue_final_message.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { engineConfigFromLLMOptions } from '../../src/engine/llm.js';
import { BadRequestError } from '../../src/server/errors.js';
import {
  checkPrompt,
  completionPromptSources,
  encodePrompts,
  renderChat,
  truncatePrompt,
} from '../../src/server/prompts.js';
import { maxCharsPerToken, PromptEncoder } from '../../src/server/tokenize/prompt-encoder.js';
import { loadTokenizer } from '../../src/tokenizer/tokenizer.js';
import { fixtureDir } from '../helpers/golden.js';

const tokenizer = loadTokenizer(fixtureDir('v2-lite-tiny'), {
  chatTemplate:
    '{% for m in messages %}<{{ m.role }}>{{ m.content }}</s>{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}',
});
const info = { vocabSize: 512, maxModelLen: 16 };

function rejects(fn: () => unknown, message: RegExp, param?: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof BadRequestError, String(e));
    assert.match(e.message, message);
    if (param !== undefined) assert.equal(e.param, param);
    return true;
  });
}

describe('completionPromptSources and encodePrompts', () => {
  // Only texts short enough to be encoded inline: the worker thread is exercised end to end.
  const settings = engineConfigFromLLMOptions({ model: fixtureDir('v2-lite-tiny') }).model;
  const encoder = new PromptEncoder(tokenizer, settings, info.maxModelLen);
  const prompts = (prompt: unknown, addSpecialTokens: boolean) =>
    encodePrompts(completionPromptSources(prompt), encoder, addSpecialTokens);

  test('text, list of texts, token ids, list of token-id lists', async () => {
    assert.deepEqual(await prompts('Hi', true), [{ text: 'Hi', tokenIds: tokenizer.encode('Hi') }]);
    assert.deepEqual(
      (await prompts(['Hi', 'Yo'], false)).map((p) => p.tokenIds),
      [
        tokenizer.encode('Hi', { addSpecialTokens: false }),
        tokenizer.encode('Yo', { addSpecialTokens: false }),
      ],
    );
    assert.deepEqual(await prompts([1, 2, 3], true), [{ text: null, tokenIds: [1, 2, 3] }]);
    assert.deepEqual(
      (await prompts([[1], [2, 3]], true)).map((p) => p.tokenIds),
      [[1], [2, 3]],
    );
  });

  test('missing, empty, mixed or non-integer prompts are 400s naming prompt', () => {
    rejects(() => completionPromptSources(undefined), /prompt is required/, 'prompt');
    rejects(() => completionPromptSources([]), /empty list/, 'prompt');
    rejects(() => completionPromptSources(['a', 1]), /mixing/, 'prompt');
    rejects(() => completionPromptSources(42), /got number 42/, 'prompt');
    rejects(() => completionPromptSources([1, 2.5]), /2\.5, which is not a token id/);
    rejects(() => completionPromptSources([[1], [Number.NaN]]), /prompt\[1\]/);
  });

  test('a text longer than the context can hold at the longest token per character is refused unencoded', async () => {
    const perToken = maxCharsPerToken(tokenizer);
    assert.equal(encoder.maxPromptChars, perToken * info.maxModelLen);
    for (let id = 0; id < tokenizer.vocabSize; id++) {
      assert.ok((tokenizer.idToToken(id) ?? '').length <= perToken, `token ${id} is longer than the bound`);
    }
    await assert.rejects(prompts('x'.repeat(encoder.maxPromptChars + 1), false), (e: unknown) => {
      assert.ok(e instanceof BadRequestError);
      assert.equal(e.param, 'prompt');
      assert.match(e.message, new RegExp(`at most ${encoder.maxPromptChars} characters can fit`));
      return true;
    });
  });
});

describe('checkPrompt', () => {
  test('accepts a prompt that leaves room for max_tokens', () => {
    checkPrompt({ text: null, tokenIds: [1, 2, 3] }, info, 'prompt', 13);
    checkPrompt({ text: null, tokenIds: [1, 2, 3] }, info, 'prompt', null);
  });
  test("rejects empty prompts, ids out of vocabulary and too-long requests in vLLM's words", () => {
    rejects(() => checkPrompt({ text: null, tokenIds: [] }, info, 'prompt', 1), /prompt is empty/);
    rejects(
      () => checkPrompt({ text: null, tokenIds: [1, 512] }, info, 'prompt', 1),
      /Token id 512 is out of vocabulary/,
    );
    rejects(
      () => checkPrompt({ text: null, tokenIds: new Array(16).fill(1) }, info, 'messages', null),
      /^This model's maximum context length is 16 tokens\. However, your request has 16 input tokens\. Please reduce the length of the input messages\.$/,
      'messages',
    );
    rejects(
      () => checkPrompt({ text: null, tokenIds: [1, 2, 3] }, info, 'prompt', 14),
      /'max_tokens' or 'max_completion_tokens' is too large: 14\. .* \(14 > 16 - 3\)\.$/,
      'max_tokens',
    );
  });
});

describe('truncatePrompt', () => {
  test('keeps the last k tokens; k out of range is a 400', () => {
    assert.deepEqual(truncatePrompt({ text: 'x', tokenIds: [1, 2, 3, 4] }, 2, 16).tokenIds, [3, 4]);
    assert.deepEqual(truncatePrompt({ text: 'x', tokenIds: [1, 2] }, 5, 16).tokenIds, [1, 2]);
    assert.equal(truncatePrompt({ text: 'x', tokenIds: [1] }, null, 16).text, 'x');
    rejects(
      () => truncatePrompt({ text: null, tokenIds: [1] }, 0, 16),
      /truncate_prompt_tokens/,
      'truncate_prompt_tokens',
    );
  });
});

describe('renderChat', () => {
  const o = {
    addGenerationPrompt: true,
    continueFinalMessage: false,
    tools: null,
    documents: null,
    chatTemplateKwargs: null,
  };
  test('renders with the generation prompt', () => {
    assert.equal(renderChat(tokenizer, [{ role: 'user', content: 'hi' }], o), '<user>hi</s><assistant>');
  });
  test('continue_final_message leaves the last message open', () => {
    const out = renderChat(
      tokenizer,
      [
        { role: 'user', content: 'hi' },
        { role: 'assistant', content: 'Hel' },
      ],
      { ...o, addGenerationPrompt: false, continueFinalMessage: true },
    );
    assert.equal(out, '<user>hi</s><assistant>Hel');
  });
  test('no messages, or both continuation flags, are 400s', () => {
    rejects(() => renderChat(tokenizer, [], o), /messages is empty/);
    rejects(
      () => renderChat(tokenizer, [{ role: 'user', content: 'x' }], { ...o, continueFinalMessage: true }),
      /Cannot set both/,
    );
  });
});
