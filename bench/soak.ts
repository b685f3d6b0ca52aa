// Soak test of `duet serve`: starts the server (the embedded model unless --model is given) and drives it
// for --minutes at full concurrency with `duet bench serve`'s streaming client, mixing in clients that
// cancel mid-request and requests with bad fields, while /health is polled. At the end it prints:
//   requests sent / answered / cancelled / lost (lost must be 0: neither an answer nor a cancellation),
//   answers by kind (completed, 4xx for bad requests, 5xx: must be 0),
//   KV blocks in use once idle (must be 0, from /metrics), the server's RSS after warm-up and at the end
//   (growth %), and the p50 / p99 latency of /health during the run.
// Exits with status 1 when a must-be-zero figure is not.
//
//   npm run bench:soak -- --minutes 10 [--concurrency 16] [--max-tokens 32] [--cancel-fraction 0.15]
//                         [--bad-fraction 0.15] [--model DIR] [--seed 1]

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BenchRng } from '../src/bench/bench-rng.js';
import { ClientAgents } from '../src/bench/http-stream.js';
import { requestOpenAICompletions } from '../src/bench/openai-requests.js';
import { percentile } from '../src/bench/statistics.js';
import { parseBenchArgs } from './bench-args.js';

const { values } = parseBenchArgs(import.meta.url, {
  options: {
    minutes: { type: 'string', default: '1' },
    concurrency: { type: 'string', default: '16' },
    'max-tokens': { type: 'string', default: '32' },
    'cancel-fraction': { type: 'string', default: '0.15' },
    'bad-fraction': { type: 'string', default: '0.15' },
    model: { type: 'string' },
    seed: { type: 'string', default: '1' },
  },
});
const minutes = Number(values.minutes);
const concurrency = Number(values.concurrency);
const maxTokens = Number(values['max-tokens']);
const cancelFraction = Number(values['cancel-fraction']);
const badFraction = Number(values['bad-fraction']);
if (!(minutes > 0) || !(concurrency >= 1) || !(maxTokens >= 1) || !(cancelFraction + badFraction <= 1)) {
  throw new RangeError(
    '--minutes > 0, --concurrency >= 1, --max-tokens >= 1 and --cancel-fraction + --bad-fraction <= 1',
  );
}
const durationMs = minutes * 60_000;
/** RSS is first read after this: the heap and the caches have grown to their working size. */
const warmUpMs = Math.min(60_000, durationMs / 4);

/** Bodies a client may send by mistake or malice; each must get a 4xx, never a 5xx or a dead engine. */
const BAD_FIELDS: readonly Record<string, unknown>[] = [
  { max_tokens: -1 },
  { max_tokens: 10_000_000 },
  { temperature: 'hot' },
  { top_p: 0 },
  { prompt: [] },
  { prompt: [10_000_000] },
  { stop: [''] },
  { logprobs: 100_000 },
  { n: 0 },
  { logit_bias: { '-5': 1 } },
  { stop_token_ids: [-1] },
  { model: 'no-such-model' },
];

const WORDS = ['the', 'engine', 'serves', 'many', 'requests', 'under', 'load', 'while', 'clients', 'leave'];

interface Tally {
  sent: number;
  completed: number;
  rejected4xx: number;
  failed5xx: number;
  /** Streams that ended with an error event (the server answered, with an error). */
  streamErrors: number;
  cancelled: number;
  /** A bad request the server accepted. */
  badAccepted: number;
  lost: number;
  lostSamples: string[];
}

/** Starts `duet serve` on a free port; resolves with its URL and KV cache size once it serves. */
async function startServe(): Promise<{ child: ChildProcess; url: string; numBlocks: number }> {
  const bin = fileURLToPath(new URL('../../bin/duet.js', import.meta.url));
  const args = [bin, 'serve', '--port', '0', '--disable-log-stats'];
  if (values.model) args.push('--model', values.model);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      log += d;
      const url = / at (http:\/\/[^\s]+)\n/.exec(log);
      const blocks = /KV cache: (\d+) blocks/.exec(log);
      if (url && blocks) resolve({ child, url: url[1]!, numBlocks: Number(blocks[1]) });
    });
    child.once('exit', (code) => reject(new Error(`duet serve exited (${code}) before serving:\n${log}`)));
  });
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

/** One gauge's value from a Prometheus text exposition. */
function gauge(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([^\\s]+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

const { child, url, numBlocks } = await startServe();
const agents = new ClientAgents();
const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: { id: string }[] };
const model = models.data[0]!.id;
const apiUrl = `${url}/v1/completions`;
console.log(
  `soak: ${minutes} min against ${url} (model ${model}, ${numBlocks} KV blocks), concurrency ${concurrency}, ` +
    `up to ${maxTokens} tokens, ${cancelFraction * 100}% cancelled, ${badFraction * 100}% bad`,
);

const tally: Tally = {
  sent: 0,
  completed: 0,
  rejected4xx: 0,
  failed5xx: 0,
  streamErrors: 0,
  cancelled: 0,
  badAccepted: 0,
  lost: 0,
  lostSamples: [],
};
const start = performance.now();
const deadline = start + durationMs;

/** Sends requests one after another until the deadline: one client of the full-concurrency load. */
async function client(index: number): Promise<void> {
  const rng = new BenchRng(Number(values.seed), index + 1);
  while (performance.now() < deadline) {
    const roll = rng.float();
    const kind = roll < badFraction ? 'bad' : roll < badFraction + cancelFraction ? 'cancel' : 'normal';
    const numWords = rng.integer(1, 40);
    const prompt = Array.from({ length: numWords }, () => WORDS[rng.integer(0, WORDS.length - 1)]).join(' ');
    const controller = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    if (kind === 'cancel') timer = setTimeout(() => controller.abort(), rng.integer(0, 1500));
    tally.sent++;
    const out = await requestOpenAICompletions(
      {
        apiUrl,
        model,
        prompt,
        promptLen: numWords,
        outputLen: rng.integer(1, maxTokens),
        ignoreEos: true,
        ...(kind === 'bad' ? { extraBody: BAD_FIELDS[rng.integer(0, BAD_FIELDS.length - 1)]! } : {}),
      },
      { agents, signal: controller.signal },
    );
    clearTimeout(timer);
    const status = /^HTTP (\d{3})/.exec(out.error);
    if (out.success) {
      tally.completed++;
      if (kind === 'bad') tally.badAccepted++;
    } else if (status && status[1]!.startsWith('4')) {
      tally.rejected4xx++;
    } else if (status) {
      tally.failed5xx++;
      if (tally.lostSamples.length < 5) tally.lostSamples.push(out.error.slice(0, 300));
    } else if (controller.signal.aborted) {
      tally.cancelled++;
    } else if (out.error.startsWith('the server reported an error mid-stream')) {
      tally.streamErrors++;
      if (tally.lostSamples.length < 5) tally.lostSamples.push(out.error.slice(0, 300));
    } else {
      tally.lost++;
      if (tally.lostSamples.length < 5) tally.lostSamples.push(out.error.slice(0, 300));
    }
  }
}

/** Polls /health every 200 ms until `stop()`; returns the latencies (ms) and the non-200 answers. */
function pollHealth(): { stop(): Promise<{ latencies: number[]; unhealthy: number }> } {
  const latencies: number[] = [];
  let unhealthy = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const t = performance.now();
      try {
        const r = await fetch(`${url}/health`);
        await r.arrayBuffer();
        if (r.status !== 200) unhealthy++;
      } catch {
        unhealthy++;
      }
      latencies.push(performance.now() - t);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return { latencies, unhealthy };
    },
  };
}

const health = pollHealth();
let rssWarm = Number.NaN;
const warmTimer = setTimeout(() => {
  rssWarm = rssBytes(child.pid!);
}, warmUpMs);
await Promise.all(Array.from({ length: concurrency }, (_, i) => client(i)));
clearTimeout(warmTimer);
const { latencies, unhealthy } = await health.stop();

// Idle: wait (up to 30 s) for the engine to have no request, then read the gauges and the RSS.
let metrics = '';
for (let waited = 0; waited < 30_000; waited += 250) {
  metrics = await (await fetch(`${url}/metrics`)).text();
  if (gauge(metrics, 'vllm:num_requests_running') + gauge(metrics, 'vllm:num_requests_waiting') === 0) break;
  await new Promise((resolve) => setTimeout(resolve, 250));
}
const kvUsage = gauge(metrics, 'vllm:kv_cache_usage_perc');
const kvBlocksInUse = Math.round(kvUsage * numBlocks);
const rssEnd = rssBytes(child.pid!);
child.kill('SIGTERM');
await new Promise((resolve) => child.once('exit', resolve));
agents.close();

const answered = tally.completed + tally.rejected4xx + tally.failed5xx + tally.streamErrors;
const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
const elapsed = (performance.now() - start) / 1000;
console.log(`ran ${elapsed.toFixed(0)} s`);
console.log(
  `requests: sent ${tally.sent}, answered ${answered}, cancelled by the client ${tally.cancelled}, ` +
    `lost ${tally.lost}`,
);
console.log(
  `answers: completed ${tally.completed}, 4xx ${tally.rejected4xx}, 5xx ${tally.failed5xx}, ` +
    `error mid-stream ${tally.streamErrors}, bad requests accepted ${tally.badAccepted}`,
);
console.log(
  `KV blocks in use when idle: ${kvBlocksInUse} of ${numBlocks} (vllm:kv_cache_usage_perc ${kvUsage})`,
);
console.log(
  `RSS: after warm-up (${(warmUpMs / 1000).toFixed(0)} s) ${mib(rssWarm)}, at the end ${mib(rssEnd)}, ` +
    `growth ${(((rssEnd - rssWarm) / rssWarm) * 100).toFixed(1)}%`,
);
console.log(
  `/health: ${latencies.length} polls, p50 ${percentile(latencies, 50).toFixed(1)} ms, ` +
    `p99 ${percentile(latencies, 99).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms, ` +
    `not 200: ${unhealthy}`,
);
for (const s of tally.lostSamples) console.log(`  e.g. ${s}`);
const failed =
  tally.lost > 0 || tally.failed5xx > 0 || tally.streamErrors > 0 || kvBlocksInUse !== 0 || unhealthy > 0;
if (failed) {
  console.log('soak FAILED: lost requests, 5xx, errors mid-stream, leaked KV blocks or an unhealthy server');
  process.exitCode = 1;
}
