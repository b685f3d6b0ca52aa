// The server's plain routes: GET /v1/models, GET /health and /ping (503 when the engine is dead),
// GET /version and GET /metrics (Prometheus text).

import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ServiceUnavailableError } from '../errors.js';
import type { ModelList } from '../openai/responses.js';
import type { ServingContext } from '../serving-context.js';

export function registerSystemRoutes(app: FastifyInstance, ctx: ServingContext): void {
  app.get(
    '/v1/models',
    async (): Promise<ModelList> => ({
      object: 'list',
      data: ctx.options.servedModelNames.map((id) => ({
        id,
        object: 'model',
        created: ctx.startedAt,
        owned_by: 'duet',
        root: ctx.info.modelDir,
        parent: null,
        max_model_len: ctx.info.maxModelLen,
      })),
    }),
  );

  const health = async (_request: FastifyRequest, reply: FastifyReply) => {
    const h = ctx.engine.health();
    if (!h.alive) throw new ServiceUnavailableError(`the engine is dead: ${h.reason}`);
    reply.code(200);
    return reply.send();
  };
  app.get('/health', health);
  app.get('/ping', health);
  app.post('/ping', health);

  app.get('/version', async () => ({ version: ctx.version }));

  app.get('/metrics', async (_request, reply) => {
    const text = await ctx.metrics.render();
    reply.header('content-type', ctx.metrics.contentType);
    return text;
  });
}
