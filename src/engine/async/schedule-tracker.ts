// Per-request phase timings for metrics (vLLM's queue, prefill, decode and inference times), measured on
// the engine worker's clock. The engine reports only outputs, so the first-scheduled moment is inferred:
// the waiting queue is first-come first-served, so after a step that leaves W never-scheduled requests
// waiting, every older never-scheduled request was admitted by that step. Pure bookkeeping, no clock.

import type { RequestTimings } from './protocol.js';

interface Phases {
  readonly arrival: number;
  scheduled: number | null;
  firstToken: number | null;
}

export class ScheduleTracker {
  private readonly phases = new Map<string, Phases>();
  /** Requests never scheduled yet, oldest first. */
  private neverScheduled: string[] = [];

  /** A request entered the engine at `now` (seconds). */
  onAdded(requestId: string, now: number): void {
    this.phases.set(requestId, { arrival: now, scheduled: null, firstToken: null });
    this.neverScheduled.push(requestId);
  }

  /**
   * After a step that started at `stepStart`: `numNeverScheduledWaiting` (the engine's waiting count less
   * its preempted waiting count) of the newest never-scheduled requests still wait; the others were
   * scheduled by this step.
   */
  onStep(stepStart: number, numNeverScheduledWaiting: number): void {
    const numAdmitted = Math.max(0, this.neverScheduled.length - numNeverScheduledWaiting);
    if (numAdmitted === 0) return;
    for (const id of this.neverScheduled.slice(0, numAdmitted)) {
      const p = this.phases.get(id);
      if (p) p.scheduled = stepStart;
    }
    this.neverScheduled = this.neverScheduled.slice(numAdmitted);
  }

  /** The request produced tokens at `now`. */
  onTokens(requestId: string, now: number): void {
    const p = this.phases.get(requestId);
    if (p && p.firstToken === null) p.firstToken = now;
  }

  /** The request finished (or was aborted) at `now`: forgets it and returns its phase timings. */
  onFinished(requestId: string, now: number): RequestTimings {
    const p = this.phases.get(requestId);
    this.forget(requestId);
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

  private forget(requestId: string): void {
    if (!this.phases.delete(requestId)) return;
    const i = this.neverScheduled.indexOf(requestId);
    if (i !== -1) this.neverScheduled.splice(i, 1);
  }
}
