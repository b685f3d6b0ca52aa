// ServerMetrics without a server: gauges and engine totals are read at scrape time, each request's
// outputs feed the counters and histograms once (TTFT at the first token, one inter-token gap per later
// output, the end-to-end latency and phase timings at the finish), and each server has its own registry.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { EngineOutput, EngineStatsSnapshot } from '../../src/engine/async/protocol.js';
import { buckets125, ServerMetrics } from '../../src/server/metrics.js';
import { metricValue } from '../e2e/serve-harness.js';

const STATS: EngineStatsSnapshot = {
  numRunning: 3,
  numWaiting: 2,
  numPreemptedWaiting: 1,
  kvCacheUsage: 0.25,
  prefixCacheQueries: 100,
  prefixCacheHits: 40,
  numPreemptions: 7,
  numPrefixCacheEvictions: 0,
  promptTokens: 0,
  generationTokens: 0,
  numFinished: 0,
  numSteps: 0,
  dboSteps: 10,
  dboSplitSteps: 6,
  dboOverlapMs: 1500,
};

function output(over: Partial<EngineOutput>): EngineOutput {
  return {
    requestId: 'r',
    newTokenIds: [1],
    textDelta: 'x',
    newLogprobs: null,
    numOutputTokens: 1,
    numPromptTokens: 5,
    finished: false,
    finishReason: null,
    stopReason: null,
    error: null,
    ...over,
  };
}

describe('ServerMetrics', () => {
  test('buckets125 follows 1-2-5 up to the maximum', () => {
    assert.deepEqual(buckets125(256), [1, 2, 5, 10, 20, 50, 100, 200]);
    assert.deepEqual(buckets125(1), [1]);
  });

  test('gauges and engine totals come from the stats read at scrape time', async () => {
    let stats: EngineStatsSnapshot | null = STATS;
    const m = new ServerMetrics({ modelName: 'm', maxModelLen: 256, readStats: async () => stats });
    let text = await m.render();
    assert.equal(metricValue(text, 'vllm:num_requests_running'), 3);
    assert.equal(metricValue(text, 'vllm:num_requests_waiting'), 2);
    assert.equal(metricValue(text, 'vllm:kv_cache_usage_perc'), 0.25);
    assert.equal(metricValue(text, 'vllm:num_preemptions_total'), 7);
    assert.equal(metricValue(text, 'vllm:prefix_cache_queries_total'), 100);
    assert.equal(metricValue(text, 'vllm:prefix_cache_hits_total'), 40);
    assert.equal(metricValue(text, 'vllm:dbo_split_steps_total'), 6);
    assert.equal(metricValue(text, 'vllm:dbo_unsplit_steps_total'), 4);
    assert.equal(metricValue(text, 'vllm:dbo_comm_overlap_seconds_total'), 1.5);
    stats = { ...STATS, numPreemptions: 9 };
    text = await m.render();
    assert.equal(metricValue(text, 'vllm:num_preemptions_total'), 9, 'set to the total, not added');
    stats = null;
    text = await m.render();
    assert.equal(metricValue(text, 'vllm:num_preemptions_total'), 9, 'a dead engine leaves the last values');
    assert.match(m.contentType, /^text\/plain/);
  });

  test('one request: TTFT once, M - 1 inter-token gaps, counters, finish with its phases', async () => {
    const m = new ServerMetrics({ modelName: 'm', maxModelLen: 256, readStats: async () => null });
    const r = m.trackRequest(10);
    r.onOutput(output({ numOutputTokens: 1 }), 10.5);
    r.onOutput(output({ numOutputTokens: 2 }), 10.6);
    r.onOutput(output({ newTokenIds: [], textDelta: '', numOutputTokens: 2 }), 10.65);
    r.onOutput(
      output({
        numOutputTokens: 3,
        finished: true,
        finishReason: 'stop',
        final: {
          outputText: 'xxx',
          cumulativeLogprob: null,
          timings: { queueTime: 0.1, prefillTime: 0.3, decodeTime: 0.2, inferenceTime: 0.5 },
        },
      }),
      10.8,
    );
    r.onOutput(output({ finished: true, finishReason: 'abort' }), 11);
    const text = await m.render();
    const near = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} vs ${b}`);
    assert.equal(metricValue(text, 'vllm:prompt_tokens_total'), 5);
    assert.equal(metricValue(text, 'vllm:generation_tokens_total'), 3);
    assert.equal(metricValue(text, 'vllm:time_to_first_token_seconds_count'), 1);
    near(metricValue(text, 'vllm:time_to_first_token_seconds_sum'), 0.5);
    assert.equal(metricValue(text, 'vllm:inter_token_latency_seconds_count'), 2);
    near(metricValue(text, 'vllm:inter_token_latency_seconds_sum'), 0.3);
    near(metricValue(text, 'vllm:e2e_request_latency_seconds_sum'), 0.8);
    near(metricValue(text, 'vllm:request_queue_time_seconds_sum'), 0.1);
    near(metricValue(text, 'vllm:request_time_per_output_token_seconds_sum'), 0.1);
    assert.equal(metricValue(text, 'vllm:request_generation_tokens_sum'), 3);
    assert.equal(metricValue(text, 'vllm:request_success_total', 'finished_reason="stop"'), 1);
    assert.equal(
      metricValue(text, 'vllm:request_success_total', 'finished_reason="abort"'),
      0,
      'counted once',
    );
  });

  test('two servers do not share metrics', async () => {
    const a = new ServerMetrics({ modelName: 'a', maxModelLen: 16, readStats: async () => null });
    const b = new ServerMetrics({ modelName: 'b', maxModelLen: 16, readStats: async () => null });
    a.trackRequest(0).onOutput(output({}), 1);
    assert.equal(metricValue(await a.render(), 'vllm:generation_tokens_total'), 1);
    assert.equal(metricValue(await b.render(), 'vllm:generation_tokens_total'), 0);
  });
});
