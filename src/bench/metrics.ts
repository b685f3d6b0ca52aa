// vLLM's serving benchmark metrics from the measured requests: completed / failed counts, token totals,
// request, output and total token throughput, goodput, peak output token rate and peak concurrency, and
// mean / median / std / percentiles (in ms) of TTFT, TPOT, ITL and E2EL plus the client-side queue time.
// TPOT of one request is (E2EL − TTFT) / (output tokens − 1), for requests of more than one token.

import { BenchArgumentError } from './errors.js';
import type { RequestFuncOutput } from './request-func.js';
import { mean, median, percentile, std } from './statistics.js';

/** The per-request metrics --percentile-metrics may name. */
export const PERCENTILE_METRICS = ['ttft', 'tpot', 'itl', 'e2el', 'client_queue_time'] as const;
export type PercentileMetric = (typeof PERCENTILE_METRICS)[number];

/** The --goodput objectives, in milliseconds (a request is good when it meets all that are set). */
export interface GoodputConfig {
  readonly ttft?: number;
  readonly tpot?: number;
  readonly e2el?: number;
}

/** Summary statistics of one per-request metric, in milliseconds. */
export interface MetricSummary {
  readonly mean: number;
  readonly median: number;
  readonly std: number;
  /** [percentile, value] for each requested percentile, in order. */
  readonly percentiles: readonly (readonly [number, number])[];
}

/** The benchmark's aggregate metrics (vLLM's BenchmarkMetrics). */
export interface BenchmarkMetrics {
  readonly completed: number;
  readonly failed: number;
  readonly totalInput: number;
  readonly totalOutput: number;
  /** Completed requests per second. */
  readonly requestThroughput: number;
  /** Requests meeting every --goodput objective, per second (0 without --goodput). */
  readonly requestGoodput: number;
  /** Generated tokens per second. */
  readonly outputThroughput: number;
  /** Prompt and generated tokens per second. */
  readonly totalTokenThroughput: number;
  /** Most token-carrying chunks received within one one-second bucket of the run. */
  readonly maxOutputTokensPerS: number;
  /** Most requests in flight at the same moment (successful requests, half-open intervals). */
  readonly maxConcurrentRequests: number;
  readonly ttft: MetricSummary;
  readonly tpot: MetricSummary;
  readonly itl: MetricSummary;
  readonly e2el: MetricSummary;
  readonly clientQueueTime: MetricSummary;
}

/** Parses --goodput "KEY:VALUE" pairs (KEY one of ttft, tpot, e2el; VALUE in ms, >= 0). */
export function parseGoodput(pairs: readonly string[]): GoodputConfig {
  const config: Record<string, number> = {};
  for (const pair of pairs) {
    const parts = pair.split(':');
    const value = Number(parts[1]);
    if (parts.length !== 2 || parts[1]!.trim() === '' || Number.isNaN(value)) {
      throw new BenchArgumentError(
        `invalid --goodput objective "${pair}": give "KEY:VALUE" pairs, KEY one of ttft, tpot, e2el and ` +
          'VALUE a number of milliseconds, e.g. --goodput ttft:500 tpot:50',
      );
    }
    const name = parts[0]!;
    if (name !== 'ttft' && name !== 'tpot' && name !== 'e2el') {
      throw new BenchArgumentError(
        `invalid --goodput metric "${name}" in "${pair}": the objective must be one of ttft, tpot, e2el`,
      );
    }
    if (value < 0) throw new BenchArgumentError(`invalid --goodput value in "${pair}": must be >= 0 ms`);
    config[name] = value;
  }
  return config;
}

/** Summarizes values given in seconds, in milliseconds. */
export function summarize(valuesS: readonly number[], percentiles: readonly number[]): MetricSummary {
  return {
    mean: mean(valuesS) * 1000,
    median: median(valuesS) * 1000,
    std: std(valuesS) * 1000,
    percentiles: percentiles.map((p) => [p, percentile(valuesS, p) * 1000] as const),
  };
}

/**
 * The metrics of a run. `countTokens` counts the generated text's tokens for requests whose server did
 * not report usage (vLLM's tokenizer fallback). Returns the metrics and each request's output length
 * (0 for failed requests).
 */
export function calculateMetrics(
  outputs: readonly RequestFuncOutput[],
  durationS: number,
  countTokens: (text: string) => number,
  percentiles: readonly number[],
  goodput: GoodputConfig = {},
): { metrics: BenchmarkMetrics; actualOutputLens: number[] } {
  const actualOutputLens: number[] = [];
  let totalInput = 0;
  let completed = 0;
  const ttfts: number[] = [];
  const tpots: number[] = [];
  const allTpots: number[] = [];
  const itls: number[] = [];
  const e2els: number[] = [];
  const queueTimes: number[] = [];
  for (const out of outputs) {
    if (!out.success) {
      actualOutputLens.push(0);
      continue;
    }
    const outputLen = out.outputTokens > 0 ? out.outputTokens : countTokens(out.generatedText);
    actualOutputLens.push(outputLen);
    totalInput += out.promptLen;
    let tpot = 0;
    if (outputLen > 1) {
      tpot = (out.latency - out.ttft) / (outputLen - 1);
      tpots.push(tpot);
    }
    allTpots.push(tpot); // a one-token request counts as TPOT 0 for goodput, as in vLLM
    itls.push(...out.itl);
    ttfts.push(out.ttft);
    e2els.push(out.latency);
    queueTimes.push(out.clientQueueTime);
    completed++;
  }

  let goodCompleted = 0;
  const objectives: [number[], number][] = [];
  if (goodput.ttft !== undefined) objectives.push([ttfts, goodput.ttft / 1000]);
  if (goodput.tpot !== undefined) objectives.push([allTpots, goodput.tpot / 1000]);
  if (goodput.e2el !== undefined) objectives.push([e2els, goodput.e2el / 1000]);
  if (objectives.length > 0) {
    for (let i = 0; i < completed; i++) {
      if (objectives.every(([values, slo]) => slo >= values[i]!)) goodCompleted++;
    }
  }

  const totalOutput = actualOutputLens.reduce((a, b) => a + b, 0);
  const peaks = peakRates(outputs.filter((o) => o.success));
  return {
    metrics: {
      completed,
      failed: outputs.length - completed,
      totalInput,
      totalOutput,
      requestThroughput: completed / durationS,
      requestGoodput: goodCompleted / durationS,
      outputThroughput: totalOutput / durationS,
      totalTokenThroughput: (totalInput + totalOutput) / durationS,
      maxOutputTokensPerS: peaks.maxOutputTokensPerS,
      maxConcurrentRequests: peaks.maxConcurrentRequests,
      ttft: summarize(ttfts, percentiles),
      tpot: summarize(tpots, percentiles),
      itl: summarize(itls, percentiles),
      e2el: summarize(e2els, percentiles),
      clientQueueTime: summarize(queueTimes, percentiles),
    },
    actualOutputLens,
  };
}

/**
 * vLLM's peak figures: token-carrying chunks counted in one-second buckets from the first request's start
 * (the busiest bucket), and the exact peak of overlapping [start, start + latency) intervals.
 */
export function peakRates(successful: readonly RequestFuncOutput[]): {
  maxOutputTokensPerS: number;
  maxConcurrentRequests: number;
} {
  if (successful.length === 0) return { maxOutputTokensPerS: 0, maxConcurrentRequests: 0 };
  let minStart = Number.POSITIVE_INFINITY;
  let maxEnd = Number.NEGATIVE_INFINITY;
  for (const o of successful) {
    minStart = Math.min(minStart, o.startTime);
    maxEnd = Math.max(maxEnd, o.startTime + o.latency);
  }
  const numBuckets = Math.ceil(maxEnd - minStart) + 1;
  const tokensPerSecond = new Array<number>(numBuckets).fill(0);
  for (const out of successful) {
    let t = out.startTime + out.ttft;
    const times = [t];
    for (const gap of out.itl) times.push((t += gap));
    for (const time of times) {
      const bucket = Math.floor(time - minStart);
      if (bucket >= 0 && bucket < numBuckets) tokensPerSecond[bucket]!++;
    }
  }
  const events: [number, number][] = [];
  for (const out of successful) {
    events.push([out.startTime, 1]);
    events.push([out.startTime + out.latency, -1]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]); // an end before a start at the same instant
  let current = 0;
  let peak = 0;
  for (const [, delta] of events) {
    current += delta;
    peak = Math.max(peak, current);
  }
  return {
    maxOutputTokensPerS: tokensPerSecond.reduce((a, b) => Math.max(a, b), 0),
    maxConcurrentRequests: peak,
  };
}
