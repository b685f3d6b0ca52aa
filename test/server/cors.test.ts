// Tests of the CORS policy and the API key check on a bare fastify app (no engine): loopback origins by
// default, --allowed-origins / --allowed-methods / --allowed-headers / --allow-credentials widening it,
// and constant-time key comparison that accepts exactly the key.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Fastify from 'fastify';
import { ApiKeyCheck } from '../../src/server/api-key.js';
import {
  type CorsPolicy,
  DEFAULT_CORS_POLICY,
  installCors,
  isLoopbackOrigin,
} from '../../src/server/cors.js';
import { toApiError } from '../../src/server/errors.js';

async function appWith(policy: CorsPolicy) {
  const app = Fastify();
  installCors(app, policy);
  app.setErrorHandler((e, _request, reply) => {
    const err = toApiError(e);
    reply.code(err.status).send(err.toBody());
  });
  app.post('/v1/completions', async () => ({ ok: true }));
  await app.ready();
  return app;
}

const preflight = (origin: string, method = 'POST', headers = 'content-type') => ({
  method: 'OPTIONS' as const,
  url: '/v1/completions',
  headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': headers },
});

describe('CORS policy', () => {
  test('loopback origins, any port, http or https; nothing else', () => {
    for (const o of [
      'http://localhost',
      'http://localhost:3000',
      'https://127.0.0.1:8443',
      'http://[::1]:8080',
      'http://127.1.2.3',
    ]) {
      assert.ok(isLoopbackOrigin(o), o);
    }
    for (const o of [
      'null',
      'http://evil.example',
      'http://localhost.evil.example',
      'http://127.0.0.1.evil.example',
      'file://',
      'ftp://localhost',
      'http://localhost/path',
      'http://user@localhost',
    ]) {
      assert.ok(!isLoopbackOrigin(o), o);
    }
  });

  test('by default a preflight from a loopback page passes and one from elsewhere is a 403', async () => {
    const app = await appWith(DEFAULT_CORS_POLICY);
    const ok = await app.inject(preflight('http://localhost:5173'));
    assert.equal(ok.statusCode, 204);
    assert.equal(ok.headers['access-control-allow-origin'], 'http://localhost:5173');
    assert.equal(ok.headers['access-control-allow-credentials'], undefined);
    const evil = await app.inject(preflight('https://evil.example'));
    assert.equal(evil.statusCode, 403);
    assert.equal(evil.headers['access-control-allow-origin'], undefined);
    assert.equal(evil.json().error.type, 'ForbiddenError');
    // A simple request from elsewhere never reaches the route.
    const post = await app.inject({
      method: 'POST',
      url: '/v1/completions',
      headers: { origin: 'https://evil.example' },
    });
    assert.equal(post.statusCode, 403);
    // No Origin (curl, SDKs): no CORS at all.
    assert.equal((await app.inject({ method: 'POST', url: '/v1/completions' })).statusCode, 200);
    await app.close();
  });

  test('--allowed-origins, --allowed-methods, --allowed-headers and --allow-credentials widen it', async () => {
    const app = await appWith({
      allowedOrigins: ['https://app.example'],
      allowedMethods: ['POST'],
      allowedHeaders: ['content-type', 'x-trace'],
      allowCredentials: true,
    });
    const ok = await app.inject(preflight('https://app.example', 'POST', 'Content-Type, X-Trace'));
    assert.equal(ok.statusCode, 204);
    assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(ok.headers['access-control-allow-credentials'], 'true');
    assert.equal(ok.headers['access-control-allow-headers'], 'content-type, x-trace');
    const badMethod = await app.inject(preflight('https://app.example', 'DELETE'));
    assert.equal(badMethod.statusCode, 403);
    assert.match(badMethod.json().error.message, /DELETE is not allowed.*--allowed-methods/);
    const badHeader = await app.inject(preflight('https://app.example', 'POST', 'x-secret'));
    assert.equal(badHeader.statusCode, 403);
    assert.match(badHeader.json().error.message, /x-secret not allowed.*--allowed-headers/);
    assert.equal((await app.inject(preflight('https://other.example'))).statusCode, 403);
    await app.close();
  });

  test('["*"] allows any origin, answered with * unless credentials are allowed', async () => {
    const any = await appWith({ ...DEFAULT_CORS_POLICY, allowedOrigins: ['*'] });
    const r = await any.inject(preflight('https://anywhere.example'));
    assert.equal(r.headers['access-control-allow-origin'], '*');
    await any.close();
    const withCredentials = await appWith({
      ...DEFAULT_CORS_POLICY,
      allowedOrigins: ['*'],
      allowCredentials: true,
    });
    const c = await withCredentials.inject(preflight('https://anywhere.example'));
    assert.equal(c.headers['access-control-allow-origin'], 'https://anywhere.example');
    await withCredentials.close();
  });
});

describe('ApiKeyCheck', () => {
  const check = new ApiKeyCheck('sk-secret');
  test('accepts exactly "Bearer <key>" (the scheme in any case)', () => {
    assert.ok(check.accepts('Bearer sk-secret'));
    assert.ok(check.accepts('bearer sk-secret'));
    for (const h of [
      undefined,
      '',
      'sk-secret',
      'Bearer sk-secre',
      'Bearer sk-secretx',
      'Bearer SK-SECRET',
      'Basic sk-secret',
      'Bearer  sk-secret ',
    ]) {
      assert.ok(!check.accepts(h), String(h));
    }
  });
});
