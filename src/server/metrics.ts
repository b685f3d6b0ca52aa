// The /metrics endpoint's Prometheus metrics, with vLLM's names and buckets (label model_name) so that
// existing dashboards work. Gauges and the engine's own totals (preemptions, prefix cache) are read from
// an engine stats snapshot at scrape time; per-request counters and histograms are observed on the HTTP
// side as outputs arrive (time to first token, inter-token latency, end-to-end latency...). One Registry
// per server: no global default registry.

import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineOutput, EngineStatsSnapshot } from '../engine/async/protocol.js';

/** vLLM's finished_reason label values. */
const FINISHED_REASONS = ['stop', 'length', 'abort', 'error'] as const;

const TTFT_BUCKETS = [
  0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0,
  80.0, 160.0, 640.0, 2560.0,
];
const ITL_BUCKETS = [
  0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0,
];
const LATENCY_BUCKETS = [
  0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0,
  960.0, 1920.0, 7680.0,
];

/** vLLM's 1-2-5 token-count buckets up to `max`: 1, 2, 5, 10, 20, 50, ... */
export function buckets125(max: number): number[] {
  const out: number[] = [];
  for (let exp = 1; ; exp *= 10) {
    for (const m of [1, 2, 5]) {
      const v = m * exp;
      if (v > max) return out;
      out.push(v);
    }
  }
}

export interface ServerMetricsOptions {
  readonly modelName: string;
  readonly maxModelLen: number;
  /** Reads the engine's stats at scrape time (null when the engine is dead: the last values stay). */
  readonly readStats: () => Promise<EngineStatsSnapshot | null>;
}

type Labels = { model_name: string };

export class ServerMetrics {
  readonly registry = new Registry();
  private readonly labels: Labels;
  private readonly readStats: ServerMetricsOptions['readStats'];

  private readonly numRunning: Gauge<'model_name'>;
  private readonly numWaiting: Gauge<'model_name'>;
  private readonly kvCacheUsage: Gauge<'model_name'>;
  private readonly gpuCacheUsage: Gauge<'model_name'>;
  private readonly numPreemptions: Counter<'model_name'>;
  private readonly prefixCacheQueries: Counter<'model_name'>;
  private readonly prefixCacheHits: Counter<'model_name'>;
  /** Dual-batch overlap (docs/dbo.md): steps split or not, and communication run under compute. */
  private readonly dboSplitSteps: Counter<'model_name'>;
  private readonly dboUnsplitSteps: Counter<'model_name'>;
  private readonly dboOverlap: Counter<'model_name'>;

  readonly promptTokens: Counter<'model_name'>;
  readonly generationTokens: Counter<'model_name'>;
  readonly requestSuccess: Counter<'model_name' | 'finished_reason'>;
  readonly timeToFirstToken: Histogram<'model_name'>;
  readonly interTokenLatency: Histogram<'model_name'>;
  readonly timePerOutputToken: Histogram<'model_name'>;
  readonly e2eLatency: Histogram<'model_name'>;
  readonly queueTime: Histogram<'model_name'>;
  readonly prefillTime: Histogram<'model_name'>;
  readonly decodeTime: Histogram<'model_name'>;
  readonly inferenceTime: Histogram<'model_name'>;
  readonly requestPromptTokens: Histogram<'model_name'>;
  readonly requestGenerationTokens: Histogram<'model_name'>;
  readonly requestParamsN: Histogram<'model_name'>;
  readonly requestParamsMaxTokens: Histogram<'model_name'>;

  constructor(options: ServerMetricsOptions) {
    this.labels = { model_name: options.modelName };
    this.readStats = options.readStats;
    const registers = [this.registry];
    const labelNames = ['model_name'] as const;
    const gauge = (name: string, help: string) => new Gauge({ name, help, labelNames, registers });
    const counter = (name: string, help: string) => new Counter({ name, help, labelNames, registers });
    const histogram = (name: string, help: string, buckets: number[]) =>
      new Histogram({ name, help, labelNames, buckets, registers });
    const tokenBuckets = buckets125(options.maxModelLen);

    this.numRunning = gauge('vllm:num_requests_running', 'Number of requests in model execution batches.');
    this.numWaiting = gauge('vllm:num_requests_waiting', 'Number of requests waiting to be processed.');
    this.kvCacheUsage = gauge('vllm:kv_cache_usage_perc', 'KV-cache usage. 1 means 100 percent usage.');
    this.gpuCacheUsage = gauge(
      'vllm:gpu_cache_usage_perc',
      'KV-cache usage. 1 means 100 percent usage. Deprecated: use vllm:kv_cache_usage_perc.',
    );
    this.numPreemptions = counter('vllm:num_preemptions_total', 'Cumulative number of preemptions.');
    this.prefixCacheQueries = counter(
      'vllm:prefix_cache_queries_total',
      'Prefix cache queries, in terms of number of queried tokens.',
    );
    this.prefixCacheHits = counter(
      'vllm:prefix_cache_hits_total',
      'Prefix cache hits, in terms of number of cached tokens.',
    );
    this.dboSplitSteps = counter(
      'vllm:dbo_split_steps_total',
      'Engine steps run as two micro-batches (dual-batch overlap).',
    );
    this.dboUnsplitSteps = counter('vllm:dbo_unsplit_steps_total', 'Engine steps run as one batch.');
    this.dboOverlap = counter(
      'vllm:dbo_comm_overlap_seconds_total',
      'Seconds collectives of split steps ran while the compute thread worked (issue to wait).',
    );
    this.promptTokens = counter('vllm:prompt_tokens_total', 'Number of prefill tokens processed.');
    this.generationTokens = counter('vllm:generation_tokens_total', 'Number of generation tokens processed.');
    this.requestSuccess = new Counter({
      name: 'vllm:request_success_total',
      help: 'Count of successfully processed requests.',
      labelNames: ['model_name', 'finished_reason'],
      registers,
    });
    this.timeToFirstToken = histogram(
      'vllm:time_to_first_token_seconds',
      'Histogram of time to first token in seconds.',
      TTFT_BUCKETS,
    );
    this.interTokenLatency = histogram(
      'vllm:inter_token_latency_seconds',
      'Histogram of inter-token latency in seconds.',
      ITL_BUCKETS,
    );
    this.timePerOutputToken = histogram(
      'vllm:request_time_per_output_token_seconds',
      'Histogram of time_per_output_token_seconds per request.',
      ITL_BUCKETS,
    );
    this.e2eLatency = histogram(
      'vllm:e2e_request_latency_seconds',
      'Histogram of e2e request latency in seconds.',
      LATENCY_BUCKETS,
    );
    this.queueTime = histogram(
      'vllm:request_queue_time_seconds',
      'Histogram of time spent in WAITING phase for request.',
      LATENCY_BUCKETS,
    );
    this.prefillTime = histogram(
      'vllm:request_prefill_time_seconds',
      'Histogram of time spent in PREFILL phase for request.',
      LATENCY_BUCKETS,
    );
    this.decodeTime = histogram(
      'vllm:request_decode_time_seconds',
      'Histogram of time spent in DECODE phase for request.',
      LATENCY_BUCKETS,
    );
    this.inferenceTime = histogram(
      'vllm:request_inference_time_seconds',
      'Histogram of time spent in RUNNING phase for request.',
      LATENCY_BUCKETS,
    );
    this.requestPromptTokens = histogram(
      'vllm:request_prompt_tokens',
      'Number of prefill tokens processed.',
      tokenBuckets,
    );
    this.requestGenerationTokens = histogram(
      'vllm:request_generation_tokens',
      'Number of generation tokens processed.',
      tokenBuckets,
    );
    this.requestParamsN = histogram(
      'vllm:request_params_n',
      'Histogram of the n request parameter.',
      [1, 2, 5, 10, 20],
    );
    this.requestParamsMaxTokens = histogram(
      'vllm:request_params_max_tokens',
      'Histogram of the max_tokens request parameter.',
      tokenBuckets,
    );

    // Series exist from the start, at zero, as vLLM's do.
    for (const c of [
      this.numPreemptions,
      this.prefixCacheQueries,
      this.prefixCacheHits,
      this.dboSplitSteps,
      this.dboUnsplitSteps,
      this.dboOverlap,
      this.promptTokens,
      this.generationTokens,
    ]) {
      c.inc(this.labels, 0);
    }
    for (const reason of FINISHED_REASONS)
      this.requestSuccess.inc({ ...this.labels, finished_reason: reason }, 0);
    for (const g of [this.numRunning, this.numWaiting, this.kvCacheUsage, this.gpuCacheUsage])
      g.set(this.labels, 0);
    for (const h of [
      this.timeToFirstToken,
      this.interTokenLatency,
      this.timePerOutputToken,
      this.e2eLatency,
      this.queueTime,
      this.prefillTime,
      this.decodeTime,
      this.inferenceTime,
      this.requestPromptTokens,
      this.requestGenerationTokens,
      this.requestParamsN,
      this.requestParamsMaxTokens,
    ]) {
      h.zero(this.labels);
    }
  }

  /** The Prometheus text exposition, with gauges read from the engine now. */
  async render(): Promise<string> {
    const s = await this.readStats();
    if (s !== null) {
      this.numRunning.set(this.labels, s.numRunning);
      this.numWaiting.set(this.labels, s.numWaiting);
      this.kvCacheUsage.set(this.labels, s.kvCacheUsage);
      this.gpuCacheUsage.set(this.labels, s.kvCacheUsage);
      setCounter(this.numPreemptions, this.labels, s.numPreemptions);
      setCounter(this.prefixCacheQueries, this.labels, s.prefixCacheQueries);
      setCounter(this.prefixCacheHits, this.labels, s.prefixCacheHits);
      setCounter(this.dboSplitSteps, this.labels, s.dboSplitSteps);
      setCounter(this.dboUnsplitSteps, this.labels, s.dboSteps - s.dboSplitSteps);
      setCounter(this.dboOverlap, this.labels, s.dboOverlapMs / 1000);
    }
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Starts tracking one engine request (one choice) that arrived at `arrival` (seconds, monotonic). */
  trackRequest(arrival: number): RequestMetrics {
    return new RequestMetrics(this, this.labels, arrival);
  }

  /** Records a request's n and max_tokens parameters (once per API request, as vLLM). */
  observeParams(n: number, maxTokens: number | null): void {
    this.requestParamsN.observe(this.labels, n);
    if (maxTokens !== null) this.requestParamsMaxTokens.observe(this.labels, maxTokens);
  }
}

/** Sets a counter to an absolute total read from the engine. */
function setCounter(c: Counter<'model_name'>, labels: Labels, total: number): void {
  c.remove(labels);
  c.inc(labels, total);
}

/** The per-request observations, fed with each output as it reaches the HTTP side. */
export class RequestMetrics {
  private firstTokenTime: number | null = null;
  private lastTokenTime: number | null = null;
  private done = false;

  constructor(
    private readonly m: ServerMetrics,
    private readonly labels: Labels,
    private readonly arrival: number,
  ) {}

  /** Call for every output of the request, with the time (seconds, monotonic) it arrived. */
  onOutput(out: EngineOutput, now: number): void {
    if (this.done) return;
    const numNew = out.newTokenIds.length;
    if (numNew > 0) {
      if (this.firstTokenTime === null) {
        this.firstTokenTime = now;
        this.m.timeToFirstToken.observe(this.labels, now - this.arrival);
        this.m.promptTokens.inc(this.labels, out.numPromptTokens);
      } else {
        this.m.interTokenLatency.observe(this.labels, now - this.lastTokenTime!);
      }
      this.lastTokenTime = now;
      this.m.generationTokens.inc(this.labels, numNew);
    }
    if (!out.finished) return;
    this.done = true;
    const reason = out.finishReason ?? 'error';
    this.m.requestSuccess.inc({ ...this.labels, finished_reason: reason });
    this.m.e2eLatency.observe(this.labels, now - this.arrival);
    this.m.requestPromptTokens.observe(this.labels, out.numPromptTokens);
    this.m.requestGenerationTokens.observe(this.labels, out.numOutputTokens);
    const t = out.final?.timings;
    if (t) {
      this.m.queueTime.observe(this.labels, t.queueTime);
      this.m.prefillTime.observe(this.labels, t.prefillTime);
      this.m.decodeTime.observe(this.labels, t.decodeTime);
      this.m.inferenceTime.observe(this.labels, t.inferenceTime);
      if (out.numOutputTokens > 1) {
        this.m.timePerOutputToken.observe(this.labels, t.decodeTime / (out.numOutputTokens - 1));
      }
    }
  }
}
