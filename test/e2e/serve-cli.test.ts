// `duet serve` as a user runs it (a child process of bin/duet.js): the seed deployment's vLLM flags
// (scaled to the tiny fixture) are accepted, `--flag_name` spellings included, start-up logs its stages
// and ends with the URL, VLLM_API_KEY guards /v1, SIGINT shuts down cleanly; unknown or unsupported flags
// and a missing model folder end with one clear error line and exit status 1.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixtureDir } from '../helpers/golden.js';

const ROOT = join(fixtureDir('v2-lite-tiny'), '..', '..', '..');
const BIN = join(ROOT, 'bin', 'duet.js');
const TINY = ['--kv-cache-memory', '16MiB', '--disable-log-stats'];

function duetSync(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  // A signal (a crash) shows in the status, so that a failed assertion on it names the signal.
  return { status: r.status ?? `killed by ${r.signal}`, stderr: r.stderr };
}

/** Starts `duet serve` and resolves with the URL from its last start-up line. */
function startServe(args: string[], env: Record<string, string> = {}) {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { env: { ...process.env, ...env } });
  let stderr = '';
  const url = new Promise<string>((resolve, reject) => {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      stderr += d;
      const m = / at (http:\/\/127\.0\.0\.1:\d+)\n/.exec(stderr);
      if (m) resolve(m[1]!);
    });
    child.once('exit', (code) => reject(new Error(`duet serve exited (${code}) before serving:\n${stderr}`)));
  });
  return { child, url, log: () => stderr };
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });
}

describe('duet serve command line', () => {
  test("the seed deployment's flags start a server that logs its stages and ends with the URL", async () => {
    const s = startServe(
      [
        fixtureDir('v2-lite-tiny'),
        '--trust-remote-code',
        '--distributed-executor-backend=mp',
        '--port',
        '0',
        '--max-num-seqs',
        '390',
        '--max-model-len',
        '256',
        '--max-num-batched-tokens',
        '65536',
        '--block-size',
        '128',
        '--compilation_config',
        '0',
        '--gpu-memory-utilization',
        '0.90',
        '--disable-log-requests',
        '--additional-config',
        '{}',
        '--served_model_name',
        'tiny',
        '--enforce-eager',
        ...TINY,
      ],
      { VLLM_API_KEY: 'sk-env' },
    );
    try {
      const url = await s.url;
      const log = s.log();
      for (const stage of ['building kernels', 'loading weights', 'KV cache:', 'notice: --enforce-eager']) {
        assert.ok(log.includes(stage), `the start-up log mentions "${stage}":\n${log}`);
      }
      assert.match(
        log.trimEnd().split('\n').at(-1)!,
        /serving model "tiny" .* at http:\/\/127\.0\.0\.1:\d+$/,
      );

      assert.equal((await fetch(`${url}/v1/models`)).status, 401, 'VLLM_API_KEY guards /v1');
      const models = await fetch(`${url}/v1/models`, { headers: { authorization: 'Bearer sk-env' } });
      assert.equal(((await models.json()) as { data: { id: string }[] }).data[0]!.id, 'tiny');
      const r = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        // JSON bodies must say so (a text/plain body is a 415: see docs/security.md).
        headers: { authorization: 'Bearer sk-env', 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny', prompt: 'Hello', max_tokens: 3 }),
      });
      assert.equal(r.status, 200);
      assert.equal(((await r.json()) as { usage: { completion_tokens: number } }).usage.completion_tokens, 3);
      assert.equal((await fetch(`${url}/health`)).status, 200);
    } finally {
      s.child.kill('SIGINT');
    }
    assert.equal(await exited(s.child), 0, s.log());
    assert.match(s.log(), /SIGINT: shutting down/);
  });

  test('an unknown flag is an error', () => {
    const r = duetSync(['serve', '--no-such-flag']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /unknown option '--no-such-flag'/);
  });

  test('a flag for a feature Duet lacks is refused, not ignored', () => {
    const r = duetSync(['serve', fixtureDir('v2-lite-tiny'), '--enable-auto-tool-choice', ...TINY]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /--enable-auto-tool-choice is not supported/);
  });

  test('-tp=16 is parsed as --tensor-parallel-size 16 (16 ranks cannot split 4 heads: one clear error)', () => {
    const r = duetSync(['serve', fixtureDir('v2-lite-tiny'), '-tp=16', '--port', '0', ...TINY]);
    assert.equal(r.status, 1, r.stderr);
    // Refused before any rank thread starts (the shape is checked first).
    assert.doesNotMatch(r.stderr, /started rank/);
    assert.match(r.stderr, /error: .*\(4\) must be divisible by the number of ranks sharing it \(16\)/);
  });

  test('a missing model folder fails start-up with one clear line', () => {
    const r = duetSync(['serve', join(ROOT, 'no-such-model'), '--port', '0', ...TINY]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /error: .*no-such-model.*does not exist/);
  });

  test('the model given twice, differently, is an error', () => {
    const r = duetSync(['serve', fixtureDir('v2-lite-tiny'), '--model', fixtureDir('v2-tiny'), ...TINY]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /the model is given twice/);
  });
});
