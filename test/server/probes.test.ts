// /live and /ready, and the drain gate, on the real fastify app over a test double of the engine client
// (the probes read only its health and its stats round trip): /live fails when the engine loop does not
// answer in time or the engine is dead; /ready fails while draining or with a dead engine; while draining,
// API routes get 503 and the probes, /health and /metrics still answer; waitIdle waits for open responses.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AsyncEngine } from '../../src/engine/async/async-engine.js';
import { buildApp } from '../../src/server/app.js';
import { DEFAULT_CORS_POLICY } from '../../src/server/cors.js';
import { ServerLifecycle } from '../../src/server/lifecycle.js';
import { ServerMetrics } from '../../src/server/metrics.js';
import { registerProbeRoutes } from '../../src/server/routes/probes.js';
import type { ServingContext } from '../../src/server/serving-context.js';
import { silentLogger } from '../../src/util/logger.js';

interface FakeEngine {
  alive: boolean;
  /** How the engine loop answers a stats query: at once, never, or after `ms`. */
  answer: 'now' | 'never' | number;
}

function appWith(engine: FakeEngine, liveTimeoutMs = 100) {
  const stub = {
    health: () => ({ alive: engine.alive, reason: engine.alive ? null : 'rank 1 lost' }),
    stats: () => {
      const answer = engine.answer;
      if (answer === 'never') return new Promise(() => {});
      return new Promise((resolve) => setTimeout(() => resolve({}), answer === 'now' ? 0 : answer));
    },
  } as unknown as AsyncEngine;
  const ctx = {
    engine: stub,
    logger: silentLogger,
    metrics: new ServerMetrics({ modelName: 'm', maxModelLen: 16, readStats: async () => null }),
    options: { servedModelNames: ['m'], apiKey: null, cors: DEFAULT_CORS_POLICY },
  } as unknown as ServingContext;
  const app = buildApp(ctx);
  const lifecycle = new ServerLifecycle();
  lifecycle.install(app);
  registerProbeRoutes(app, ctx, lifecycle, liveTimeoutMs);
  return { app, lifecycle };
}

test('/live: 200 when the engine loop answers; 503 when it does not in time or the engine is dead', async () => {
  const engine: FakeEngine = { alive: true, answer: 'now' };
  const { app } = appWith(engine);
  const ok = await app.inject({ url: '/live' });
  assert.equal(ok.statusCode, 200);
  assert.deepEqual(ok.json(), { status: 'alive' });
  engine.answer = 'never';
  const stuck = await app.inject({ url: '/live' });
  assert.equal(stuck.statusCode, 503);
  assert.match(stuck.json().error.message, /the engine loop did not answer within 100 ms/);
  engine.answer = 30;
  assert.equal((await app.inject({ url: '/live' })).statusCode, 200, 'a slow step within the timeout');
  engine.alive = false;
  const dead = await app.inject({ url: '/live' });
  assert.equal(dead.statusCode, 503);
  assert.match(dead.json().error.message, /the engine is dead: rank 1 lost/);
});

test('/ready: 200 while serving, 503 with the reason while draining or with a dead engine', async () => {
  const engine: FakeEngine = { alive: true, answer: 'now' };
  const { app, lifecycle } = appWith(engine);
  const ok = await app.inject({ url: '/ready' });
  assert.equal(ok.statusCode, 200);
  assert.deepEqual(ok.json(), { status: 'ready', model: 'm' });
  engine.alive = false;
  assert.match((await app.inject({ url: '/ready' })).json().error.message, /the engine is dead/);
  engine.alive = true;
  lifecycle.startDraining();
  const draining = await app.inject({ url: '/ready' });
  assert.equal(draining.statusCode, 503);
  assert.match(draining.json().error.message, /shutting down/);
});

test('draining: API routes get 503, the probes, /health and /metrics still answer', async () => {
  const { app, lifecycle } = appWith({ alive: true, answer: 'now' });
  lifecycle.startDraining();
  const refused = await app.inject({ method: 'POST', url: '/v1/completions', payload: { prompt: 'x' } });
  assert.equal(refused.statusCode, 503);
  assert.equal(refused.json().error.type, 'ServiceUnavailableError');
  assert.equal((await app.inject({ url: '/v1/models' })).statusCode, 503);
  for (const url of ['/live', '/health', '/metrics', '/version?x=1']) {
    assert.equal((await app.inject({ url })).statusCode, 200, url);
  }
});

test('waitIdle resolves once the open responses end, or false at the timeout or on endGrace', async () => {
  const { app, lifecycle } = appWith({ alive: true, answer: 'now' });
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  app.get('/slow', async () => {
    await held;
    return { ok: true };
  });
  assert.equal(await lifecycle.waitIdle(10), true, 'idle with nothing open');
  const slow = app.inject({ url: '/slow' });
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(lifecycle.numOpen, 1);
  assert.equal(await lifecycle.waitIdle(20), false, 'still open at the timeout');
  const cut = lifecycle.waitIdle(60_000);
  lifecycle.endGrace();
  assert.equal(await cut, false, 'endGrace ends the wait');
  const wait = lifecycle.waitIdle(60_000);
  release();
  assert.equal(await wait, true);
  assert.equal((await slow).statusCode, 200);
  assert.equal(lifecycle.numOpen, 0);
});
