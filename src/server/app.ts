// The HTTP application (fastify): CORS (cors.ts), the API key guard on every route but the open probes
// (api-key.ts), JSON request bodies only (any other content type is a 415), vLLM's error shape for every
// failure (malformed JSON and unknown routes included), and the routes. Built from a ServingContext;
// listening is the HttpListener's job.

import Fastify, { type FastifyInstance } from 'fastify';
import { installApiKeyGuard } from './api-key.js';
import { installCors, isJsonContentType } from './cors.js';
import { NotFoundError, toApiError, UnsupportedMediaTypeError } from './errors.js';
import type { HttpListener } from './http-listener.js';
import { parseJsonBody } from './json-body.js';
import { registerChatCompletions } from './routes/chat-completions.js';
import { registerCompletions } from './routes/completions.js';
import { registerSystemRoutes } from './routes/system.js';
import { registerTokenize } from './routes/tokenize.js';
import type { ServingContext } from './serving-context.js';

/** Largest request body accepted (a long prompt as token ids is a few hundred KiB). */
const BODY_LIMIT_BYTES = 64 * 2 ** 20;

/**
 * Builds the fastify app serving the OpenAI-compatible API over `ctx`. On a listener, the app takes its
 * socket over once ready (`await app.ready()`; until then the listener answers 503); without one (tests
 * using `inject`) fastify makes its own server.
 */
export function buildApp(ctx: ServingContext, listener?: HttpListener): FastifyInstance {
  let handler: Parameters<HttpListener['serve']>[0] | null = null;
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT_BYTES,
    ...(listener !== undefined
      ? {
          serverFactory: (appHandler: NonNullable<typeof handler>) => {
            handler = appHandler;
            return listener.server;
          },
        }
      : {}),
  });
  app.addHook('onReady', async () => {
    if (handler !== null) listener?.serve(handler);
  });

  // CORS first: a preflight carries no API key, and a disallowed origin is refused before anything runs.
  installCors(app, ctx.options.cors);
  if (ctx.options.apiKey !== null) installApiKeyGuard(app, ctx.options.apiKey);

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (request, body, done) => {
    const contentType = request.headers['content-type'] ?? '';
    if (!isJsonContentType(contentType)) {
      const got = contentType === '' ? 'no Content-Type' : `Content-Type ${JSON.stringify(contentType)}`;
      done(
        new UnsupportedMediaTypeError(
          `Unsupported Media Type: request bodies must be JSON sent with "Content-Type: application/json" (got ${got})`,
        ),
        undefined,
      );
      return;
    }
    try {
      done(null, parseJsonBody(body as string));
    } catch (e) {
      done(e as Error, undefined);
    }
  });

  app.setErrorHandler((error, request, reply) => {
    const err = toApiError(error);
    if (err.status >= 500) ctx.logger.error(`${request.method} ${request.url} failed: ${err.message}`);
    reply.code(err.status).send(err.toBody());
  });
  app.setNotFoundHandler((request, reply) => {
    const err = new NotFoundError(`Not Found: no route ${request.method} ${request.url.split('?')[0]}`);
    reply.code(404).send(err.toBody());
  });

  registerSystemRoutes(app, ctx);
  registerCompletions(app, ctx);
  registerChatCompletions(app, ctx);
  registerTokenize(app, ctx);
  return app;
}
