// `duet bench serve` end to end, as vLLM's `main_async`: resolve the server, model and tokenizer, build the
// dataset, run the benchmark, print vLLM's result table and save vLLM's JSON result. Output goes through
// a small IO object so tests can capture it.

import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkApiUrl, getBackend } from './backends.js';
import { resolveBenchTokenizer } from './bench-tokenizer.js';
import { type BenchmarkRunOptions, requestInput, runBenchmark } from './benchmark.js';
import { BenchArgumentError, EndpointNotReadyError } from './errors.js';
import { ClientAgents } from './http-stream.js';
import { sampleJsonlDataset } from './jsonl-dataset.js';
import { calculateMetrics, PERCENTILE_METRICS, type PercentileMetric, parseGoodput } from './metrics.js';
import { createProgress } from './progress.js';
import { sampleRandomDataset } from './random-dataset.js';
import { buildResultJson, defaultResultFilename, formatResultTable, pyFloat, resultDate } from './report.js';
import type { SampleRequest } from './sample-request.js';
import type { BenchServeArgs } from './serve-args.js';
import { alignPromptsToServerTokenizer, firstServedModel } from './server-info.js';

/** Where the benchmark writes: `out` for results (stdout), `err` for notices; progress bar on stderr. */
export interface BenchIO {
  out(line: string): void;
  err(line: string): void;
}

const STD_IO: BenchIO = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/** What a run returns: the JSON result (as saved) and where it was saved, if it was. */
export interface ServeBenchmarkResult {
  readonly result: Record<string, unknown>;
  readonly resultPath: string | null;
}

/** Splits --metadata / --header style KEY=VALUE pairs. */
export function parseKeyValues(flag: string, pairs: readonly string[] | null): [string, string][] {
  return (pairs ?? []).map((item) => {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new BenchArgumentError(`invalid ${flag} "${item}": use KEY=VALUE`);
    return [item.slice(0, eq).trim(), item.slice(eq + 1).trim()];
  });
}

/** Parses --percentile-metrics. */
export function parsePercentileMetrics(value: string | null): PercentileMetric[] {
  const names = (value ?? 'ttft,tpot,itl').split(',').map((s) => s.trim());
  for (const name of names) {
    if (!(PERCENTILE_METRICS as readonly string[]).includes(name)) {
      throw new BenchArgumentError(
        `unknown --percentile-metrics name "${name}"; allowed: ${PERCENTILE_METRICS.join(', ')}`,
      );
    }
  }
  return names as PercentileMetric[];
}

/** Parses --metric-percentiles ("50,90,99"). */
export function parseMetricPercentiles(value: string): number[] {
  return value.split(',').map((s) => {
    const p = Number(s.trim());
    if (s.trim() === '' || !(p >= 0 && p <= 100)) {
      throw new BenchArgumentError(
        `--metric-percentiles takes numbers in [0, 100] separated by commas, got "${value}"`,
      );
    }
    return p;
  });
}

/** Runs the serving benchmark. Throws only for bad options or an unreachable server. */
export async function runServeBenchmark(
  args: BenchServeArgs,
  io: BenchIO = STD_IO,
): Promise<ServeBenchmarkResult> {
  if (args.maxConcurrency !== null && !(Number.isInteger(args.maxConcurrency) && args.maxConcurrency > 0)) {
    throw new BenchArgumentError(`--max-concurrency must be an integer > 0, got ${args.maxConcurrency}`);
  }
  if (!Number.isInteger(args.numWarmups) || args.numWarmups < 0) {
    throw new BenchArgumentError(`--num-warmups must be an integer >= 0, got ${args.numWarmups}`);
  }
  const backend = getBackend(args.backend);
  const endpoint = args.endpoint ?? backend.defaultEndpoint;
  const baseUrl = (args.baseUrl ?? `http://${hostPort(args.host, args.port)}`).replace(/\/+$/, '');
  const apiUrl = `${baseUrl}${endpoint}`;
  checkApiUrl(backend, apiUrl);
  const percentileMetrics = parsePercentileMetrics(args.percentileMetrics);
  const percentiles = parseMetricPercentiles(args.metricPercentiles);
  const goodput = parseGoodput(args.goodput ?? []);
  const goodputEnabled = Object.keys(goodput).length > 0;
  const metadata = parseKeyValues('--metadata', args.metadata);

  const headers: Record<string, string> = {};
  const apiKey = args.apiKey ?? process.env.OPENAI_API_KEY ?? null;
  if (apiKey !== null && apiKey !== '') headers.Authorization = `Bearer ${apiKey}`;
  for (const [k, v] of parseKeyValues('--header', args.header)) headers[k] = v;

  let modelId: string;
  let modelName: string;
  if (args.model === null) {
    io.out('Model not specified, fetching first model from server...');
    const served = await firstServedModel(baseUrl, headers);
    modelName = served.name;
    modelId = served.id;
    io.out(`First model name: ${modelName}, first model id: ${modelId}`);
  } else {
    modelId = args.model;
    modelName = args.servedModelName ?? args.model;
  }
  const { tokenizer, tokenizerId } = resolveBenchTokenizer(args.tokenizer, modelId);

  const requestIdPrefix = args.requestIdPrefix ?? `bench-${randomUUID().replace(/-/g, '').slice(0, 8)}-`;
  const outputLen = args.outputLen ?? args.randomOutputLen;
  let ignoreEos = args.ignoreEos;
  let requests: SampleRequest[];
  if (args.datasetName === 'random') {
    if (args.datasetPath !== null) {
      throw new BenchArgumentError(
        `cannot use the 'random' dataset with --dataset-path ${args.datasetPath}; use --dataset-name jsonl for a prompts file`,
      );
    }
    if (args.sendTokenIds && !backend.acceptsTokenIds) {
      throw new BenchArgumentError(
        `--send-token-ids needs a completions backend (openai, vllm), not ${backend.name}`,
      );
    }
    requests = sampleRandomDataset(tokenizer, {
      numPrompts: args.numPrompts,
      inputLen: args.inputLen ?? args.randomInputLen,
      outputLen,
      rangeRatio: args.randomRangeRatio,
      prefixLen: args.randomPrefixLen,
      seed: args.seed,
      requestIdPrefix,
      includeTokenIds: args.sendTokenIds,
    });
    // vLLM ignores EOS for the random dataset so that every request generates its full output length.
    ignoreEos = true;
    if (!args.sendTokenIds) {
      requests = await alignPromptsToServerTokenizer(baseUrl, modelName, requests, headers, io.out);
    }
  } else if (args.datasetName === 'jsonl') {
    if (args.datasetPath === null)
      throw new BenchArgumentError('--dataset-name jsonl needs --dataset-path FILE.jsonl');
    requests = sampleJsonlDataset(tokenizer, {
      path: args.datasetPath,
      numPrompts: args.numPrompts,
      defaultOutputLen: outputLen,
      seed: args.seed,
      requestIdPrefix,
    });
    if (!backend.acceptsTokenIds && requests.some((r) => r.sendAsTokenIds === true)) {
      throw new BenchArgumentError(
        `${args.datasetPath} has "prompt_token_ids" lines, which only completions backends (openai, vllm) can send`,
      );
    }
  } else {
    throw new BenchArgumentError(`unknown --dataset-name "${args.datasetName}"; allowed: random, jsonl`);
  }

  const sampling: Record<string, unknown> = {};
  const put = (key: string, v: number | null) => {
    if (v !== null) sampling[key] = v;
  };
  put('top_p', args.topP);
  put('top_k', args.topK);
  put('min_p', args.minP);
  put('temperature', args.temperature);
  put('frequency_penalty', args.frequencyPenalty);
  put('presence_penalty', args.presencePenalty);
  put('repetition_penalty', args.repetitionPenalty);
  const extraBody = { ...sampling, ...(args.extraBody ?? {}) };

  const agents = new ClientAgents();
  const runOptions: BenchmarkRunOptions = {
    backend,
    apiUrl,
    model: modelName,
    requests,
    requestRate: args.requestRate,
    burstiness: args.burstiness,
    maxConcurrency: args.maxConcurrency,
    ignoreEos,
    ...(args.logprobs !== null ? { logprobs: args.logprobs } : {}),
    ...(Object.keys(extraBody).length > 0 ? { extraBody } : {}),
    headers,
    sendTokenIds: args.sendTokenIds,
    seed: args.seed,
    numWarmups: args.numWarmups,
    request: { agents },
  };
  try {
    if (args.readyCheckTimeoutSec > 0) {
      await readyCheck(runOptions, requests[0]!, args.readyCheckTimeoutSec, io);
    } else {
      io.out('Skipping endpoint ready check.');
    }
    if (args.numWarmups > 0) io.out(`Warming up with ${args.numWarmups} requests...`);
    io.out('Starting main benchmark run...');
    io.out(`Traffic request rate: ${pyFloat(args.requestRate)}`);
    io.out(
      `Burstiness factor: ${pyFloat(args.burstiness)} (${args.burstiness === 1 ? 'Poisson process' : 'Gamma distribution'})`,
    );
    io.out(`Maximum request concurrency: ${args.maxConcurrency ?? 'None'}`);
    const progress = createProgress(requests.length, !args.disableTqdm);
    const { outputs, durationS } = await runBenchmark({ ...runOptions, progress });

    const { metrics, actualOutputLens } = calculateMetrics(
      outputs,
      durationS,
      (text) => tokenizer.encode(text, { addSpecialTokens: false }).length,
      percentiles,
      goodput,
    );
    const failures = outputs.filter((o) => !o.success);
    if (failures.length > 0) {
      io.out('Failed requests during benchmark run detected (capping to 10):');
      failures.slice(0, 10).forEach((o, i) => {
        io.out(`Error ${i}: ${o.error}`);
      });
    }
    if (metrics.completed === 0) {
      io.err(
        'WARNING: All requests failed. This is likely due to a misconfiguration on the benchmark arguments.',
      );
    }
    for (const line of formatResultTable(metrics, {
      durationS,
      maxConcurrency: args.maxConcurrency,
      requestRate: args.requestRate,
      goodputEnabled,
      percentileMetrics,
    })) {
      io.out(line);
    }

    const date = resultDate();
    const result = buildResultJson(
      {
        date,
        backend: backend.name,
        label: args.label,
        modelId,
        tokenizerId,
        numPrompts: args.numPrompts,
        metadata,
        requestRate: args.requestRate,
        burstiness: args.burstiness,
        maxConcurrency: args.maxConcurrency,
      },
      durationS,
      metrics,
      outputs,
      actualOutputLens,
      goodputEnabled,
      percentileMetrics,
    );
    let resultPath: string | null = null;
    if (args.saveResult || args.appendResult) {
      let name =
        args.resultFilename ??
        defaultResultFilename({
          label: args.label,
          backend: backend.name,
          requestRate: args.requestRate,
          maxConcurrency: args.maxConcurrency,
          modelId,
          date,
        });
      if (args.resultDir !== null) {
        mkdirSync(args.resultDir, { recursive: true });
        name = join(args.resultDir, name);
      }
      const text = JSON.stringify(result);
      if (args.appendResult) appendFileSync(name, `${existsNonEmpty(name) ? '\n' : ''}${text}`);
      else writeFileSync(name, text);
      resultPath = name;
    }
    return { result, resultPath };
  } finally {
    agents.close();
  }
}

/** `host:port`, with IPv6 hosts in brackets. */
function hostPort(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

function existsNonEmpty(path: string): boolean {
  try {
    return statSync(path).size > 0;
  } catch {
    return false;
  }
}

/** vLLM's ready check: sends the first request until it succeeds or the timeout passes. */
async function readyCheck(o: BenchmarkRunOptions, first: SampleRequest, timeoutS: number, io: BenchIO) {
  io.out(`Waiting for endpoint to become up in ${timeoutS} seconds`);
  const deadline = Date.now() + timeoutS * 1000;
  const input = requestInput(o, first);
  for (;;) {
    const out = await o.backend.requestFunc(input, o.request);
    if (out.success) {
      io.out('Initial test run completed.');
      return;
    }
    if (Date.now() >= deadline) {
      throw new EndpointNotReadyError(
        `Initial test run failed - Please make sure benchmark arguments are correctly specified. Error: ${out.error}`,
      );
    }
    await new Promise((r) => setTimeout(r, 5000));
  }
}
