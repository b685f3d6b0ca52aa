// The HTTP application (fastify): JSON bodies whatever the content type (as curl users send them), the API
// key guard on /v1, CORS, vLLM's error shape for every failure (malformed JSON and unknown routes
// included), and the routes. Built from a ServingContext; listening is startServer's job.

import Fastify, { type FastifyInstance } from 'fastify';
import { AuthenticationError, BadRequestError, NotFoundError, toApiError } from './errors.js';
import { registerChatCompletions } from './routes/chat-completions.js';
import { registerCompletions } from './routes/completions.js';
import { registerSystemRoutes } from './routes/system.js';
import { registerTokenize } from './routes/tokenize.js';
import type { ServingContext } from './serving-context.js';

/** Largest request body accepted (a long prompt as token ids is a few hundred KiB). */
const BODY_LIMIT_BYTES = 64 * 2 ** 20;

/** Builds the fastify app serving the OpenAI-compatible API over `ctx`. */
export function buildApp(ctx: ServingContext): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: BODY_LIMIT_BYTES, forceCloseConnections: true });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_request, body, done) => {
    const text = body as string;
    if (text.trim() === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch (e) {
      done(new BadRequestError(`the request body is not valid JSON: ${(e as Error).message}`), undefined);
    }
  });

  const apiKey = ctx.options.apiKey;
  if (apiKey !== null) {
    app.addHook('onRequest', async (request) => {
      if (!request.url.startsWith('/v1')) return;
      if (request.headers.authorization !== `Bearer ${apiKey}`) throw new AuthenticationError();
    });
  }

  const origins = ctx.options.allowedOrigins;
  if (origins.length > 0) {
    app.addHook('onRequest', async (request, reply) => {
      const origin = request.headers.origin;
      if (origin === undefined) return;
      if (!origins.includes('*') && !origins.includes(origin)) return;
      reply.header('access-control-allow-origin', origins.includes('*') ? '*' : origin);
      reply.header('vary', 'Origin');
      if (request.method === 'OPTIONS') {
        reply.header('access-control-allow-methods', 'GET, POST, OPTIONS');
        reply.header(
          'access-control-allow-headers',
          request.headers['access-control-request-headers'] ?? 'authorization, content-type',
        );
        return reply.code(204).send();
      }
    });
  }

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
