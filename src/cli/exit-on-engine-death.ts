// What `duet serve` does when its engine dies (a crash, a lost rank, a failed model step), as vLLM does:
// every in-flight and queued request has already been answered with an error and /health answers 503;
// after a short grace, so that probes and load balancers see the 503, the server closes and the process
// exits with status 1, so that a supervisor (systemd, Kubernetes, a launcher) starts a fresh one.

import type { DuetServer } from '../server/server.js';
import type { Logger } from '../util/logger.js';

/** How long /health keeps answering 503 before the server closes. */
export const ENGINE_DEATH_GRACE_MS = 3000;
/** How long closing may take before the process exits anyway. */
const CLOSE_TIMEOUT_MS = 3000;

/** Arranges for the process to exit with status 1 soon after `server`'s engine dies. */
export function exitOnEngineDeath(
  server: DuetServer,
  logger: Logger,
  exit: (code: number) => void = (code) => process.exit(code),
): void {
  server.engine.onDeath((reason) => {
    // A SIGTERM during the grace still ends with status 1.
    process.exitCode = 1;
    logger.error(
      `the engine died (${reason}); /health answers 503, and duet serve exits with status 1 in ` +
        `${ENGINE_DEATH_GRACE_MS / 1000} s so that a supervisor can restart it`,
    );
    setTimeout(() => {
      setTimeout(() => exit(1), CLOSE_TIMEOUT_MS).unref();
      void server.close().then(
        () => exit(1),
        () => exit(1),
      );
    }, ENGINE_DEATH_GRACE_MS);
  });
}
