// When the engine worker dies (killed here through the AsyncEngine test hook, as a crash would end it),
// `duet serve` never hangs: in-flight requests fail (a 500, or an error event on a stream), /health and
// /ping answer 503 with the reason, new requests get a 503, and /metrics still answers.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type OpenAI from 'openai';
import { MODEL, postJson, startTestServer, type TestServer, waitFor } from './serve-harness.js';

describe('duet serve: a dead engine', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.server.close();
  });

  test('in-flight requests fail, /health turns 503, new requests get 503', async () => {
    assert.equal((await fetch(`${t.baseUrl}/health`)).status, 200);
    const body = { model: MODEL, prompt: [500, 1, 2, 3], max_tokens: 240, temperature: 0, ignore_eos: true };
    const whole = postJson(`${t.baseUrl}/v1/completions`, body);
    const stream = await t.client.completions.create({
      ...body,
      stream: true,
    } as OpenAI.CompletionCreateParamsStreaming);
    const iterator = stream[Symbol.asyncIterator]();
    assert.equal((await iterator.next()).done, false, 'the stream has started');
    assert.ok(await waitFor(async () => (await t.server.engine.stats()).numRunning === 2));

    await t.server.engine.crash();

    const r = await whole;
    assert.equal(r.status, 500);
    assert.match(r.json.error.message, /engine/);
    await assert.rejects(
      (async () => {
        for (;;) if ((await iterator.next()).done) return;
      })(),
      (e: Error) => /engine/.test(e.message),
      'the stream ends with the error event',
    );

    const health = await fetch(`${t.baseUrl}/health`);
    assert.equal(health.status, 503);
    assert.match(
      ((await health.json()) as { error: { message: string } }).error.message,
      /the engine is dead/,
    );
    assert.equal((await fetch(`${t.baseUrl}/ping`)).status, 503);
    const late = await postJson(`${t.baseUrl}/v1/completions`, { prompt: [500, 1], max_tokens: 2 });
    assert.equal(late.status, 503);
    assert.match(late.json.error.message, /the engine is dead/);
    const lateChat = await postJson(`${t.baseUrl}/v1/chat/completions`, {
      messages: [{ role: 'user', content: 'hi' }],
      stream: true,
    });
    assert.equal(lateChat.status, 503);
    assert.equal((await fetch(`${t.baseUrl}/metrics`)).status, 200);
    assert.equal(t.server.engine.numInFlight, 0);
  });
});
