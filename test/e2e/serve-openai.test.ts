// `duet serve` end to end with the `openai` npm client on the v2-lite-tiny golden checkpoint: greedy
// completions of token-id prompts reproduce the reference's greedy tokens exactly (the fixture's decision
// margins are far above float32 noise, see GOLDEN_README), chat renders the DeepSeek template, streaming
// gives the same tokens and text as non-streaming, and usage counts are exact.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type OpenAI from 'openai';
import { loadTokenizer, type Tokenizer } from '../../src/tokenizer/tokenizer.js';
import { fixtureDir, loadGolden } from '../helpers/golden.js';
import {
  deepseekChatTemplate,
  idsOfTokens,
  MODEL,
  postJson,
  startTestServer,
  type TestServer,
} from './serve-harness.js';

const golden = loadGolden('v2-lite-tiny');
/** vLLM's extra fields, which the openai client passes through in the body. */
const GREEDY = { temperature: 0, ignore_eos: true, return_tokens_as_token_ids: true } as Record<
  string,
  unknown
>;

/**
 * The text of `ids` as the engine streams it: the incremental detokenizer holds back the bytes of a
 * UTF-8 character still incomplete at the end (as vLLM's does), where a whole decode shows U+FFFD.
 */
function expectedText(tokenizer: Tokenizer, ids: readonly number[]): string {
  return tokenizer.decode(ids, { skipSpecialTokens: true }).replace(/\uFFFD+$/, '');
}

describe('duet serve with the openai client', () => {
  let t: TestServer;
  let client: OpenAI;
  let tokenizer: Tokenizer;

  before(async () => {
    t = await startTestServer();
    client = t.client;
    tokenizer = loadTokenizer(fixtureDir('v2-lite-tiny'), { chatTemplate: deepseekChatTemplate() });
  });
  after(async () => {
    await t.server.close();
  });

  test('GET /v1/models lists the served model with its context length', async () => {
    const models = await client.models.list();
    assert.equal(models.data.length, 1);
    assert.equal(models.data[0]!.id, MODEL);
    assert.equal((models.data[0] as unknown as { max_model_len: number }).max_model_len, 256);
  });

  test('greedy completions of each golden token-id prompt match the golden greedy tokens', async () => {
    for (const p of golden.prompts) {
      const r = await client.completions.create({
        model: MODEL,
        prompt: p.ids,
        max_tokens: 16,
        logprobs: 0,
        ...GREEDY,
      });
      assert.equal(r.object, 'text_completion');
      assert.match(r.id, /^cmpl-/);
      const choice = r.choices[0]!;
      assert.deepEqual(idsOfTokens(choice.logprobs!.tokens!), p.greedy.ids, `${p.name}: greedy tokens`);
      assert.equal(choice.text, expectedText(tokenizer, p.greedy.ids), `${p.name}: text`);
      assert.equal(choice.finish_reason, 'length');
      assert.deepEqual(r.usage, {
        prompt_tokens: p.ids.length,
        completion_tokens: 16,
        total_tokens: p.ids.length + 16,
        prompt_tokens_details: null,
      });
    }
  });

  test('a list of token-id prompts gives one choice per prompt, in order, all golden', async () => {
    const r = await client.completions.create({
      model: MODEL,
      prompt: golden.prompts.map((p) => p.ids),
      max_tokens: 16,
      logprobs: 0,
      ...GREEDY,
    });
    assert.equal(r.choices.length, golden.prompts.length);
    r.choices.forEach((c, i) => {
      assert.equal(c.index, i);
      assert.deepEqual(
        idsOfTokens(c.logprobs!.tokens!),
        golden.prompts[i]!.greedy.ids,
        golden.prompts[i]!.name,
      );
    });
    const promptTokens = golden.prompts.reduce((s, p) => s + p.ids.length, 0);
    assert.equal(r.usage!.prompt_tokens, promptTokens);
    assert.equal(r.usage!.completion_tokens, 16 * golden.prompts.length);
  });

  test('text prompts are tokenized with BOS, as the engine does; n and echo shape the choices', async () => {
    const r = await client.completions.create({
      model: MODEL,
      prompt: ['Hello world', 'The quick brown fox'],
      max_tokens: 4,
      n: 2,
      echo: true,
      ...GREEDY,
    });
    assert.equal(r.choices.length, 4);
    assert.deepEqual(
      r.choices.map((c) => c.index),
      [0, 1, 2, 3],
    );
    assert.ok(r.choices[0]!.text.startsWith('Hello world'));
    assert.ok(r.choices[2]!.text.startsWith('The quick brown fox'));
    // Greedy: both samples of a prompt agree.
    assert.equal(r.choices[0]!.text, r.choices[1]!.text);
    const ids = tokenizer.encode('Hello world');
    assert.equal(ids[0], tokenizer.bosTokenId);
    assert.equal(r.usage!.prompt_tokens, ids.length + tokenizer.encode('The quick brown fox').length);
    assert.equal(r.usage!.completion_tokens, 16);
  });

  test('a stop string ends the choice before it, with finish_reason stop and the string as stop_reason', async () => {
    const p = golden.prompts[1]!;
    const full = expectedText(tokenizer, p.greedy.ids);
    // A 3-character window of whole characters, after the first few tokens.
    let at = 6;
    while (full.slice(at, at + 3).includes('\uFFFD')) at++;
    const stop = full.slice(at, at + 3);
    assert.equal(stop.length, 3, 'the golden text has a clean 3-character window');
    const r = await client.completions.create({
      model: MODEL,
      prompt: p.ids,
      max_tokens: 16,
      stop: [stop],
      ...GREEDY,
    });
    const c = r.choices[0]!;
    assert.equal(c.text, full.slice(0, full.indexOf(stop)));
    assert.equal(c.finish_reason, 'stop');
    assert.equal((c as unknown as { stop_reason: string }).stop_reason, stop);
  });

  test('streaming completions give the same tokens and text as non-streaming, and include_usage counts', async () => {
    for (const p of [golden.prompts[0]!, golden.prompts[3]!]) {
      const stream = await client.completions.create({
        model: MODEL,
        prompt: p.ids,
        max_tokens: 16,
        logprobs: 0,
        stream: true,
        stream_options: { include_usage: true },
        ...GREEDY,
      });
      let text = '';
      const tokens: string[] = [];
      let finish: string | null = null;
      let usage: OpenAI.CompletionUsage | null | undefined;
      let numUsageChunks = 0;
      for await (const chunk of stream) {
        if (chunk.usage) {
          usage = chunk.usage;
          numUsageChunks++;
          assert.equal(chunk.choices.length, 0, 'the usage chunk has no choices');
          continue;
        }
        const c = chunk.choices[0]!;
        text += c.text;
        tokens.push(...(c.logprobs?.tokens ?? []));
        if (c.finish_reason) finish = c.finish_reason;
      }
      assert.deepEqual(idsOfTokens(tokens), p.greedy.ids, `${p.name}: streamed tokens`);
      assert.equal(text, expectedText(tokenizer, p.greedy.ids));
      assert.equal(finish, 'length');
      assert.equal(numUsageChunks, 1);
      assert.deepEqual(
        { p: usage!.prompt_tokens, c: usage!.completion_tokens, t: usage!.total_tokens },
        { p: p.ids.length, c: 16, t: p.ids.length + 16 },
      );
    }
  });

  test('streamed text offsets run continuously across chunks', async () => {
    const p = golden.prompts[2]!;
    const stream = await client.completions.create({
      model: MODEL,
      prompt: p.ids,
      max_tokens: 8,
      logprobs: 1,
      stream: true,
      temperature: 0,
      ignore_eos: true,
    } as OpenAI.CompletionCreateParamsStreaming);
    const offsets: number[] = [];
    const tokens: string[] = [];
    for await (const chunk of stream) {
      offsets.push(...(chunk.choices[0]?.logprobs?.text_offset ?? []));
      tokens.push(...(chunk.choices[0]?.logprobs?.tokens ?? []));
    }
    assert.equal(offsets.length, 8);
    for (let i = 1; i < offsets.length; i++)
      assert.equal(offsets[i], offsets[i - 1]! + tokens[i - 1]!.length);
  });

  test('chat renders the DeepSeek template with the generation prompt and answers greedily', async () => {
    const messages = [
      { role: 'system' as const, content: 'You are terse.' },
      { role: 'user' as const, content: 'Hello there' },
    ];
    const prompt = tokenizer.applyChatTemplate(messages, { addGenerationPrompt: true });
    assert.ok(prompt.endsWith('<｜User｜>Hello there<｜Assistant｜>'), prompt);
    const promptIds = tokenizer.encode(prompt, { addSpecialTokens: false });
    assert.equal(promptIds[0], tokenizer.bosTokenId, 'the template writes BOS itself');

    const r = await client.chat.completions.create({
      model: MODEL,
      messages,
      max_completion_tokens: 12,
      logprobs: true,
      top_logprobs: 2,
      ...GREEDY,
    });
    assert.equal(r.object, 'chat.completion');
    assert.match(r.id, /^chatcmpl-/);
    const c = r.choices[0]!;
    assert.equal(c.message.role, 'assistant');
    assert.equal(r.usage!.prompt_tokens, promptIds.length);
    assert.equal(r.usage!.completion_tokens, 12);
    assert.equal(c.finish_reason, 'length');
    const content = c.logprobs!.content!;
    assert.equal(content.length, 12);
    for (const lp of content) {
      assert.equal(lp.top_logprobs.length, 2);
      // Greedy: the chosen token is the most likely one.
      assert.equal(lp.top_logprobs[0]!.logprob, lp.logprob);
      assert.deepEqual(lp.bytes, [...Buffer.from(lp.token, 'utf8')]);
    }

    // The same prompt as token ids through /v1/completions gives the same tokens and text.
    const same = await client.completions.create({
      model: MODEL,
      prompt: promptIds,
      max_tokens: 12,
      logprobs: 0,
      ...GREEDY,
    });
    assert.deepEqual(
      content.map((lp) => lp.token),
      same.choices[0]!.logprobs!.tokens,
    );
    assert.equal(c.message.content, same.choices[0]!.text);

    // /tokenize renders the same prompt.
    const tok = await postJson(`${t.baseUrl}/tokenize`, { model: MODEL, messages });
    assert.equal(tok.status, 200);
    assert.deepEqual(tok.json.tokens, promptIds);
    assert.equal(tok.json.count, promptIds.length);
  });

  test('streaming chat: a role delta first, then the same content as non-streaming, then usage', async () => {
    const messages = [{ role: 'user' as const, content: 'Count with me' }];
    const body = { model: MODEL, messages, max_tokens: 10, ...GREEDY };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({
      ...body,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.equal(chunks[0]!.object, 'chat.completion.chunk');
    assert.equal(chunks[0]!.choices[0]!.delta.role, 'assistant');
    const content = chunks.map((ch) => ch.choices[0]?.delta.content ?? '').join('');
    assert.equal(content, whole.choices[0]!.message.content);
    const finishes = chunks.map((ch) => ch.choices[0]?.finish_reason).filter((f) => f);
    assert.deepEqual(finishes, ['length']);
    const last = chunks[chunks.length - 1]!;
    assert.equal(last.choices.length, 0);
    assert.deepEqual(
      { p: last.usage!.prompt_tokens, c: last.usage!.completion_tokens },
      { p: whole.usage!.prompt_tokens, c: 10 },
    );
    assert.ok(new Set(chunks.map((ch) => ch.id)).size === 1, 'every chunk carries the same id');
  });

  test('/tokenize, /detokenize, /version, /health and /ping answer', async () => {
    const tok = await postJson(`${t.baseUrl}/tokenize`, { prompt: 'Hello world', return_token_strs: true });
    assert.deepEqual(tok.json.tokens, tokenizer.encode('Hello world'));
    assert.equal(tok.json.token_strs.length, tok.json.count);
    assert.equal(tok.json.max_model_len, 256);
    const detok = await postJson(`${t.baseUrl}/detokenize`, { tokens: tok.json.tokens });
    assert.equal(detok.json.prompt, tokenizer.decode(tok.json.tokens));
    const version = await (await fetch(`${t.baseUrl}/version`)).json();
    assert.match((version as { version: string }).version, /^\d+\.\d+\.\d+/);
    assert.equal((await fetch(`${t.baseUrl}/health`)).status, 200);
    assert.equal((await fetch(`${t.baseUrl}/ping`)).status, 200);
  });
});
