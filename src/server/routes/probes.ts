// Kubernetes-style probes, apart from vLLM's /health (which stays as vLLM has it: 200 while the engine
// lives):
//   GET /live   liveness: the engine loop answers a query (it runs between steps, so a loop stuck in a
//               step or a dead engine worker fails it) within LIVE_TIMEOUT_MS; restart the pod if not.
//   GET /ready  readiness: the model is loaded and every rank of every node has joined (until both, the
//               HTTP listener answers every route but /live with 503), the engine lives, and the server
//               is not draining for a shutdown; send it traffic only then.
// Both answer 200 with a small JSON status, or 503 in vLLM's error shape saying why.

import type { FastifyInstance } from 'fastify';
import { ServiceUnavailableError } from '../errors.js';
import type { ServerLifecycle } from '../lifecycle.js';
import type { ServingContext } from '../serving-context.js';

/** Longest /live waits for the engine loop (a probe's own timeout is usually shorter). */
export const LIVE_TIMEOUT_MS = 30_000;

/** Resolves when the engine loop has answered a stats query; rejects with the reason otherwise. */
async function engineLoopAnswers(ctx: ServingContext, timeoutMs: number): Promise<void> {
  const health = ctx.engine.health();
  if (!health.alive) throw new ServiceUnavailableError(`the engine is dead: ${health.reason}`);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new ServiceUnavailableError(`the engine loop did not answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  try {
    await Promise.race([ctx.engine.stats(), late]);
  } catch (e) {
    if (e instanceof ServiceUnavailableError) throw e;
    throw new ServiceUnavailableError(`the engine is dead: ${(e as Error).message}`);
  } finally {
    clearTimeout(timer);
  }
}

export function registerProbeRoutes(
  app: FastifyInstance,
  ctx: ServingContext,
  lifecycle: ServerLifecycle,
  liveTimeoutMs = LIVE_TIMEOUT_MS,
): void {
  app.get('/live', async () => {
    await engineLoopAnswers(ctx, liveTimeoutMs);
    return { status: 'alive' };
  });

  app.get('/ready', async () => {
    if (lifecycle.phase === 'draining') {
      throw new ServiceUnavailableError('the server is shutting down and takes no new requests');
    }
    const health = ctx.engine.health();
    if (!health.alive) throw new ServiceUnavailableError(`the engine is dead: ${health.reason}`);
    return { status: 'ready', model: ctx.options.servedModelNames[0] };
  });
}
