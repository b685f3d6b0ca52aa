// Acceptance 4 of issue 4: `duet bench serve` with the seed benchmark's flags (input length scaled to the
// tiny fixture) against a real `duet serve` child process, and the JSON result agrees with the server's
// own /metrics. Token counts compare exactly: the random dataset writes 63-token texts so that the server,
// which adds BOS, sees exactly --random-input-len 64 tokens; the benchmark records usage.prompt_tokens
// (BOS included, as the server counts), so total_input_tokens equals the growth of
// vllm:prompt_tokens_total, and total_output_tokens that of vllm:generation_tokens_total. Every successful
// request has its first token observed in vllm:time_to_first_token_seconds.
// A probe request first: a server that cannot generate one token fails the test with its answer (the
// server's own tests cover generation in detail; this one must not pass without having measured anything).

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fixtureDir } from '../helpers/golden.js';
import { tempDir } from '../helpers/temp-dir.js';

const TINY = fixtureDir('v2-lite-tiny');
const ROOT = join(TINY, '..', '..', '..');
const BIN = join(ROOT, 'bin', 'duet.js');

/** Runs a command to its end without blocking the event loop; resolves with its output. */
function run(
  args: string[],
  timeoutMs: number,
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, OPENAI_API_KEY: '' } });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/** The value of an unlabelled-or-model_name-labelled Prometheus sample, summed over matching lines. */
function sample(metricsText: string, name: string, labelFilter = ''): number {
  let total = 0;
  let found = false;
  for (const line of metricsText.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([^\s{]+)(\{[^}]*\})?\s+(\S+)$/.exec(line.trim());
    if (m === null || m[1] !== name || !(m[2] ?? '').includes(labelFilter)) continue;
    total += Number(m[3]);
    found = true;
  }
  assert.ok(found, `/metrics has ${name}${labelFilter ? ` with ${labelFilter}` : ''}`);
  return total;
}

describe('duet bench serve against duet serve (issue 4, acceptance 4)', () => {
  let server: ChildProcess;
  let baseUrl: string;
  let serverLog = '';

  before(async () => {
    server = spawn(process.execPath, [
      BIN,
      'serve',
      '--model',
      TINY,
      '--port',
      '0',
      '--kv-cache-memory',
      '16MiB',
      '--block-size',
      '16',
      '--disable-log-stats',
    ]);
    baseUrl = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`duet serve did not start in 60 s:\n${serverLog}`)),
        60_000,
      );
      server.stderr!.setEncoding('utf8');
      server.stderr!.on('data', (d: string) => {
        serverLog += d;
        const m = / at (http:\/\/127\.0\.0\.1:\d+)\n/.exec(serverLog);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
      server.once('exit', (code) =>
        reject(new Error(`duet serve exited (${code}) before serving:\n${serverLog}`)),
      );
    });
  });

  after(async () => {
    if (server.exitCode === null) {
      const exited = new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGTERM');
      await exited;
    }
  });

  test("the seed benchmark's flags: 20 requests, counts equal to the server's counters", async () => {
    const probe = await fetch(`${baseUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'hello', max_tokens: 1 }),
    });
    assert.equal(
      probe.status,
      200,
      `duet serve answers a one-token completion: HTTP ${probe.status} ${(await probe.text()).slice(0, 300)}`,
    );
    const metrics = async () => (await fetch(`${baseUrl}/metrics`)).text();
    const before = await metrics();
    const dir = tempDir('duet-bench-e2e-');
    const r = await run(
      [
        'bench',
        'serve',
        '--base-url',
        baseUrl,
        '--dataset-name',
        'random',
        '--random-input-len',
        '64',
        '--random-output-len',
        '1',
        '--num-prompts',
        '20',
        '--max-concurrency',
        '8',
        '--request-rate',
        '5',
        '--metric-percentiles',
        '90',
        '--ignore-eos',
        '--tokenizer',
        TINY,
        '--save-result',
        '--result-dir',
        dir,
        '--result-filename',
        'result.json',
        '--disable-tqdm',
      ],
      120_000,
    );
    assert.equal(r.status, 0, `${r.stderr}\n${r.stdout}\nserver log:\n${serverLog}`);
    assert.ok(
      !r.stdout.includes('tokenizer mismatch'),
      'the server counts the prompts as the benchmark does',
    );
    const result = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as Record<string, unknown>;
    const after = await metrics();
    const delta = (name: string, label = '') => sample(after, name, label) - sample(before, name, label);

    assert.equal(result.completed, 20, `errors: ${JSON.stringify(result.errors)}`);
    assert.equal(result.failed, 0);
    assert.deepEqual(result.input_lens, new Array(20).fill(64)); // 63 text tokens + the server's BOS
    assert.deepEqual(result.output_lens, new Array(20).fill(1));
    assert.equal(result.total_input_tokens, 20 * 64);
    assert.equal(result.total_output_tokens, 20);
    assert.equal(delta('vllm:prompt_tokens_total'), result.total_input_tokens);
    assert.equal(delta('vllm:generation_tokens_total'), result.total_output_tokens);
    assert.equal(delta('vllm:time_to_first_token_seconds_count'), result.completed);
    assert.equal(delta('vllm:request_success_total', 'finished_reason="length"'), 20);
    assert.equal(result.request_rate, 5);
    assert.equal(result.max_concurrency, 8);
    assert.ok(typeof result.p90_ttft_ms === 'number' && (result.p90_ttft_ms as number) > 0);
    assert.ok((result.max_concurrent_requests as number) <= 8);
    assert.match(r.stdout, /Successful requests: +20/);
  });
});
