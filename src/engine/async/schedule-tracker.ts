// Per-request phase timings for metrics (vLLM's queue, prefill, decode and inference times), measured on
// the engine thread's clock. The scheduler says which requests a step scheduled for the first time
// (LLMEngine.firstScheduledInLastStep, from its 'new' scheduled requests); their queueing ended at that
// step's start. Pure bookkeeping, no clock.

import type { RequestTimings } from './protocol.js';

interface Phases {
  readonly arrival: number;
  scheduled: number | null;
  firstToken: number | null;
}

export class ScheduleTracker {
  private readonly phases = new Map<string, Phases>();

  /** A request entered the engine at `now` (seconds). */
  onAdded(requestId: string, now: number): void {
    this.phases.set(requestId, { arrival: now, scheduled: null, firstToken: null });
  }

  /** A step that started at `stepStart` scheduled `firstScheduled` for the first time. */
  onStep(stepStart: number, firstScheduled: readonly string[]): void {
    for (const id of firstScheduled) {
      const p = this.phases.get(id);
      if (p && p.scheduled === null) p.scheduled = stepStart;
    }
  }

  /** The request produced tokens at `now`. */
  onTokens(requestId: string, now: number): void {
    const p = this.phases.get(requestId);
    if (p && p.firstToken === null) p.firstToken = now;
  }

  /** The request finished (or was aborted) at `now`: forgets it and returns its phase timings. */
  onFinished(requestId: string, now: number): RequestTimings {
    const p = this.phases.get(requestId);
    this.phases.delete(requestId);
    if (!p) return { queueTime: 0, prefillTime: 0, decodeTime: 0, inferenceTime: 0 };
    // Never scheduled (aborted while waiting): it spent its whole life in the queue.
    const scheduled = p.scheduled ?? now;
    const firstToken = p.firstToken ?? now;
    return {
      queueTime: scheduled - p.arrival,
      prefillTime: p.firstToken === null ? now - scheduled : firstToken - scheduled,
      decodeTime: p.firstToken === null ? 0 : now - firstToken,
      inferenceTime: now - scheduled,
    };
  }

  /** Ids of every tracked (live) request, oldest first. */
  liveRequestIds(): string[] {
    return [...this.phases.keys()];
  }
}
