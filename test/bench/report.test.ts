// The printed table and saved JSON as vLLM writes them: the centred headers, `{:<40} {:<10}` rows, the
// rows shown only when they apply, metric sections in vLLM's order, p-keys such as p90_ttft_ms, and the
// default result file name.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { BenchmarkMetrics, MetricSummary } from '../../src/bench/metrics.js';
import {
  buildResultJson,
  center,
  defaultResultFilename,
  formatResultTable,
  pyFloat,
  resultDate,
} from '../../src/bench/report.js';
import { emptyOutput } from '../../src/bench/request-func.js';

const s = (base: number): MetricSummary => ({
  mean: base,
  median: base + 1,
  std: base + 2,
  percentiles: [
    [90, base + 3],
    [99.9, base + 4],
  ],
});
const metrics: BenchmarkMetrics = {
  completed: 20,
  failed: 0,
  totalInput: 1280,
  totalOutput: 20,
  requestThroughput: 4.5,
  requestGoodput: 1.25,
  outputThroughput: 4.5,
  totalTokenThroughput: 292.5,
  maxOutputTokensPerS: 6,
  maxConcurrentRequests: 3,
  ttft: s(10),
  tpot: s(20),
  itl: s(30),
  e2el: s(40),
  clientQueueTime: s(50),
};

describe('result table', () => {
  test('vLLM centring: odd padding goes right', () => {
    assert.equal(
      center(' Serving Benchmark Result ', 50, '='),
      '============ Serving Benchmark Result ============',
    );
    assert.equal(
      center('Time to First Token', 50, '-'),
      '---------------Time to First Token----------------',
    );
    assert.equal(
      center('Time per Output Token (excl. 1st token)', 50, '-'),
      '-----Time per Output Token (excl. 1st token)------',
    );
  });

  test('rows, widths and conditional lines', () => {
    const lines = formatResultTable(metrics, {
      durationS: 4.44444,
      maxConcurrency: 8,
      requestRate: 5,
      goodputEnabled: true,
      percentileMetrics: ['itl', 'ttft'],
    });
    assert.equal(lines[0], '============ Serving Benchmark Result ============');
    assert.ok(lines.includes(`${'Successful requests:'.padEnd(40)} ${'20'.padEnd(10)}`));
    assert.ok(lines.includes(`${'Maximum request concurrency:'.padEnd(40)} ${'8'.padEnd(10)}`));
    assert.ok(lines.includes(`${'Request rate configured (RPS):'.padEnd(40)} ${'5.00'.padEnd(10)}`));
    assert.ok(lines.includes(`${'Benchmark duration (s):'.padEnd(40)} ${'4.44'.padEnd(10)}`));
    assert.ok(lines.includes(`${'Request goodput (req/s):'.padEnd(40)} ${'1.25'.padEnd(10)}`));
    assert.ok(lines.includes(`${'Peak concurrent requests:'.padEnd(40)} ${'3.00'.padEnd(10)}`));
    // sections in vLLM's order whatever the flag's order; percentiles named as given
    const ttft = lines.indexOf('---------------Time to First Token----------------');
    const itl = lines.indexOf('---------------Inter-token Latency----------------');
    assert.ok(ttft > 0 && itl > ttft);
    assert.equal(lines[ttft + 3], `${'P90 TTFT (ms):'.padEnd(40)} ${'13.00'.padEnd(10)}`);
    assert.equal(lines[ttft + 4], `${'P99.9 TTFT (ms):'.padEnd(40)} ${'14.00'.padEnd(10)}`);
    assert.ok(!lines.some((l) => l.includes('TPOT')));
    assert.equal(lines.at(-1), '='.repeat(50));

    const plain = formatResultTable(metrics, {
      durationS: 1,
      maxConcurrency: null,
      requestRate: Number.POSITIVE_INFINITY,
      goodputEnabled: false,
      percentileMetrics: ['ttft', 'client_queue_time'],
    });
    assert.ok(!plain.some((l) => l.startsWith('Maximum request concurrency')));
    assert.ok(!plain.some((l) => l.startsWith('Request rate configured')));
    assert.ok(!plain.some((l) => l.startsWith('Request goodput')));
    assert.ok(!plain.some((l) => l.includes('Client Queue'))); // only with --max-concurrency, as vLLM
  });
});

describe('result JSON and file name', () => {
  test('vLLM field names, metadata, inf rate, p-keys', () => {
    const outputs = [
      { ...emptyOutput(64), success: true, ttft: 0.5, itl: [0.1], latency: 0.6, generatedText: 'hi' },
    ];
    const json = buildResultJson(
      {
        date: '20250101-120000',
        backend: 'openai',
        label: null,
        modelId: 'deepseek-ai/DeepSeek-R1',
        tokenizerId: 'deepseek-ai/DeepSeek-V3',
        numPrompts: 1,
        metadata: [['tp', '16']],
        requestRate: Number.POSITIVE_INFINITY,
        burstiness: 1,
        maxConcurrency: null,
      },
      3,
      metrics,
      outputs,
      [2],
      false,
      ['ttft', 'e2el'],
    );
    for (const key of [
      'date',
      'backend',
      'model_id',
      'tokenizer_id',
      'num_prompts',
      'request_rate',
      'burstiness',
      'max_concurrency',
      'duration',
      'completed',
      'total_input_tokens',
      'total_output_tokens',
      'request_throughput',
      'output_throughput',
      'total_token_throughput',
      'input_lens',
      'output_lens',
      'ttfts',
      'itls',
      'generated_texts',
      'errors',
      'mean_ttft_ms',
      'median_ttft_ms',
      'std_ttft_ms',
      'p90_ttft_ms',
      'p99.9_ttft_ms',
      'mean_e2el_ms',
    ]) {
      assert.ok(key in json, key);
    }
    assert.equal(json.request_rate, 'inf');
    assert.equal(json.tp, '16');
    assert.equal(json.request_goodput, null);
    assert.equal(json.max_concurrency, null);
    assert.ok(!('mean_tpot_ms' in json));
    assert.deepEqual(json.input_lens, [64]);
    assert.deepEqual(json.itls, [[0.1]]);
    assert.doesNotThrow(() => JSON.parse(JSON.stringify(json)));
  });

  test('default file name as vLLM: {label|backend}-{rate}qps[-concurrency{N}]-{model}-{date}.json', () => {
    const base = {
      label: null,
      backend: 'openai',
      modelId: 'deepseek-ai/DeepSeek-R1',
      date: '20250101-120000',
    };
    assert.equal(
      defaultResultFilename({ ...base, requestRate: 5, maxConcurrency: 8 }),
      'openai-5.0qps-concurrency8-DeepSeek-R1-20250101-120000.json',
    );
    assert.equal(
      defaultResultFilename({
        ...base,
        label: 'duet',
        requestRate: Number.POSITIVE_INFINITY,
        maxConcurrency: null,
      }),
      'duet-infqps-DeepSeek-R1-20250101-120000.json',
    );
    assert.equal(pyFloat(0.5), '0.5');
    assert.equal(resultDate(new Date(2025, 0, 2, 3, 4, 5)), '20250102-030405');
  });
});
