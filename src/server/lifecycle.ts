// The server's lifecycle as the HTTP side sees it: serving, then draining once a shutdown begins (new API
// requests get 503, the probes and /metrics still answer), with a count of the API requests whose
// responses are still open so that a shutdown can wait for them. The shutdown order itself is
// DuetServer.close's:
//   1. drain: refuse new requests; wait up to the grace period for the open ones to finish;
//   2. stop the engine: requests still running are aborted and end as vLLM ends an aborted request
//      (finish_reason "abort", then [DONE] on a stream; a whole reply with what was generated), or with an
//      error (an error event and [DONE], or a JSON error) where one was not in the engine yet; never a
//      cut connection;
//   3. wait (briefly) for those endings to be written, then close the listener and every connection.

import type { FastifyInstance } from 'fastify';
import { ServiceUnavailableError } from './errors.js';

/** Routes that answer while draining and are not counted as requests to wait for. */
export const ALWAYS_ANSWERED = new Set(['/live', '/ready', '/health', '/ping', '/metrics', '/version']);

export type LifecyclePhase = 'serving' | 'draining';

export class ServerLifecycle {
  private phaseNow: LifecyclePhase = 'serving';
  private open = 0;
  private readonly idleWaiters = new Set<() => void>();
  private endGraceNow: (() => void) | null = null;

  get phase(): LifecyclePhase {
    return this.phaseNow;
  }

  /** API requests whose responses are not finished. */
  get numOpen(): number {
    return this.open;
  }

  /** Counts the API requests and refuses new ones (503) once draining. */
  install(app: FastifyInstance): void {
    app.addHook('onRequest', async (request, reply) => {
      if (ALWAYS_ANSWERED.has(request.url.split('?')[0]!)) return;
      if (this.phaseNow === 'draining') {
        throw new ServiceUnavailableError('the server is shutting down and takes no new requests');
      }
      this.open++;
      // `close` fires once the response is finished or its connection is gone, whichever comes first.
      reply.raw.once('close', () => {
        this.open--;
        if (this.open === 0) for (const wake of [...this.idleWaiters]) wake();
      });
    });
  }

  /** Starts draining: from now on new API requests are refused. */
  startDraining(): void {
    this.phaseNow = 'draining';
  }

  /**
   * Resolves true once no API response is open, or false after `timeoutMs` (or sooner, when endGrace is
   * called: a second signal).
   */
  waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.open === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const finish = (idle: boolean) => {
        clearTimeout(timer);
        this.idleWaiters.delete(onIdle);
        if (this.endGraceNow === onGraceEnd) this.endGraceNow = null;
        resolve(idle);
      };
      const onIdle = () => finish(true);
      const onGraceEnd = () => finish(false);
      const timer = setTimeout(() => finish(false), timeoutMs);
      this.idleWaiters.add(onIdle);
      this.endGraceNow = onGraceEnd;
    });
  }

  /** Ends the current wait for open requests at once (a second SIGTERM or SIGINT). */
  endGrace(): void {
    this.endGraceNow?.();
  }
}
