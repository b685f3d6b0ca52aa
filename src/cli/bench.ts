// `duet bench serve`: vLLM's serving benchmark client (`vllm bench serve`, benchmark_serving.py) with its
// flag names and defaults, against any OpenAI-compatible server. Flags are parsed here; the run lives in
// src/bench/serve-benchmark.ts. `--flag_name` spellings work (main.ts normalises argv).

import { Command, InvalidArgumentError, Option } from 'commander';
import { BACKENDS } from '../bench/backends.js';
import { type BenchServeArgs, DEFAULT_BENCH_SERVE_ARGS as D } from '../bench/serve-args.js';
import { runServeBenchmark } from '../bench/serve-benchmark.js';
import { intArg } from './int-arg.js';
import { jsonObjectArg } from './json-object-arg.js';

function floatArg(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || Number.isNaN(n))
      throw new InvalidArgumentError(`${flag} takes a number, got "${v}"`);
    return n;
  };
}

/** A rate or factor that may be "inf" (Python's float('inf') spellings). */
function rateArg(flag: string) {
  return (v: string): number => {
    if (/^\+?(inf|infinity)$/i.test(v.trim())) return Number.POSITIVE_INFINITY;
    const n = Number(v);
    if (v.trim() === '' || !(n > 0))
      throw new InvalidArgumentError(`${flag} takes a number > 0 or inf, got "${v}"`);
    return n;
  };
}

/** commander's option values → BenchServeArgs. */
function argsFromOptions(o: Record<string, unknown>): BenchServeArgs {
  const pick = <K extends keyof BenchServeArgs>(key: K): BenchServeArgs[K] =>
    (o[key] === undefined ? D[key] : o[key]) as BenchServeArgs[K];
  const keys = Object.keys(D) as (keyof BenchServeArgs)[];
  return Object.fromEntries(keys.map((k) => [k, pick(k)])) as unknown as BenchServeArgs;
}

/** The `serve` subcommand of `duet bench`. */
export function benchServeCommand(): Command {
  const cmd = new Command('serve')
    .description('benchmark the online serving throughput and latency of an OpenAI-compatible server')
    .addOption(
      new Option('--backend <name>', 'request API: openai (completions), vllm (same), openai-chat')
        .choices(Object.keys(BACKENDS))
        .default(D.backend),
    )
    .option('--label <label>', 'prefix of the result file name (default: the backend)')
    .option('--base-url <url>', 'server URL, e.g. http://10.0.0.2:8006 (instead of --host and --port)')
    .option('--host <host>', 'server host', D.host)
    .option('--port <port>', 'server port', intArg('--port', 1), D.port)
    .option('--endpoint <path>', 'API path (default: /v1/completions; /v1/chat/completions for openai-chat)')
    .option('--header <KEY=VALUE...>', 'headers to add to every request')
    .option('--api-key <key>', 'bearer token (default: the OPENAI_API_KEY environment variable)')
    .option('--model <name>', "model name (default: the first model of the server's /v1/models)")
    .option('--served-model-name <name>', 'name sent in requests when it differs from --model')
    .option('--tokenizer <dir>', 'folder with tokenizer.json (default: the model folder, else DeepSeek-V3)')
    .addOption(
      new Option('--dataset-name <name>', 'prompts: random, or jsonl (a file)')
        .choices(['random', 'jsonl'])
        .default(D.datasetName),
    )
    .option('--dataset-path <file>', 'JSON Lines of {"prompt": "..."} or {"prompt_token_ids": [...]} (jsonl)')
    .option('--num-prompts <n>', 'number of requests', intArg('--num-prompts', 1), D.numPrompts)
    .option('--input-len <n>', 'general input length (sets --random-input-len)', intArg('--input-len', 0))
    .option('--output-len <n>', 'general output length (sets --random-output-len)', intArg('--output-len', 1))
    .option(
      '--random-input-len <n>',
      'prompt tokens, BOS included',
      intArg('--random-input-len', 0),
      D.randomInputLen,
    )
    .option(
      '--random-output-len <n>',
      'tokens to generate',
      intArg('--random-output-len', 1),
      D.randomOutputLen,
    )
    .option(
      '--random-range-ratio <r>',
      'lengths drawn from [len·(1−r), len·(1+r)], r in [0, 1)',
      floatArg('--random-range-ratio'),
      D.randomRangeRatio,
    )
    .option(
      '--random-prefix-len <n>',
      'random tokens shared by every prompt, before the input',
      intArg('--random-prefix-len', 0),
      D.randomPrefixLen,
    )
    .addOption(
      new Option('--request-rate <rps>', 'requests per second, or inf to send all at once (Poisson arrivals)')
        .argParser(rateArg('--request-rate'))
        .default(D.requestRate, 'inf'),
    )
    .option(
      '--burstiness <k>',
      'gamma shape of inter-arrival times: 1 Poisson, < 1 burstier, > 1 steadier',
      rateArg('--burstiness'),
      D.burstiness,
    )
    .option('--max-concurrency <n>', 'at most this many requests in flight', intArg('--max-concurrency', 1))
    .option(
      '--percentile-metrics <list>',
      'metrics to report percentiles of: ttft,tpot,itl,e2el,client_queue_time (default ttft,tpot,itl)',
    )
    .option('--metric-percentiles <list>', 'percentiles to report, e.g. 50,90,99', D.metricPercentiles)
    .option(
      '--goodput <KEY:VALUE...>',
      'service level objectives in ms, e.g. ttft:500 tpot:50 (keys ttft, tpot, e2el)',
    )
    .option('--ignore-eos', 'send ignore_eos (always on for the random dataset, as in vLLM)')
    .option('--seed <n>', 'seed of the dataset and the arrival times', intArg('--seed', 0), D.seed)
    .option('--save-result', 'save the result as JSON')
    .option('--save-detailed', 'accepted for vLLM compatibility: per-request fields are always saved')
    .option('--append-result', 'append the result as one JSON line to the result file')
    .option('--result-dir <dir>', 'folder of the result file (default: the current folder)')
    .option(
      '--result-filename <name>',
      'result file name (default: {backend}-{rate}qps[-concurrency{N}]-{model}-{date}.json)',
    )
    .option('--metadata <KEY=VALUE...>', 'extra fields recorded in the result JSON')
    .option('--disable-tqdm', 'no progress bar')
    .option(
      '--num-warmups <n>',
      'unmeasured warm-up requests sent first',
      intArg('--num-warmups', 0),
      D.numWarmups,
    )
    .option(
      '--ready-check-timeout-sec <s>',
      'retry the first request until it succeeds, up to this long (0: skip)',
      intArg('--ready-check-timeout-sec', 0),
      D.readyCheckTimeoutSec,
    )
    .option('--request-id-prefix <prefix>', 'prefix of the x-request-id of each request')
    .option('--logprobs <k>', 'logprobs per generated token (completions)', intArg('--logprobs', 0))
    .option('--temperature <t>', "sampling temperature (default: the server's)", floatArg('--temperature'))
    .option('--top-p <p>', 'nucleus sampling threshold', floatArg('--top-p'))
    .option('--top-k <k>', 'top-k sampling', intArg('--top-k', -1))
    .option('--min-p <p>', 'min-p sampling', floatArg('--min-p'))
    .option('--frequency-penalty <x>', 'frequency penalty', floatArg('--frequency-penalty'))
    .option('--presence-penalty <x>', 'presence penalty', floatArg('--presence-penalty'))
    .option('--repetition-penalty <x>', 'repetition penalty', floatArg('--repetition-penalty'))
    .option(
      '--extra-body <json>',
      'JSON object merged into every request body',
      jsonObjectArg('--extra-body', '{"top_k": 1}'),
    )
    .option('--send-token-ids', 'Duet: send random prompts as token ids instead of text (completions only)');
  cmd.action(async (o: Record<string, unknown>) => {
    await runServeBenchmark(argsFromOptions(o));
  });
  cmd.exitOverride();
  return cmd;
}

/** `duet bench`: benchmark subcommands (`serve`). */
export function benchCommand(): Command {
  const cmd = new Command('bench').description("benchmarks, as vLLM's `vllm bench`");
  cmd.addCommand(benchServeCommand());
  return cmd;
}
