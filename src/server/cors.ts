// Cross-origin access (CORS) and request content types: what a web page open in the operator's browser
// may do with the server. By default only pages served from this machine's loopback addresses
// (http(s)://localhost, 127.0.0.0/8, [::1], any port) may call it, as Ollama does; vLLM's
// --allowed-origins, --allowed-methods, --allowed-headers and --allow-credentials widen that. A request
// that carries an Origin the policy does not allow is refused with 403 before it runs (a browser would
// hide the reply, but the request would still have run). Request bodies must be JSON: any other content
// type is a 415, which also keeps every POST out of the CORS "simple request" class (text/plain, forms)
// that browsers send cross-origin without asking first.

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ForbiddenError } from './errors.js';

/** The CORS policy chosen by the flags. */
export interface CorsPolicy {
  /** Origins allowed besides loopback ones ("*": any origin). Empty: loopback origins only. */
  readonly allowedOrigins: readonly string[];
  /** Methods a preflight may ask for (upper case; "*": any). */
  readonly allowedMethods: readonly string[];
  /** Request headers a preflight may ask for (lower case; "*": any). */
  readonly allowedHeaders: readonly string[];
  /** Send `Access-Control-Allow-Credentials: true` (never together with "*" as the origin). */
  readonly allowCredentials: boolean;
}

/** The default: loopback origins only, the methods the API uses, the headers an OpenAI client sends. */
export const DEFAULT_CORS_POLICY: CorsPolicy = {
  allowedOrigins: [],
  allowedMethods: ['GET', 'POST', 'OPTIONS'],
  allowedHeaders: ['authorization', 'content-type'],
  allowCredentials: false,
};

const LOOPBACK_HOST = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/i;

/** Whether `origin` is a page served from this machine's loopback interface (http or https, any port). */
export function isLoopbackOrigin(origin: string): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  // `origin` must be only scheme://host[:port]; URL normalises, so compare with what it rebuilt.
  if (url.origin !== origin.toLowerCase().replace(/\/$/, '')) return false;
  return LOOPBACK_HOST.test(url.hostname);
}

/** Whether the policy lets pages of `origin` call the server. */
export function isOriginAllowed(policy: CorsPolicy, origin: string): boolean {
  return (
    policy.allowedOrigins.includes('*') || policy.allowedOrigins.includes(origin) || isLoopbackOrigin(origin)
  );
}

function listAllows(list: readonly string[], asked: readonly string[]): boolean {
  return list.includes('*') || asked.every((a) => list.includes(a));
}

function splitHeaderList(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== '');
}

/** Sets the headers of an allowed cross-origin reply; answers a preflight itself. */
function answerAllowed(
  policy: CorsPolicy,
  origin: string,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply | undefined {
  const anyOrigin = policy.allowedOrigins.includes('*') && !policy.allowCredentials;
  reply.header('access-control-allow-origin', anyOrigin ? '*' : origin);
  reply.header('vary', 'Origin');
  if (policy.allowCredentials) reply.header('access-control-allow-credentials', 'true');
  const askedMethod = request.headers['access-control-request-method'];
  if (request.method !== 'OPTIONS' || askedMethod === undefined) return undefined;
  const method = String(askedMethod).toUpperCase();
  const headers = splitHeaderList(request.headers['access-control-request-headers'] as string | undefined);
  if (!listAllows(policy.allowedMethods, [method])) {
    throw new ForbiddenError(
      `CORS: method ${method} is not allowed (allowed: ${policy.allowedMethods.join(', ')}; see --allowed-methods)`,
    );
  }
  if (!listAllows(policy.allowedHeaders, headers)) {
    const refused = headers.filter((h) => !policy.allowedHeaders.includes(h));
    throw new ForbiddenError(
      `CORS: request header(s) ${refused.join(', ')} not allowed (allowed: ${policy.allowedHeaders.join(', ')}; ` +
        'see --allowed-headers)',
    );
  }
  reply.header(
    'access-control-allow-methods',
    policy.allowedMethods.includes('*') ? method : policy.allowedMethods.join(', '),
  );
  if (headers.length > 0) reply.header('access-control-allow-headers', headers.join(', '));
  reply.header('access-control-max-age', '600');
  return reply.code(204).send();
}

/** Installs the CORS policy: runs before the API key guard, so that preflights (which carry no key) work. */
export function installCors(app: FastifyInstance, policy: CorsPolicy): void {
  app.addHook('onRequest', async (request, reply) => {
    const origin = request.headers.origin;
    if (origin === undefined) return;
    if (!isOriginAllowed(policy, origin)) {
      throw new ForbiddenError(
        `CORS: origin ${JSON.stringify(origin)} is not allowed: by default only pages served from this ` +
          "machine's loopback addresses may call the server; start it with --allowed-origins to allow others",
      );
    }
    return answerAllowed(policy, origin, request, reply);
  });
}

/** Content types a request body may have: JSON (any charset parameter). */
export function isJsonContentType(contentType: string): boolean {
  const essence = contentType.split(';')[0]!.trim().toLowerCase();
  return essence === 'application/json' || /^application\/[^/]+\+json$/.test(essence);
}
