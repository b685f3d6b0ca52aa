// /metrics of `duet serve` and client cancellation: after R requests of P prompt and M generated tokens
// the counters read R*P and R*M and the latency histograms hold R observations; 100 streaming requests
// cancelled mid-way, and a non-streaming one whose client hangs up, leave no request running and the KV
// cache back at its idle usage, each counted once as aborted.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type OpenAI from 'openai';
import {
  MODEL,
  metricValue,
  postJson,
  scrape,
  startTestServer,
  type TestServer,
  waitFor,
} from './serve-harness.js';

const LABEL = `model_name="${MODEL}"`;

/** A token-id prompt of `n` tokens starting with BOS (500), distinct per `seed` so no prefix is shared. */
function prompt(n: number, seed: number): number[] {
  return [500, ...Array.from({ length: n - 1 }, (_, i) => 1 + ((seed * 37 + i * 11) % 400))];
}

describe('duet serve: metrics and cancellation', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({}, { enablePrefixCaching: false });
  });
  after(async () => {
    await t.server.close();
  });

  const value = (text: string, name: string, filter = LABEL) => metricValue(text, name, filter);

  test('vLLM metric names are exposed with the model_name label', async () => {
    const text = await scrape(t.baseUrl);
    for (const name of [
      'vllm:num_requests_running',
      'vllm:num_requests_waiting',
      'vllm:kv_cache_usage_perc',
      'vllm:prompt_tokens_total',
      'vllm:generation_tokens_total',
      'vllm:num_preemptions_total',
      'vllm:prefix_cache_queries_total',
      'vllm:prefix_cache_hits_total',
      'vllm:time_to_first_token_seconds_count',
      'vllm:inter_token_latency_seconds_count',
      'vllm:e2e_request_latency_seconds_count',
      'vllm:request_queue_time_seconds_count',
      'vllm:request_prompt_tokens_count',
      'vllm:request_generation_tokens_count',
    ]) {
      assert.equal(value(text, name), 0, name);
    }
    for (const reason of ['stop', 'length', 'abort']) {
      assert.equal(value(text, 'vllm:request_success_total', `finished_reason="${reason}"`), 0);
    }
  });

  test('after R requests of P prompt and M generated tokens: counters R*P and R*M, R observations', async () => {
    const R = 6;
    const P = 7;
    const M = 9;
    const before = await scrape(t.baseUrl);
    await Promise.all(
      Array.from({ length: R }, async (_, i) => {
        const body = { model: MODEL, prompt: prompt(P, i), max_tokens: M, temperature: 0, ignore_eos: true };
        if (i % 2 === 0) {
          const r = await t.client.completions.create(body);
          assert.equal(r.usage!.completion_tokens, M);
        } else {
          const stream = await t.client.completions.create({ ...body, stream: true });
          for await (const _ of stream) {
            // drain
          }
        }
      }),
    );
    const now = await scrape(t.baseUrl);
    const delta = (name: string, filter = LABEL) => value(now, name, filter) - value(before, name, filter);
    assert.equal(delta('vllm:prompt_tokens_total'), R * P);
    assert.equal(delta('vllm:generation_tokens_total'), R * M);
    assert.equal(delta('vllm:time_to_first_token_seconds_count'), R);
    assert.equal(delta('vllm:e2e_request_latency_seconds_count'), R);
    assert.equal(delta('vllm:request_queue_time_seconds_count'), R);
    assert.equal(delta('vllm:request_prompt_tokens_count'), R);
    assert.equal(delta('vllm:request_prompt_tokens_sum'), R * P);
    assert.equal(delta('vllm:request_generation_tokens_sum'), R * M);
    // One token per request per step: M - 1 gaps between tokens per request.
    assert.equal(delta('vllm:inter_token_latency_seconds_count'), R * (M - 1));
    assert.equal(delta('vllm:request_success_total', 'finished_reason="length"'), R);
    // Time to first token never exceeds the end-to-end latency.
    assert.ok(delta('vllm:time_to_first_token_seconds_sum') <= delta('vllm:e2e_request_latency_seconds_sum'));
    assert.equal(value(now, 'vllm:num_requests_running'), 0);
    // The engine's own count of prompt tokens agrees.
    const stats = await t.server.engine.stats();
    assert.equal(stats.generationTokens, value(now, 'vllm:generation_tokens_total'));
  });

  test('100 streaming requests cancelled mid-way leave nothing running and the KV cache idle', async () => {
    const idle = t.server.engine.info.idleKvCacheUsage;
    const before = await scrape(t.baseUrl);
    const N = 100;
    const MAX_TOKENS = 200;
    const numChunks = await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const controller = new AbortController();
        const stream = await t.client.completions.create(
          {
            model: MODEL,
            prompt: prompt(5, 1000 + i),
            max_tokens: MAX_TOKENS,
            temperature: 0,
            ignore_eos: true,
            stream: true,
          } as OpenAI.CompletionCreateParamsStreaming,
          { signal: controller.signal },
        );
        let n = 0;
        for await (const _ of stream) {
          if (++n === 3) {
            controller.abort();
            break;
          }
        }
        return n;
      }),
    );
    assert.ok(
      numChunks.every((n) => n === 3),
      'every request was cancelled after 3 chunks, mid-way',
    );
    let last = '';
    const abortsSince = (text: string) =>
      value(text, 'vllm:request_success_total', 'finished_reason="abort"') -
      value(before, 'vllm:request_success_total', 'finished_reason="abort"');
    // The gauges can reach idle a moment before the last abort's output is counted: wait for both.
    const settled = await waitFor(async () => {
      last = await scrape(t.baseUrl);
      return (
        value(last, 'vllm:num_requests_running') === 0 &&
        value(last, 'vllm:num_requests_waiting') === 0 &&
        value(last, 'vllm:kv_cache_usage_perc') === idle &&
        abortsSince(last) >= N
      );
    });
    assert.ok(
      settled,
      `running ${value(last, 'vllm:num_requests_running')}, KV usage ${value(last, 'vllm:kv_cache_usage_perc')}, aborts ${abortsSince(last)}, length ${value(last, 'vllm:request_success_total', `finished_reason="length"`) - value(before, 'vllm:request_success_total', `finished_reason="length"`)}`,
    );
    assert.equal(abortsSince(last), N);
    const generated =
      value(last, 'vllm:generation_tokens_total') - value(before, 'vllm:generation_tokens_total');
    assert.ok(generated < N * MAX_TOKENS, `${generated} tokens: the requests stopped early`);
    assert.equal(t.server.engine.numInFlight, 0);
  });

  test('a non-streaming client that hangs up aborts its request', async () => {
    const before = await scrape(t.baseUrl);
    const controller = new AbortController();
    const request = fetch(`${t.baseUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: prompt(5, 7), max_tokens: 240, temperature: 0, ignore_eos: true }),
      signal: controller.signal,
    });
    const started = await waitFor(async () => {
      const s = await t.server.engine.stats();
      return s.numRunning === 1 && s.generationTokens > 0;
    });
    assert.ok(started, 'the request runs');
    controller.abort();
    await assert.rejects(request);
    const settled = await waitFor(async () => (await t.server.engine.stats()).numRunning === 0);
    assert.ok(settled);
    const now = await scrape(t.baseUrl);
    assert.equal(
      value(now, 'vllm:request_success_total', 'finished_reason="abort"') -
        value(before, 'vllm:request_success_total', 'finished_reason="abort"'),
      1,
    );
    assert.ok(
      value(now, 'vllm:generation_tokens_total') - value(before, 'vllm:generation_tokens_total') < 240,
    );
    assert.equal(value(now, 'vllm:kv_cache_usage_perc'), t.server.engine.info.idleKvCacheUsage);
    // And the server goes on serving.
    const r = await postJson(`${t.baseUrl}/v1/completions`, { prompt: [500, 1], max_tokens: 2 });
    assert.equal(r.status, 200);
  });
});
