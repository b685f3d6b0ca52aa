// The API key guard (--api-key / VLLM_API_KEY): every route needs `Authorization: Bearer <key>` except an
// explicit allowlist of open probes. The check runs on the route fastify matched (the decoded, normalised
// path), never on the raw URL, so a percent-encoded path such as `/%761/completions` cannot slip past it;
// unknown routes need the key too (a caller without it learns nothing about which routes exist). Keys are
// compared in constant time over their SHA-256 digests, so neither the key's bytes nor its length leak
// through timing.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AuthenticationError } from './errors.js';

/**
 * Routes served without the key: liveness and readiness probes and the version, which reveal nothing
 * about the model or its traffic. /live and /ready are Kubernetes probes. /metrics is NOT here: it names
 * the model and shows its traffic, so with --api-key a Prometheus scrape needs the key too (Prometheus's
 * `authorization: {credentials: ...}` sends it).
 */
export const OPEN_ROUTES: ReadonlySet<string> = new Set(['/health', '/ping', '/version', '/live', '/ready']);

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** A constant-time check of a presented key against the server's. */
export class ApiKeyCheck {
  private readonly expected: Buffer;

  constructor(apiKey: string) {
    this.expected = digest(apiKey);
  }

  /** Whether an Authorization header value carries the key ("Bearer <key>"; the scheme in any case). */
  accepts(authorization: string | undefined): boolean {
    if (authorization === undefined) return false;
    const m = /^bearer +(.*)$/is.exec(authorization);
    // Hash even when the scheme is wrong, so that a missing scheme takes the same time as a wrong key.
    const presented = digest(m ? m[1]! : authorization);
    return timingSafeEqual(presented, this.expected) && m !== null;
  }
}

/** Whether a request needs the key: every matched route not in OPEN_ROUTES, and every unmatched one. */
export function needsApiKey(request: FastifyRequest): boolean {
  const route = request.routeOptions.url;
  return route === undefined || !OPEN_ROUTES.has(route);
}

/** Installs the guard: a 401 in vLLM's error shape for a request without the key. */
export function installApiKeyGuard(app: FastifyInstance, apiKey: string): void {
  const check = new ApiKeyCheck(apiKey);
  app.addHook('onRequest', async (request) => {
    if (needsApiKey(request) && !check.accepts(request.headers.authorization)) {
      throw new AuthenticationError();
    }
  });
}
