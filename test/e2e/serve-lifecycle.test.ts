// How `duet serve` stops, as separate processes on the v2-tiny fixture (a server on a Unix socket):
// - SIGTERM drains: a new request gets 503 and /ready 503 while /live stays 200; the streamed and whole
//   requests in flight run to their end (finish_reason "length", [DONE]); the process exits 0 within the
//   grace period (--shutdown-timeout);
// - a second SIGTERM cuts the drain short: the open requests are aborted at once, as vLLM ends an aborted
//   request: a stream's last chunk has finish_reason "abort", then [DONE]; a whole request gets its
//   partial choices with finish_reason "abort"; exit 0 long before the grace period;
// - SIGINT aborts the open requests at once, the same way (before, a stream stopped with no ending and a
//   whole request got an empty reply);
// - a headless node whose head dies (SIGKILL) exits non-zero, so that its manager restarts the group.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  type DuetProcess,
  freeLoopbackPort,
  loopbackNodeHosts,
  ProcessSet,
  type UdsReply,
  udsRequest,
  udsStream,
} from '../distributed/multi-host-harness.js';
import { fixtureDir } from '../helpers/golden.js';

const tmp = mkdtempSync(join(tmpdir(), 'duet-lifecycle-'));
const processes = new ProcessSet();
after(async () => {
  await processes.killAll();
  rmSync(tmp, { recursive: true, force: true });
});
const [host] = loopbackNodeHosts(1);

/** About 1 s of work each on this fixture (measured: 240 tokens × 8 choices ≈ 1.2 s on 2 cores). */
const LONG = { model: 'tiny', prompt: [1, 2, 3], max_tokens: 240, temperature: 0, ignore_eos: true };

let servers = 0;

/** The fixture and a small KV cache: start-up in about a second. */
const FIXTURE = [fixtureDir('v2-tiny'), '--block-size', '16', '--kv-cache-memory', '8MiB'];

/** Starts `duet serve` on the fixture; resolves once it serves. */
async function startServe(extra: string[]): Promise<{ p: DuetProcess; socket: string }> {
  const socket = join(tmp, `s${servers++}.sock`);
  const p = processes.spawn('server', host!, [
    'serve',
    ...FIXTURE,
    '--served-model-name',
    'tiny',
    '--uds',
    socket,
    '--disable-log-stats',
    ...extra,
  ]);
  await p.waitForOutput(/serving model "tiny"/, 60_000);
  return { p, socket };
}

/** A streamed and a whole (8 choices) long request, running once this resolves. */
async function startLongRequests(socket: string) {
  const stream = udsStream(socket, '/v1/completions', { ...LONG, stream: true });
  const whole = udsRequest(socket, 'POST', '/v1/completions', { ...LONG, n: 8 }, 60_000);
  assert.equal(await stream.status, 200);
  await stream.firstEvent;
  return { stream, whole };
}

/** Asserts that a stream was aborted: its last chunk has finish_reason "abort", then [DONE]. */
function assertStreamAborted(body: string): void {
  const events = body.split('\n\n').filter((e) => e !== '');
  assert.equal(events.at(-1), 'data: [DONE]', `[DONE] last:\n${body.slice(-400)}`);
  const last = JSON.parse(events.at(-2)!.slice('data: '.length));
  assert.equal(last.choices[0].finish_reason, 'abort', `the last chunk:\n${events.at(-2)}`);
  assert.doesNotMatch(body, /"finish_reason":"length"/, 'the stream did not run to its end');
}

/** Asserts that a whole request got a JSON reply whose every choice was aborted, not an empty reply. */
function assertWholeAborted(r: UdsReply): void {
  assert.equal(r.status, 200, r.body);
  const choices = JSON.parse(r.body).choices as { finish_reason: string; text: string }[];
  assert.equal(choices.length, 8);
  for (const c of choices) assert.equal(c.finish_reason, 'abort', r.body.slice(0, 400));
  const usage = JSON.parse(r.body).usage as { completion_tokens: number };
  assert.ok(usage.completion_tokens < 8 * LONG.max_tokens, 'aborted before the end');
}

test('SIGTERM drains: new requests 503, open ones run to their end, exit 0 within the grace', async (t) => {
  const graceS = 20;
  const { p, socket } = await startServe(['--shutdown-timeout', String(graceS)]);
  assert.equal((await udsRequest(socket, 'GET', '/ready')).status, 200);
  assert.equal((await udsRequest(socket, 'GET', '/live')).status, 200);
  const { stream, whole } = await startLongRequests(socket);
  const t0 = performance.now();
  p.signal('SIGTERM');
  await p.waitForOutput(/SIGTERM: draining/, 5000);

  const refused = await udsRequest(socket, 'POST', '/v1/completions', { ...LONG, max_tokens: 1 });
  assert.equal(refused.status, 503, refused.body);
  assert.match(JSON.parse(refused.body).error.message, /shutting down/);
  const ready = await udsRequest(socket, 'GET', '/ready');
  assert.equal(ready.status, 503, 'not ready while draining');
  assert.equal((await udsRequest(socket, 'GET', '/live')).status, 200, 'alive while draining');
  assert.equal((await udsRequest(socket, 'GET', '/health')).status, 200, '/health as vLLM: engine alive');

  const body = await stream.body;
  assert.match(body, /"finish_reason":"length"/, body.slice(-400));
  assert.match(body, /data: \[DONE\]\n\n$/);
  const r = await whole;
  assert.equal(r.status, 200, r.body);
  const choices = JSON.parse(r.body).choices as { finish_reason: string; text: string }[];
  assert.equal(choices.length, 8);
  for (const c of choices) assert.equal(c.finish_reason, 'length');

  const exit = await p.waitExit(graceS * 1000);
  const ms = performance.now() - t0;
  t.diagnostic(`drained and exited ${Math.round(ms)} ms after SIGTERM (grace ${graceS} s)`);
  assert.equal(exit.killed, false, `no exit within the grace period\n${p.log}`);
  assert.equal(exit.code, 0, p.log);
  assert.match(p.stderr, /every open request finished; stopped/);
});

test('a second SIGTERM ends the drain at once: the open requests are aborted', async (t) => {
  const graceS = 60;
  const { p, socket } = await startServe(['--shutdown-timeout', String(graceS)]);
  const { stream, whole } = await startLongRequests(socket);
  const t0 = performance.now();
  p.signal('SIGTERM');
  await p.waitForOutput(/SIGTERM: draining/, 5000);
  p.signal('SIGTERM');
  assertStreamAborted(await stream.body);
  assertWholeAborted(await whole);
  const exit = await p.waitExit(30_000);
  t.diagnostic(`exited ${Math.round(performance.now() - t0)} ms after the first SIGTERM (grace ${graceS} s)`);
  assert.equal(exit.code, 0, p.log);
  assert.ok(performance.now() - t0 < 30_000);
  assert.match(p.stderr, /SIGTERM again: aborting the open requests now/);
  assert.match(p.stderr, /request\(s\) still open; ending them \(finish_reason "abort"\)/);
});

test('SIGINT aborts every open request properly and exits 0', async () => {
  const { p, socket } = await startServe([]);
  const { stream, whole } = await startLongRequests(socket);
  p.signal('SIGINT');
  assertStreamAborted(await stream.body);
  assertWholeAborted(await whole);
  const exit = await p.waitExit(30_000);
  assert.equal(exit.code, 0, p.log);
  assert.match(p.stderr, /SIGINT: shutting down; aborting the open requests/);
});

test('a headless node whose head dies exits non-zero', async (t) => {
  const port = await freeLoopbackPort();
  const cluster = ['-tp', '2', '--nnodes', '2', '--master-port', String(port), '--num-threads', '1'];
  const node = processes.spawn('headless node', host!, [
    'serve',
    ...FIXTURE,
    ...cluster,
    '--node-rank',
    '1',
    '--headless',
  ]);
  const { p: head } = await startServe([...cluster, '--node-rank', '0']);
  await node.waitForOutput(/ranks ready; serving the head/, 30_000);
  const t0 = performance.now();
  head.signal('SIGKILL');
  const exit = await node.waitExit(20_000);
  t.diagnostic(`the node exited ${Math.round(performance.now() - t0)} ms after the head was killed`);
  assert.equal(exit.killed, false, `the node outlived its head\n${node.log}`);
  assert.notEqual(exit.code, 0, node.log);
  assert.match(node.stderr, /error: .*peer rank 0/);
});
