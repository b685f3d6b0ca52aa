// How `duet serve` stops on SIGTERM and SIGINT.
// - The head (the API server): SIGTERM drains (new requests get 503, open ones have up to
//   --shutdown-timeout seconds to finish, the rest are aborted: finish_reason "abort"), SIGINT aborts the
//   open requests at once; either way every response is ended properly and the process exits 0. A second signal during the
//   drain cuts it short.
// - A headless node: a signal does not stop it at once, because its head (signalled by the same manager:
//   mpirun, a LeaderWorkerSet, srun) is still draining on its ranks; the head stops the group when done,
//   and the node exits 0. If that does not come within the drain time plus HEADLESS_MARGIN_MS, or on a
//   second signal, the node leaves with status 1. A node that loses its head exits 1 by itself
//   (runHeadlessNode rejects).

import type { Logger } from '../util/logger.js';

/** Beyond the drain time, what a headless node allows its head to stop the engine and the group. */
export const HEADLESS_MARGIN_MS = 15_000;

/** Where the signals come from (process, or a test's emitter). */
export interface SignalSource {
  on(signal: 'SIGINT' | 'SIGTERM', listener: () => void): unknown;
  off(signal: 'SIGINT' | 'SIGTERM', listener: () => void): unknown;
}

/** What the head's signals act on (DuetServer). */
export interface Closable {
  close(graceMs: number): Promise<boolean>;
  endGrace(): void;
}

/** Calls `onSignal(name, count)` for every SIGTERM or SIGINT until the returned function is called. */
function onSignals(signals: SignalSource, onSignal: (name: string, count: number) => void): () => void {
  let count = 0;
  const term = () => onSignal('SIGTERM', ++count);
  const int = () => onSignal('SIGINT', ++count);
  signals.on('SIGTERM', term);
  signals.on('SIGINT', int);
  return () => {
    signals.off('SIGTERM', term);
    signals.off('SIGINT', int);
  };
}

/** The head: resolves once the server has shut down after a signal. */
export function serveUntilSignalled(
  server: Closable,
  shutdownTimeoutMs: number,
  log: Logger,
  signals: SignalSource = process,
): Promise<void> {
  return new Promise<void>((resolve) => {
    const stopListening = onSignals(signals, (name, count) => {
      if (count > 1) {
        log.info(`${name} again: aborting the open requests now`);
        server.endGrace();
        return;
      }
      const graceMs = name === 'SIGTERM' ? shutdownTimeoutMs : 0;
      log.info(
        graceMs > 0
          ? `${name}: draining: new requests get 503, open ones have up to ${graceMs / 1000} s to finish`
          : `${name}: shutting down; aborting the open requests`,
      );
      void server.close(graceMs).then(
        (drained) => {
          stopListening();
          log.info(drained ? 'every open request finished; stopped' : 'stopped');
          resolve();
        },
        (e: Error) => {
          stopListening();
          log.error(`shutdown failed: ${e.message}`);
          resolve();
        },
      );
    });
  });
}

/**
 * A headless node: resolves when `running` does (the head stopped the group), rejects when it does (the
 * head was lost). After a signal, `leave(1)` is called if the head has not stopped the group within
 * `shutdownTimeoutMs + marginMs`, or at once on a second signal.
 */
export async function runHeadlessUntilStopped(
  running: Promise<void>,
  shutdownTimeoutMs: number,
  log: Logger,
  signals: SignalSource = process,
  leave: (code: number) => void = (code) => process.exit(code),
  marginMs = HEADLESS_MARGIN_MS,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const stopListening = onSignals(signals, (name, count) => {
    if (count > 1) {
      log.error(`${name} again: leaving the group now`);
      clearTimeout(timer);
      leave(1);
      return;
    }
    const waitMs = shutdownTimeoutMs + marginMs;
    log.info(`${name}: serving the head until it stops the group (at most ${waitMs / 1000} s)`);
    timer = setTimeout(() => {
      log.error(`the head did not stop the group within ${waitMs / 1000} s of ${name}; leaving`);
      leave(1);
    }, waitMs);
    timer.unref(); // the ranks keep the process alive; the timer alone must not
  });
  try {
    await running;
  } finally {
    stopListening();
    clearTimeout(timer);
  }
}
