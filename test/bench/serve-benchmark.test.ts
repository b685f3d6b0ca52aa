// `duet bench serve` against a fake OpenAI-compatible server that streams known tokens on a known timetable
// (first token 80 ms after a request arrives, then one every 40 ms): the measured TTFT, ITL, TPOT, E2EL,
// token counts and throughput agree with what the server did, for completions and chat (whose role-only
// opening chunk is not a token), with and without usage; failed requests are counted with their error;
// requests leave on the seeded arrival schedule; and the command line writes vLLM's JSON result.
// Timing tolerances: timers never fire early by more than 1 ms, and a loaded 2-core machine may add tens
// of ms, so lower bounds are tight (−2 ms) and upper bounds loose (+60 ms on means).

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { arrivalSchedule } from '../../src/bench/arrivals.js';
import { BenchRng } from '../../src/bench/bench-rng.js';
import { ExactLengthPromptBuilder } from '../../src/bench/exact-length-prompt.js';
import { NO_TOKEN_ERROR } from '../../src/bench/openai-requests.js';
import { benchServeArgs } from '../../src/bench/serve-args.js';
import { type BenchIO, runServeBenchmark } from '../../src/bench/serve-benchmark.js';
import { loadTokenizer } from '../../src/tokenizer/tokenizer.js';
import { fixtureDir } from '../helpers/golden.js';
import { tempDir } from '../helpers/temp-dir.js';
import { type FakeServer, type FakeServerOptions, startFakeServer } from './fake-openai-server.js';

const TOKENIZER = fixtureDir('v2-lite-tiny');
const tiny = loadTokenizer(TOKENIZER);
const ROOT = join(TOKENIZER, '..', '..', '..');
const BIN = join(ROOT, 'bin', 'duet.js');
// Token texts the tiny tokenizer counts as one token each, also when concatenated: " the", " and", ...
const WORDS = new ExactLengthPromptBuilder(tiny, new BenchRng(0)).fillerTokenIds
  .slice(0, 8)
  .map((id) => tiny.decode([id]));
const TTFT_MS = 80;
const ITL_MS = 40;

/** Server prompt count: the text with BOS (completions), the user message plus 10 template tokens (chat). */
function promptTokens(body: Record<string, unknown>): number {
  if (typeof body.prompt === 'string') return tiny.encode(body.prompt).length;
  if (Array.isArray(body.prompt)) return body.prompt.length;
  const messages = body.messages as { content: string }[];
  return tiny.encode(messages[0]!.content).length + 10;
}

function capture(): BenchIO & { lines: string[] } {
  const lines: string[] = [];
  return { lines, out: (l) => lines.push(l), err: (l) => lines.push(l) };
}

async function withServer<T>(o: Partial<FakeServerOptions>, run: (s: FakeServer) => Promise<T>): Promise<T> {
  const server = await startFakeServer({ tokens: WORDS, ttftMs: TTFT_MS, itlMs: ITL_MS, promptTokens, ...o });
  try {
    return await run(server);
  } finally {
    await server.close();
  }
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);
const close = (a: number, b: number, tol: number, what: string) =>
  assert.ok(Math.abs(a - b) <= tol, `${what}: ${a} vs ${b} (tolerance ${tol})`);

/** The checks shared by completions and chat: 6 requests of 5 tokens, 2 at a time. */
function checkTimings(r: Record<string, unknown>, expectedInput: number) {
  assert.equal(r.completed, 6);
  assert.equal(r.failed, 0);
  assert.equal(r.total_output_tokens, 30);
  assert.deepEqual(r.output_lens, [5, 5, 5, 5, 5, 5]);
  assert.equal(r.total_input_tokens, expectedInput);
  const ttfts = r.ttfts as number[];
  const itls = r.itls as number[][];
  const latencies = r.latencies as number[];
  for (let i = 0; i < 6; i++) {
    assert.ok(ttfts[i]! * 1000 >= TTFT_MS - 2, `TTFT ${ttfts[i]} of request ${i} is before the first token`);
    assert.equal(itls[i]!.length, 4, 'one gap between each of the 5 token chunks');
    close(latencies[i]!, ttfts[i]! + sum(itls[i]!), 1e-9, 'E2EL = TTFT + ITLs');
    assert.ok(latencies[i]! * 1000 >= TTFT_MS + 4 * ITL_MS - 2);
  }
  const meanTtft = r.mean_ttft_ms as number;
  const meanItl = r.mean_itl_ms as number;
  assert.ok(meanTtft >= TTFT_MS - 1 && meanTtft <= TTFT_MS + 60, `mean TTFT ${meanTtft}`);
  assert.ok(meanItl >= ITL_MS - 5 && meanItl <= ITL_MS + 60, `mean ITL ${meanItl}`);
  // every request has 4 gaps, so the mean TPOT (E2EL − TTFT)/4 is the mean ITL
  close(r.mean_tpot_ms as number, meanItl, 1e-6, 'mean TPOT vs mean ITL');
  const duration = r.duration as number;
  // 3 waves of 2 requests, each at least 80 + 4·40 ms long
  assert.ok(duration >= (3 * (TTFT_MS + 4 * ITL_MS)) / 1000 - 0.003 && duration < 3, `duration ${duration}`);
  close(r.output_throughput as number, 30 / duration, 1e-9, 'output throughput');
  close(r.request_throughput as number, 6 / duration, 1e-9, 'request throughput');
  close(r.total_token_throughput as number, (expectedInput + 30) / duration, 1e-9, 'total token throughput');
  assert.equal(r.max_concurrent_requests, 2);
  assert.equal(r.max_concurrency, 2);
}

const BASE = {
  tokenizer: TOKENIZER,
  numPrompts: 6,
  randomInputLen: 32,
  randomOutputLen: 5,
  maxConcurrency: 2,
  disableTqdm: true,
  requestIdPrefix: 'req-',
  metricPercentiles: '50,90',
};

describe('bench serve against a fake OpenAI-compatible server', () => {
  test('completions: measured timings and counts match the server, request bodies as vLLM sends them', async () => {
    await withServer({}, async (server) => {
      const io = capture();
      const { result } = await runServeBenchmark(
        benchServeArgs({
          ...BASE,
          baseUrl: server.baseUrl,
          apiKey: 'sk-test',
          goodput: ['ttft:10000', 'tpot:10000'],
        }),
        io,
      );
      checkTimings(result, 6 * 32); // the server counts 31 prompt tokens + BOS, and usage says so
      assert.deepEqual(result.input_lens, [32, 32, 32, 32, 32, 32]);
      assert.equal(result.model_id, 'fake-root'); // /v1/models root; requests use its id
      close(result.request_goodput as number, 6 / (result.duration as number), 1e-9, 'goodput');
      assert.ok('p90_ttft_ms' in result && 'p50_itl_ms' in result);
      assert.equal(server.received.length, 6);
      for (const req of server.received) {
        assert.equal(req.path, '/v1/completions');
        assert.equal(req.body.model, 'fake-model');
        assert.equal(req.body.max_tokens, 5);
        assert.equal(req.body.stream, true);
        assert.deepEqual(req.body.stream_options, { include_usage: true });
        assert.equal(req.body.ignore_eos, true); // always for the random dataset, as vLLM
        assert.equal(tiny.encode(req.body.prompt as string, { addSpecialTokens: false }).length, 31);
        assert.equal(req.headers.authorization, 'Bearer sk-test');
        assert.match(String(req.headers['x-request-id']), /^req-\d$/);
      }
      assert.ok(io.lines.includes('============ Serving Benchmark Result ============'));
      assert.ok(io.lines.includes(`${'Successful requests:'.padEnd(40)} ${'6'.padEnd(10)}`));
    });
  });

  test('chat: the role-only opening chunk is not the first token; max_completion_tokens; usage', async () => {
    await withServer({}, async (server) => {
      const { result } = await runServeBenchmark(
        benchServeArgs({ ...BASE, backend: 'openai-chat', baseUrl: server.baseUrl, model: 'm' }),
        capture(),
      );
      checkTimings(result, 6 * (32 + 10)); // the message encodes to 31 tokens + BOS, plus 10 of template
      for (const req of server.received) {
        assert.equal(req.path, '/v1/chat/completions');
        assert.equal(req.body.max_completion_tokens, 5);
        const messages = req.body.messages as { role: string; content: string }[];
        assert.equal(messages.length, 1);
        assert.equal(messages[0]!.role, 'user');
      }
      assert.equal((result.generated_texts as string[])[0], [0, 1, 2, 3, 4].map((k) => WORDS[k]).join(''));
    });
  });

  test("no usage from the server: output tokens are counted with the tokenizer, inputs are the dataset's", async () => {
    await withServer({ reportUsage: false }, async (server) => {
      const { result } = await runServeBenchmark(
        benchServeArgs({ ...BASE, baseUrl: server.baseUrl }),
        capture(),
      );
      checkTimings(result, 6 * 31);
    });
  });

  test('failed requests are counted with their error and left out of the totals', async () => {
    const failure: FakeServerOptions['failure'] = (id) =>
      id === 'req-1'
        ? { kind: 'http', status: 400, message: 'prompt too long' }
        : id === 'req-2'
          ? { kind: 'disconnect' }
          : id === 'req-3'
            ? { kind: 'no-tokens' }
            : null;
    await withServer({ failure }, async (server) => {
      const io = capture();
      const { result } = await runServeBenchmark(benchServeArgs({ ...BASE, baseUrl: server.baseUrl }), io);
      assert.equal(result.completed, 3);
      assert.equal(result.failed, 3);
      const errors = result.errors as string[];
      assert.equal(errors[0], '');
      assert.match(errors[1]!, /^HTTP 400 Bad Request: .*prompt too long/);
      assert.ok(errors[2]!.length > 0, 'a cut connection is an error');
      assert.equal(errors[3], NO_TOKEN_ERROR);
      assert.deepEqual(result.output_lens, [5, 0, 0, 0, 5, 5]);
      assert.equal(result.total_output_tokens, 15);
      assert.equal(result.total_input_tokens, 3 * 32);
      assert.ok(io.lines.includes('Failed requests during benchmark run detected (capping to 10):'));
      assert.ok(io.lines.some((l) => l.startsWith('Error 0: HTTP 400')));
      assert.ok(io.lines.includes(`${'Failed requests:'.padEnd(40)} ${'3'.padEnd(10)}`));
    });
  });

  test('requests leave on the seeded Poisson schedule (server arrival times within 30 ms)', async () => {
    await withServer({ ttftMs: 1, itlMs: 1 }, async (server) => {
      const { result } = await runServeBenchmark(
        benchServeArgs({
          ...BASE,
          baseUrl: server.baseUrl,
          numPrompts: 10,
          randomOutputLen: 1,
          maxConcurrency: null,
          requestRate: 20,
          seed: 9,
        }),
        capture(),
      );
      const schedule = arrivalSchedule(10, 20, 1, new BenchRng(9, 1));
      const arrived = server.received.map((r) => r.arrivedAt).sort((a, b) => a - b);
      for (let i = 1; i < 10; i++) {
        close((arrived[i]! - arrived[0]!) / 1000, schedule[i]! - schedule[0]!, 0.03, `arrival ${i}`);
      }
      assert.ok((result.duration as number) >= 0.5 - 0.002, 'the last request leaves at N/rate = 0.5 s');
      assert.equal(result.request_rate, 20);
      assert.equal(result.max_concurrency, null);
    });
  });

  test('warm-ups and the ready check are sent but not measured; --append-result adds a line', async () => {
    const dir = tempDir('duet-bench-append-');
    await withServer({ ttftMs: 2, itlMs: 2 }, async (server) => {
      const args = benchServeArgs({
        ...BASE,
        baseUrl: server.baseUrl,
        numPrompts: 3,
        numWarmups: 2,
        readyCheckTimeoutSec: 5,
        appendResult: true,
        resultDir: dir,
        resultFilename: 'runs.jsonl',
      });
      const io = capture();
      const first = await runServeBenchmark(args, io);
      assert.equal(server.received.length, 1 + 2 + 3); // ready check, warm-ups, the run
      assert.equal(first.result.completed, 3);
      assert.ok(io.lines.includes('Initial test run completed.'));
      assert.ok(io.lines.includes('Warming up with 2 requests...'));
      await runServeBenchmark(args, capture());
      const lines = readFileSync(join(dir, 'runs.jsonl'), 'utf8').split('\n');
      assert.equal(lines.length, 2);
      for (const line of lines) assert.equal((JSON.parse(line) as { completed: number }).completed, 3);
    });
  });

  test('--send-token-ids and JSONL token-id prompts go out as token ids', async () => {
    await withServer({}, async (server) => {
      await runServeBenchmark(
        benchServeArgs({ ...BASE, baseUrl: server.baseUrl, numPrompts: 2, sendTokenIds: true }),
        capture(),
      );
      for (const req of server.received) {
        const ids = req.body.prompt as number[];
        assert.equal(ids.length, 32);
        assert.equal(ids[0], tiny.bosTokenId); // the ids the server would have built from the text
      }
    });
    const dir = tempDir('duet-bench-ids-');
    const path = join(dir, 'p.jsonl');
    writeFileSync(path, '{"prompt_token_ids": [1, 2, 3], "output_len": 2}\n{"prompt": "the cat"}\n');
    await withServer({}, async (server) => {
      const { result } = await runServeBenchmark(
        benchServeArgs({
          ...BASE,
          baseUrl: server.baseUrl,
          numPrompts: 2,
          datasetName: 'jsonl',
          datasetPath: path,
        }),
        capture(),
      );
      const bodies = server.received.map((r) => r.body.prompt);
      assert.ok(bodies.some((p) => JSON.stringify(p) === '[1,2,3]'));
      assert.ok(bodies.includes('the cat'));
      assert.equal(result.total_output_tokens, 2 + 5);
    });
    await assert.rejects(
      runServeBenchmark(
        benchServeArgs({
          ...BASE,
          backend: 'openai-chat',
          baseUrl: 'http://127.0.0.1:1',
          model: 'm',
          datasetName: 'jsonl',
          datasetPath: path,
        }),
        capture(),
      ),
      /only completions backends/,
    );
  });
});

/** Runs the real command line without blocking this process's event loop (the fake server lives here). */
function duet(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, OPENAI_API_KEY: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

describe('duet bench serve (command line)', () => {
  let server: FakeServer;
  before(async () => {
    server = await startFakeServer({ tokens: WORDS, ttftMs: 5, itlMs: 5, promptTokens });
  });
  after(() => server.close());

  test("vLLM's flags (either spelling) produce the table and the JSON result file", async () => {
    const dir = tempDir('duet-bench-cli-');
    const r = await duet([
      'bench',
      'serve',
      '--base-url',
      server.baseUrl,
      '--tokenizer',
      TOKENIZER,
      '--dataset_name',
      'random',
      '--random_input_len',
      '16',
      '--random-output-len',
      '3',
      '--num-prompts',
      '4',
      '--max-concurrency',
      '2',
      '--request-rate',
      '50',
      '--metric-percentiles',
      '50,90',
      '--percentile-metrics',
      'ttft,tpot,itl,e2el',
      '--goodput',
      'ttft:5000',
      'e2el:5000',
      '--ignore-eos',
      '--save-result',
      '--result-dir',
      dir,
      '--metadata',
      'run=ci',
      'tp=1',
      '--disable-tqdm',
      '--api-key',
      'sk-cli',
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /=+ Serving Benchmark Result =+/);
    assert.match(r.stdout, /Request rate configured \(RPS\): +50\.00/);
    assert.match(r.stdout, /P90 E2EL \(ms\):/);
    const files = readdirSync(dir);
    assert.equal(files.length, 1);
    assert.match(files[0]!, /^openai-50\.0qps-concurrency2-fake-root-\d{8}-\d{6}\.json$/);
    const json = JSON.parse(readFileSync(join(dir, files[0]!), 'utf8')) as Record<string, unknown>;
    assert.equal(json.completed, 4);
    assert.equal(json.total_input_tokens, 4 * 16);
    assert.equal(json.total_output_tokens, 12);
    assert.equal(json.run, 'ci');
    assert.equal(json.tp, '1');
    assert.equal(json.request_rate, 50);
    assert.equal(json.tokenizer_id, TOKENIZER);
    assert.ok(typeof json.request_goodput === 'number' && json.request_goodput > 0);
    assert.ok('p90_e2el_ms' in json && 'p50_tpot_ms' in json);
    assert.ok(server.received.some((q) => q.headers.authorization === 'Bearer sk-cli'));
  });

  test('bad flags end with one clear error and a non-zero status', async () => {
    const base = [
      'bench',
      'serve',
      '--base-url',
      server.baseUrl,
      '--tokenizer',
      TOKENIZER,
      '--num-prompts',
      '1',
    ];
    const cases: [string[], RegExp][] = [
      [['--backend', 'tgi'], /Allowed choices are openai, vllm, openai-chat/],
      [['--goodput', 'itl:5'], /one of ttft, tpot, e2el/],
      [['--backend', 'openai-chat', '--endpoint', '/v1/completions'], /ending in "chat\/completions"/],
      [['--request-rate', '0'], /--request-rate takes a number > 0 or inf/],
      [['--random-range-ratio', '1.5'], /\[0, 1\)/],
      [['--percentile-metrics', 'ttft,foo'], /unknown --percentile-metrics name "foo"/],
      [['--dataset-path', '/tmp/x.jsonl'], /cannot use the 'random' dataset with --dataset-path/],
      [['--no-such-flag'], /unknown option/],
    ];
    for (const [extra, re] of cases) {
      const r = await duet([...base, ...extra]);
      assert.notEqual(r.status, 0, extra.join(' '));
      assert.match(r.stderr, re, extra.join(' '));
    }
  });
});
