// Regression tests of issue 10's HTTP findings, each named after its finding: the API key on the matched
// route (1), bounded request fields (3), tokenization that never stalls the HTTP thread (4), no
// cross-origin access or non-JSON bodies (7), HTTP and stream timeouts (8), and start-up that binds the
// port before loading (10). Each failed on the main of the day the issue was filed.

import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { engineConfigFromLLMOptions } from '../../src/engine/llm.js';
import type { ErrorBody } from '../../src/server/errors.js';
import { startServer } from '../../src/server/server.js';
import type { Logger } from '../../src/util/logger.js';
import { fixtureDir } from '../helpers/golden.js';
import { tempDir } from '../helpers/temp-dir.js';
import { ASSET_CONFIGS } from '../loader/fixture-files.js';
import {
  MODEL,
  postJson,
  startEmbeddedServer,
  startTestServer,
  type TestServer,
  waitFor,
} from './serve-harness.js';

const API_KEY = 'sk-duet-hardening';
const AUTH = { authorization: `Bearer ${API_KEY}` };

/** A raw connection to a Unix-socket server, for what fetch cannot do (stop reading, send half a request). */
function rawSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves with the milliseconds until the peer closes `socket`, or null after `timeoutMs`. */
function closedWithin(socket: Socket, timeoutMs: number): Promise<number | null> {
  const started = performance.now();
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(performance.now() - started);
    });
  });
}

describe('issue 10 on the fixture model (API key, limits, CORS)', () => {
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ apiKey: API_KEY });
  });
  after(async () => {
    await t.server.close();
  });

  test('finding 1: percent-encoded /v1 path needs the key', async () => {
    const cases: [string, string, unknown][] = [
      ['POST', '/%761/completions', { model: MODEL, prompt: [1, 2], max_tokens: 1 }],
      [
        'POST',
        '/v%31/chat/completions',
        { model: MODEL, messages: [{ role: 'user', content: 'hi' }], max_tokens: 1 },
      ],
      ['GET', '/%761/models', undefined],
      ['POST', '/v1/%63ompletions', { model: MODEL, prompt: [1, 2], max_tokens: 1 }],
    ];
    for (const [method, path, body] of cases) {
      const res = await fetch(`${t.baseUrl}${path}`, {
        method,
        ...(body !== undefined
          ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }
          : {}),
      });
      assert.equal(res.status, 401, `${method} ${path} was served without the key`);
      const json = (await res.json()) as ErrorBody;
      assert.equal(json.error.type, 'AuthenticationError');
      assert.equal(json.error.code, 401);
    }
    const withKey = await fetch(`${t.baseUrl}/%761/models`, { headers: AUTH });
    assert.equal(withKey.status, 200);
  });

  test('finding 1: every route but the open probes needs the key, compared exactly', async () => {
    for (const path of ['/health', '/ping', '/version']) {
      assert.equal((await fetch(`${t.baseUrl}${path}`)).status, 200, path);
    }
    // /metrics is covered by the key (it names the model and shows its traffic), as are tokenize routes.
    assert.equal((await fetch(`${t.baseUrl}/metrics`)).status, 401);
    assert.equal((await postJson(`${t.baseUrl}/tokenize`, { prompt: 'hi' })).status, 401);
    assert.equal((await postJson(`${t.baseUrl}/detokenize`, { tokens: [1] })).status, 401);
    assert.equal((await fetch(`${t.baseUrl}/no-such-route`)).status, 401);
    const wrong = [
      API_KEY.slice(0, -1),
      `${API_KEY}x`,
      `${API_KEY.slice(0, -1)}X`,
      '',
      API_KEY.toUpperCase(),
    ];
    for (const key of wrong) {
      const r = await fetch(`${t.baseUrl}/v1/models`, { headers: { authorization: `Bearer ${key}` } });
      assert.equal(r.status, 401, `key ${JSON.stringify(key)} was accepted`);
    }
    assert.equal(
      (await fetch(`${t.baseUrl}/v1/models`, { headers: { authorization: API_KEY } })).status,
      401,
    );
    assert.equal(
      (await fetch(`${t.baseUrl}/v1/models`, { headers: { authorization: `bearer ${API_KEY}` } })).status,
      200,
    );
  });

  test('finding 3: oversized stop, stop_token_ids, n, prompts × n and logit_bias get a 400 naming the limit', async () => {
    const base = { model: MODEL, prompt: [1, 2, 3], max_tokens: 1 };
    const cases: [string, Record<string, unknown>, string, RegExp][] = [
      ['n', { n: 129 }, 'n', /at most 128 .*--max-n/],
      ['stop count', { stop: Array.from({ length: 129 }, (_, i) => `s${i}`) }, 'stop', /--max-stop-strings/],
      ['stop length', { stop: ['x'.repeat(1025)] }, 'stop', /at most 1024 .*--max-stop-string-len/],
      [
        'stop_token_ids',
        { stop_token_ids: new Array(1025).fill(1) },
        'stop_token_ids',
        /--max-stop-token-ids/,
      ],
      [
        'logit_bias',
        { logit_bias: Object.fromEntries(Array.from({ length: 1025 }, (_, i) => [i, 1])) },
        'logit_bias',
        /--max-logit-bias/,
      ],
      [
        'prompts × n',
        { prompt: Array.from({ length: 200 }, () => [1, 2]), n: 2 },
        'prompt',
        /400 completions \(200 prompts × n = 2\); at most 256 .*--max-choices-per-request/,
      ],
    ];
    for (const [name, extra, param, message] of cases) {
      const r = await postJson(`${t.baseUrl}/v1/completions`, { ...base, ...extra }, AUTH);
      assert.equal(r.status, 400, `${name}: ${JSON.stringify(r.json).slice(0, 200)}`);
      assert.equal(r.json.error.type, 'BadRequestError', name);
      assert.equal(r.json.error.param, param, name);
      assert.match(r.json.error.message, message, name);
    }
    const chat = await postJson(
      `${t.baseUrl}/v1/chat/completions`,
      { model: MODEL, messages: [{ role: 'user', content: 'hi' }], n: 500, max_tokens: 1 },
      AUTH,
    );
    assert.equal(chat.status, 400);
    assert.match(chat.json.error.message, /--max-n/);
    const stats = await t.server.engine.stats();
    assert.equal(stats.numRunning + stats.numWaiting, 0, 'nothing refused may reach the engine');
  });

  test('finding 7: a page of another origin cannot POST text/plain to the local server', async () => {
    const body = JSON.stringify({ model: MODEL, prompt: [1, 2], max_tokens: 1 });
    const evil = await fetch(`${t.baseUrl}/v1/completions`, {
      method: 'POST',
      headers: { ...AUTH, origin: 'http://evil.example', 'content-type': 'text/plain' },
      body,
    });
    assert.equal(evil.status, 403);
    assert.equal(evil.headers.get('access-control-allow-origin'), null);
    assert.equal(((await evil.json()) as ErrorBody).error.type, 'ForbiddenError');

    for (const contentType of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
    ]) {
      const r = await fetch(`${t.baseUrl}/v1/completions`, {
        method: 'POST',
        headers: { ...AUTH, 'content-type': contentType },
        body,
      });
      assert.equal(r.status, 415, contentType);
      const json = (await r.json()) as ErrorBody;
      assert.equal(json.error.code, 415);
      assert.match(json.error.message, /Content-Type: application\/json/);
    }

    const preflight = await fetch(`${t.baseUrl}/v1/completions`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://evil.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, authorization',
      },
    });
    assert.equal(preflight.status, 403);
    assert.equal(preflight.headers.get('access-control-allow-origin'), null);

    const local = await fetch(`${t.baseUrl}/v1/completions`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://localhost:5173',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, authorization',
      },
    });
    assert.equal(local.status, 204);
    assert.equal(local.headers.get('access-control-allow-origin'), 'http://localhost:5173');
    assert.match(local.headers.get('access-control-allow-methods') ?? '', /POST/);

    // JSON from a loopback page works, GET routes need no body or content type.
    const ok = await postJson(`${t.baseUrl}/v1/completions`, JSON.parse(body), {
      ...AUTH,
      origin: 'http://127.0.0.1:3000',
    });
    assert.equal(ok.status, 200);
    assert.equal((await fetch(`${t.baseUrl}/v1/models`, { headers: AUTH })).status, 200);
    assert.equal((await fetch(`${t.baseUrl}/ping`, { method: 'POST' })).status, 200);
  });
});

describe("issue 10 on DeepSeek-V3's tokenizer (tokenization)", () => {
  // The DeepSeek-V3 toy config (random weights, max_model_len 4096) with the real DeepSeek-V3 tokenizer,
  // whose long vocabulary entries make tokenizing large text slow enough to matter.
  let t: TestServer;
  before(async () => {
    t = await startEmbeddedServer({}, { model: join(ASSET_CONFIGS, 'deepseek-v3-toy'), loadFormat: 'dummy' });
  });
  after(async () => {
    await t.server.close();
  });

  test('finding 4: text that cannot fit max_model_len is refused before tokenizing', async () => {
    // DeepSeek-V3's longest token is 128 bytes: 128 × 4096 characters is the most that can fit.
    const started = performance.now();
    const r = await postJson(`${t.baseUrl}/tokenize`, { prompt: '!'.repeat(128 * 4096 + 1) });
    const ms = performance.now() - started;
    assert.equal(r.status, 400, JSON.stringify(r.json).slice(0, 300));
    assert.match(r.json.error.message, /524289 characters long.*at most 524288 characters can fit/);
    // Tokenizing it takes about 18 s here; refusing it is a length check. 3 s leaves room for a busy machine.
    assert.ok(ms < 3000, `took ${ms} ms`);
    const c = await postJson(`${t.baseUrl}/v1/completions`, {
      prompt: ['hi', 'x'.repeat(600_000)],
      max_tokens: 1,
    });
    assert.equal(c.status, 400);
    assert.equal(c.json.error.param, 'prompt');
    assert.match(c.json.error.message, /prompt\[1\] is 600000 characters long/);
  });

  test('finding 4: /health stays responsive while a large tokenize request runs', async () => {
    // 60,000 '!' take about a second to tokenize (the BPE is quadratic in a word's length).
    const big = postJson(`${t.baseUrl}/tokenize`, { prompt: '!'.repeat(60_000) });
    let done = false;
    void big.finally(() => {
      done = true;
    });
    const latencies: number[] = [];
    while (!done) {
      const started = performance.now();
      assert.equal((await fetch(`${t.baseUrl}/health`)).status, 200);
      latencies.push(performance.now() - started);
      await new Promise((r) => setTimeout(r, 25));
    }
    const r = await big;
    assert.equal(r.status, 200);
    assert.equal(r.json.count, 60_000 / 8 + 1, 'eight "!" per token, plus BOS');
    // The HTTP thread only answers probes meanwhile: each takes milliseconds. 500 ms is slack for a loaded
    // 2-core machine and still below the second-long stall this used to cause.
    assert.ok(Math.max(...latencies) < 500, `slowest /health: ${Math.max(...latencies)} ms`);
    assert.ok(
      latencies.length >= 5,
      `only ${latencies.length} probes: the tokenize request was too quick to test`,
    );
  });
});

describe('issue 10: HTTP timeouts (fixture model on a Unix socket)', () => {
  // A Unix socket's buffers are a few hundred KiB (TCP loopback autotunes up to 4 MiB), so a client that
  // reads nothing backs the server's writes up within the first engine steps.
  const path = join(tempDir('duet-hardening-'), 'duet.sock');
  let t: TestServer;
  before(async () => {
    t = await startTestServer(
      {
        uds: path,
        maxLogprobs: 200,
        streamStallTimeoutMs: 300,
        httpTimeouts: { requestTimeoutMs: 500, keepAliveTimeoutMs: 300 },
      },
      // One sequence at a time: a request of 128 choices stays in the engine for many seconds.
      { kvCacheMemory: 64 * 2 ** 20, maxNumSeqs: 1 },
    );
  });
  after(async () => {
    await t.server.close();
  });

  test('finding 8: a stream whose client stops reading is closed and its request aborted', async () => {
    const before = await t.server.engine.stats();
    const socket = await rawSocket(path);
    const body = JSON.stringify({
      prompt: [1, 2, 3],
      max_tokens: 250,
      n: 128,
      logprobs: 200,
      ignore_eos: true,
      stream: true,
    });
    socket.write(
      `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    socket.pause(); // never read: the server's writes back up
    const closed = closedWithin(socket, 60_000);
    const idle = await waitFor(async () => {
      const s = await t.server.engine.stats();
      return s.numRunning + s.numWaiting === 0 && s.generationTokens > before.generationTokens;
    }, 60_000);
    assert.ok(idle, 'the request is still in the engine after 60 s');
    const after = await t.server.engine.stats();
    const generated = after.generationTokens - before.generationTokens;
    assert.ok(generated < 128 * 250, `the request ran to its end (${generated} tokens): it was not aborted`);
    assert.equal(after.kvCacheUsage, 0, 'the aborted request left KV blocks in use');
    socket.resume();
    assert.notEqual(await closed, null, 'the server did not close the stalled connection');
  });

  test('finding 8: a client that sends its request too slowly, or idles, is cut off', async () => {
    const slow = await rawSocket(path);
    slow.resume();
    slow.write(
      'POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{',
    );
    // requestTimeoutMs is 500 and checked every 125 ms: 3 s is slack for a busy machine.
    assert.notEqual(await closedWithin(slow, 3000), null, 'a half-sent request held its connection');

    const idle = await rawSocket(path);
    let reply = '';
    idle.on('data', (d) => {
      reply += d.toString();
    });
    idle.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    const ms = await closedWithin(idle, 3000);
    assert.match(reply, /^HTTP\/1.1 200/);
    assert.notEqual(ms, null, 'an idle keep-alive connection stayed open');
  });
});

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('issue 10: start-up', () => {
  const engineConfig = () =>
    engineConfigFromLLMOptions({ model: fixtureDir('v2-lite-tiny'), kvCacheMemory: 16 * 2 ** 20 });
  const brokenWorker = new URL('file:///nonexistent/engine-thread.js');

  test('finding 10: a port in use fails at once with a hint, before the model loads', async () => {
    const holder = createServer();
    await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
    const port = (holder.address() as { port: number }).port;
    try {
      // The engine worker cannot even start: only an error raised before loading names the port.
      await assert.rejects(
        startServer({ engineConfig: engineConfig(), host: '127.0.0.1', port, workerUrl: brokenWorker }),
        (e: Error) => {
          assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}: the port is in use.*--port`));
          return true;
        },
      );
    } finally {
      await new Promise<void>((r) => holder.close(() => r()));
    }
    await assert.rejects(
      startServer({ engineConfig: engineConfig(), host: '192.0.2.1', port: 0, workerUrl: brokenWorker }),
      /192\.0\.2\.1:0: that address belongs to no interface of this machine.*--host/,
    );
  });

  test('finding 10: while the model loads every route answers 503, then serves', async () => {
    const port = await freePort();
    const starting = startServer({
      engineConfig: engineConfig(),
      host: '127.0.0.1',
      port,
      disableLogStats: true,
      workerUrl: new URL('./slow-engine-thread.js', import.meta.url),
    });
    let ready = false;
    void starting.then(() => {
      ready = true;
    });
    const base = `http://127.0.0.1:${port}`;
    const health = await fetch(`${base}/health`);
    assert.equal(health.status, 503);
    assert.equal(((await health.json()) as ErrorBody).error.type, 'ServiceUnavailableError');
    assert.equal((await fetch(`${base}/v1/models`)).status, 503);
    const live = await fetch(`${base}/live`);
    assert.equal(live.status, 200, 'the liveness probe is 200 while loading');
    assert.deepEqual(await live.json(), { status: 'loading' });
    assert.equal(ready, false);
    const server = await starting;
    try {
      assert.equal((await fetch(`${base}/health`)).status, 200);
    } finally {
      await server.close();
    }
  });

  test('finding 10: --host beyond loopback without --api-key warns loudly', async () => {
    const warnings: string[] = [];
    const logger: Logger = {
      debug: () => {},
      info: () => {},
      warn: (m) => warnings.push(m),
      error: () => {},
    };
    const server = await startServer({
      engineConfig: engineConfig(),
      host: '0.0.0.0',
      port: 0,
      disableLogStats: true,
      logger,
    });
    await server.close();
    assert.ok(
      warnings.some((w) => /WARNING: --host 0\.0\.0\.0 .*no --api-key/.test(w)),
      `no warning among ${JSON.stringify(warnings)}`,
    );
    const quiet: string[] = [];
    const keyed = await startServer({
      engineConfig: engineConfig(),
      host: '0.0.0.0',
      port: 0,
      apiKey: 'k',
      disableLogStats: true,
      logger: { ...logger, warn: (m) => quiet.push(m) },
    });
    await keyed.close();
    assert.ok(!quiet.some((w) => /--api-key/.test(w)));
  });
});
