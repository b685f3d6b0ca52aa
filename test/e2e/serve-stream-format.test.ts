// The bytes of a plain completions stream (no log-probs, this benchmark's workload) against a stream that
// asks for log-probs, on the fixture model: each event is canonical JSON with vLLM's keys in vLLM's order,
// the status line and headers come with the events, each token arrives as its own event, and apart from
// the log-probs the two streams carry the same events.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { loadGolden } from '../helpers/golden.js';
import { MODEL, startTestServer, type TestServer } from './serve-harness.js';

/** POSTs a streaming request and returns the `data` field of every event, in order. */
async function streamEvents(baseUrl: string, body: Record<string, unknown>): Promise<string[]> {
  const res = await fetch(`${baseUrl}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: MODEL, stream: true, ...body }),
  });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
  const text = await res.text();
  const parts = text.split('\n\n');
  assert.equal(parts.pop(), '', 'the stream ends with a complete event');
  return parts.map((p) => {
    assert.ok(p.startsWith('data: '), `an event that is not one data line: ${JSON.stringify(p)}`);
    assert.ok(!p.includes('\n'), 'an event spans lines');
    return p.slice('data: '.length);
  });
}

interface Chunk {
  id: string;
  created: number;
  choices: { index: number; text: string; logprobs: unknown; finish_reason: string | null }[];
  usage?: unknown;
}

describe('duet serve: the plain completions stream', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer();
  });
  after(async () => {
    await t.server.close();
  });

  test('canonical JSON in vLLM key order, one event per token, the same events as the general path', async () => {
    const golden = loadGolden('v2-lite-tiny');
    const MAX_TOKENS = 12;
    const request = {
      prompt: golden.prompts[1]!.ids,
      max_tokens: MAX_TOKENS,
      temperature: 0,
      ignore_eos: true,
      stream_options: { include_usage: true },
    };
    const plain = await streamEvents(t.baseUrl, request);
    const general = await streamEvents(t.baseUrl, { ...request, logprobs: 0 });
    for (const events of [plain, general]) {
      assert.equal(events.at(-1), '[DONE]');
      const usage = JSON.parse(events.at(-2)!) as Chunk;
      assert.deepEqual(usage.choices, []);
      assert.equal((usage.usage as { completion_tokens: number }).completion_tokens, MAX_TOKENS);
    }
    const tokenEvents = plain.slice(0, -2);
    for (const data of tokenEvents) {
      assert.equal(JSON.stringify(JSON.parse(data)), data, 'not canonical JSON');
      const chunk = JSON.parse(data) as Chunk;
      assert.deepEqual(Object.keys(chunk), ['id', 'object', 'created', 'model', 'choices', 'usage']);
      assert.deepEqual(Object.keys(chunk.choices[0]!), [
        'index',
        'text',
        'logprobs',
        'finish_reason',
        'stop_reason',
      ]);
      assert.equal(chunk.usage, null);
      assert.equal(chunk.choices[0]!.logprobs, null);
    }
    // The general path sends every token (with its log-prob) even when its text is not final yet; the
    // plain path skips those empty events and nothing else.
    const strip = (data: string) => {
      const c = JSON.parse(data) as Chunk;
      return { ...c.choices[0]!, logprobs: null };
    };
    const generalTokens = general.slice(0, -2);
    assert.equal(generalTokens.length, MAX_TOKENS, 'one event per token');
    assert.deepEqual(
      tokenEvents.map(strip),
      generalTokens.map(strip).filter((c) => c.text !== '' || c.finish_reason !== null),
    );
    assert.ok(
      tokenEvents.length >= MAX_TOKENS / 2,
      `only ${tokenEvents.length} events for ${MAX_TOKENS} tokens`,
    );
  });
});
