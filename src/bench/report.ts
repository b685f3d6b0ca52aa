// vLLM's benchmark output: the printed result table ("============ Serving Benchmark Result ============"
// with the same labels and column widths) and the saved JSON result with vLLM's field names, plus its
// default file name `{label or backend}-{rate}qps[-concurrency{N}]-{model}-{YYYYMMDD-HHMMSS}.json`.

import {
  type BenchmarkMetrics,
  type MetricSummary,
  PERCENTILE_METRICS,
  type PercentileMetric,
} from './metrics.js';
import type { RequestFuncOutput } from './request-func.js';

/** Python's str() of a float, as vLLM prints rates: 5 → "5.0", Infinity → "inf". */
export function pyFloat(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  return Number.isInteger(x) && Math.abs(x) < 1e16 ? x.toFixed(1) : String(x);
}

/** Python's `'{s:{c}^{n}}'.format(...)`: `s` centred in `n` columns of `c` (odd padding goes right). */
export function center(s: string, n: number, c: string): string {
  const pad = Math.max(0, n - s.length);
  const left = Math.floor(pad / 2);
  return c.repeat(left) + s + c.repeat(pad - left);
}

/** One table row: `{:<40} {:<10}` for integers, `{:<40} {:<10.2f}` for floats. */
function row(label: string, value: number, float: boolean): string {
  const v = float ? value.toFixed(2) : String(value);
  return `${label.padEnd(40)} ${v.padEnd(10)}`;
}

/** What the result table shows besides the metrics. */
export interface TableOptions {
  readonly durationS: number;
  readonly maxConcurrency: number | null;
  readonly requestRate: number;
  readonly goodputEnabled: boolean;
  readonly percentileMetrics: readonly PercentileMetric[];
}

const SECTIONS: Readonly<Record<PercentileMetric, readonly [string, string]>> = {
  ttft: ['TTFT', 'Time to First Token'],
  tpot: ['TPOT', 'Time per Output Token (excl. 1st token)'],
  itl: ['ITL', 'Inter-token Latency'],
  e2el: ['E2EL', 'End-to-end Latency'],
  client_queue_time: ['Client Queue Time', 'Client-side Queueing'],
};

/** The summary of one metric (TTFT ...) by its --percentile-metrics name. */
export function summaryOf(metrics: BenchmarkMetrics, name: PercentileMetric): MetricSummary {
  return name === 'client_queue_time' ? metrics.clientQueueTime : metrics[name];
}

/** The name of a percentile in labels and JSON keys: 99 → "99", 99.9 → "99.9" (as Python's int-or-float). */
export function percentileWord(p: number): string {
  return String(p);
}

/** The selected metrics in vLLM's fixed order (TTFT, TPOT, ITL, E2EL, client queue time). */
function ordered(selected: readonly PercentileMetric[]): PercentileMetric[] {
  return PERCENTILE_METRICS.filter((name) => selected.includes(name));
}

/** The lines of vLLM's result table. */
export function formatResultTable(m: BenchmarkMetrics, o: TableOptions): string[] {
  const lines = [center(' Serving Benchmark Result ', 50, '=')];
  lines.push(row('Successful requests:', m.completed, false));
  lines.push(row('Failed requests:', m.failed, false));
  if (o.maxConcurrency !== null) lines.push(row('Maximum request concurrency:', o.maxConcurrency, false));
  if (Number.isFinite(o.requestRate)) lines.push(row('Request rate configured (RPS):', o.requestRate, true));
  lines.push(row('Benchmark duration (s):', o.durationS, true));
  lines.push(row('Total input tokens:', m.totalInput, false));
  lines.push(row('Total generated tokens:', m.totalOutput, false));
  lines.push(row('Request throughput (req/s):', m.requestThroughput, true));
  if (o.goodputEnabled) lines.push(row('Request goodput (req/s):', m.requestGoodput, true));
  lines.push(row('Output token throughput (tok/s):', m.outputThroughput, true));
  lines.push(row('Peak output token throughput (tok/s):', m.maxOutputTokensPerS, true));
  lines.push(row('Peak concurrent requests:', m.maxConcurrentRequests, true));
  lines.push(row('Total token throughput (tok/s):', m.totalTokenThroughput, true));
  for (const name of ordered(o.percentileMetrics)) {
    if (name === 'client_queue_time' && o.maxConcurrency === null) continue;
    const [short, header] = SECTIONS[name];
    const s = summaryOf(m, name);
    lines.push(center(header, 50, '-'));
    lines.push(row(`Mean ${short} (ms):`, s.mean, true));
    lines.push(row(`Median ${short} (ms):`, s.median, true));
    for (const [p, v] of s.percentiles) lines.push(row(`P${percentileWord(p)} ${short} (ms):`, v, true));
  }
  lines.push('='.repeat(50));
  return lines;
}

/** The run's configuration as the JSON result records it. */
export interface ResultHeader {
  /** YYYYMMDD-HHMMSS, local time. */
  readonly date: string;
  readonly backend: string;
  readonly label: string | null;
  readonly modelId: string;
  readonly tokenizerId: string;
  readonly numPrompts: number;
  /** --metadata KEY=VALUE pairs, already split. */
  readonly metadata: readonly (readonly [string, string])[];
  readonly requestRate: number;
  readonly burstiness: number;
  readonly maxConcurrency: number | null;
}

/** The saved JSON result, field for field as vLLM's `vllm bench serve --save-result --save-detailed`. */
export function buildResultJson(
  header: ResultHeader,
  durationS: number,
  m: BenchmarkMetrics,
  outputs: readonly RequestFuncOutput[],
  actualOutputLens: readonly number[],
  goodputEnabled: boolean,
  percentileMetrics: readonly PercentileMetric[],
): Record<string, unknown> {
  const result: Record<string, unknown> = {
    date: header.date,
    endpoint_type: header.backend,
    backend: header.backend,
    label: header.label,
    model_id: header.modelId,
    tokenizer_id: header.tokenizerId,
    num_prompts: header.numPrompts,
  };
  for (const [k, v] of header.metadata) result[k] = v;
  Object.assign(result, {
    request_rate: Number.isFinite(header.requestRate) ? header.requestRate : 'inf',
    burstiness: Number.isFinite(header.burstiness) ? header.burstiness : 'inf',
    max_concurrency: header.maxConcurrency,
    duration: durationS,
    completed: m.completed,
    failed: m.failed,
    total_input_tokens: m.totalInput,
    total_output_tokens: m.totalOutput,
    request_throughput: m.requestThroughput,
    request_goodput: goodputEnabled ? m.requestGoodput : null,
    output_throughput: m.outputThroughput,
    total_token_throughput: m.totalTokenThroughput,
    input_lens: outputs.map((o) => o.promptLen),
    output_lens: actualOutputLens,
    ttfts: outputs.map((o) => o.ttft),
    itls: outputs.map((o) => o.itl),
    latencies: outputs.map((o) => o.latency),
    start_times: outputs.map((o) => o.startTime),
    queue_times: outputs.map((o) => o.clientQueueTime),
    generated_texts: outputs.map((o) => o.generatedText),
    errors: outputs.map((o) => o.error),
    max_output_tokens_per_s: m.maxOutputTokensPerS,
    max_concurrent_requests: m.maxConcurrentRequests,
  });
  for (const name of ordered(percentileMetrics)) {
    if (name === 'client_queue_time' && header.maxConcurrency === null) continue;
    const s = summaryOf(m, name);
    result[`mean_${name}_ms`] = s.mean;
    result[`median_${name}_ms`] = s.median;
    result[`std_${name}_ms`] = s.std;
    for (const [p, v] of s.percentiles) result[`p${percentileWord(p)}_${name}_ms`] = v;
  }
  return result;
}

/** vLLM's default result file name. */
export function defaultResultFilename(o: {
  readonly label: string | null;
  readonly backend: string;
  readonly requestRate: number;
  readonly maxConcurrency: number | null;
  readonly modelId: string;
  readonly date: string;
}): string {
  const concurrency = o.maxConcurrency !== null ? `-concurrency${o.maxConcurrency}` : '';
  const baseModelId = o.modelId.split('/').pop() ?? o.modelId;
  return `${o.label ?? o.backend}-${pyFloat(o.requestRate)}qps${concurrency}-${baseModelId}-${o.date}.json`;
}

/** The current local time as vLLM stamps results: YYYYMMDD-HHMMSS. */
export function resultDate(d: Date = new Date()): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return (
    `${d.getFullYear()}${two(d.getMonth() + 1)}${two(d.getDate())}-` +
    `${two(d.getHours())}${two(d.getMinutes())}${two(d.getSeconds())}`
  );
}
