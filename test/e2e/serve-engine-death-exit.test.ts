// Issue 10, finding 2 (its last part): when the engine of `duet serve` dies, the server does not linger
// half-alive. Here a two-node loopback cluster (`-tp 2 --nnodes 2`, the head serving on a Unix socket) loses
// its headless node to SIGKILL mid-request: the in-flight request is answered with an error, /health turns
// 503, and the head exits with status 1 on its own within the grace (ENGINE_DEATH_GRACE_MS) plus the time
// to close, so that a supervisor restarts it (vLLM's behaviour).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ENGINE_DEATH_GRACE_MS } from '../../src/cli/exit-on-engine-death.js';
import {
  clusterFlags,
  freeLoopbackPort,
  loopbackNodeHosts,
  ProcessSet,
  udsRequest,
} from '../distributed/multi-host-harness.js';

/** Beyond the grace: closing (up to 3 s) plus process scheduling on a busy machine. */
const EXIT_MARGIN_MS = 5000;

const tmp = mkdtempSync(join(tmpdir(), 'duet-death-exit-'));
const processes = new ProcessSet();
after(async () => {
  await processes.killAll();
  rmSync(tmp, { recursive: true, force: true });
});

test('finding 2: when the engine dies, duet serve answers in-flight requests, turns /health 503 and exits 1', async () => {
  const [head, node] = loopbackNodeHosts(2);
  const port = await freeLoopbackPort();
  const flags = clusterFlags('v2-tiny', '127.0.0.1', port, 5);
  const socket = join(tmp, 'head.sock');
  const headless = processes.spawn('headless node', node!, [
    'serve',
    ...flags,
    '--node-rank',
    '1',
    '--headless',
  ]);
  const server = processes.spawn('head', head!, [
    'serve',
    ...flags,
    '--served-model-name',
    'tiny',
    '--uds',
    socket,
    '--disable-log-stats',
  ]);
  await server.waitForOutput(/serving model "tiny" .* at unix:/, 60_000);
  assert.equal((await udsRequest(socket, 'GET', '/health')).status, 200);

  const inFlight = udsRequest(socket, 'POST', '/v1/completions', {
    model: 'tiny',
    prompt: [500, 1, 2, 3],
    max_tokens: 240,
    temperature: 0,
    ignore_eos: true,
  });
  await new Promise((resolve) => setTimeout(resolve, 300));
  headless.signal('SIGKILL');

  const answer = await inFlight;
  assert.equal(answer.status, 500, answer.body);
  assert.match(answer.body, /peer rank 1/, 'the error names the lost rank');
  const deadAt = performance.now();
  const health = await udsRequest(socket, 'GET', '/health');
  assert.equal(health.status, 503, health.body);

  const exit = await server.waitExit(ENGINE_DEATH_GRACE_MS + EXIT_MARGIN_MS + 10_000);
  const exitAfterMs = performance.now() - deadAt;
  assert.equal(exit.killed, false, `the head did not exit on its own\n${server.log}`);
  assert.equal(exit.code, 1, server.log);
  assert.ok(
    exitAfterMs <= ENGINE_DEATH_GRACE_MS + EXIT_MARGIN_MS,
    `exited ${Math.round(exitAfterMs)} ms after the engine died`,
  );
  assert.match(server.stderr, /the engine died .*exits with status 1/);
});
