// The engine worker's loop: applies the main thread's messages between steps and runs `LLMEngine.step()`
// while any request is unfinished, posting each step's outputs as plain data. Idle, it only waits for
// messages. A failure of the loop itself is fatal: it is reported, the engine is closed, the worker ends.

import type { LLMEngine } from '../llm-engine.js';
import { RequestRejectedError } from '../llm-engine.js';
import type { RequestUpdate } from '../request-state.js';
import type { EngineOutput, EngineStatsSnapshot, FromWorkerMessage, ToWorkerMessage } from './protocol.js';
import { ScheduleTracker } from './schedule-tracker.js';

/** What the loop needs of its surroundings (the worker's parentPort, a clock, how to end). */
export interface EngineWorkerLoopHost {
  post(message: FromWorkerMessage): void;
  /** Called once after shutdown or a fatal error, when the engine is closed. */
  exit(code: number): void;
  /** Seconds on a monotonic clock. */
  now(): number;
}

export class EngineWorkerLoop {
  private readonly inbox: ToWorkerMessage[] = [];
  private readonly tracker = new ScheduleTracker();
  /** Requests whose first output has not been posted yet (it carries the prompt log-probs). */
  private readonly awaitingFirstOutput = new Set<string>();
  private running = false;
  private stopped = false;

  constructor(
    private readonly engine: LLMEngine,
    private readonly host: EngineWorkerLoopHost,
  ) {
    // A rank that dies makes the engine unusable: report it at once (health turns 503), even when idle.
    engine.onDead((reason) => {
      if (this.stopped) return;
      this.host.post({ type: 'fatal', message: reason });
      void this.stop(1);
    });
  }

  /** Queues a message from the main thread and wakes the loop. */
  receive(message: ToWorkerMessage): void {
    if (this.stopped) return;
    this.inbox.push(message);
    if (!this.running) {
      this.running = true;
      setImmediate(() => void this.run());
    }
  }

  private async run(): Promise<void> {
    try {
      for (;;) {
        const shutdown = this.drainInbox();
        if (shutdown) return await this.stop(0);
        if (!this.engine.hasUnfinishedRequests()) break;
        await this.stepOnce();
        // Let queued messages (adds, aborts, stats) arrive before the next step.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } catch (e) {
      const err = e as Error;
      this.host.post({ type: 'fatal', message: `engine loop failed: ${err.message}` });
      return await this.stop(1);
    }
    this.running = false;
  }

  /** Applies queued messages in order; returns true when a shutdown was asked. */
  private drainInbox(): boolean {
    const outputs: EngineOutput[] = [];
    while (this.inbox.length > 0) {
      const m = this.inbox.shift()!;
      switch (m.type) {
        case 'add':
          this.add(m.requestId, m.promptTokenIds, m.params);
          break;
        case 'abort':
          for (const id of m.requestIds) {
            const u = this.engine.abort(id);
            if (u) outputs.push(this.toOutput(u, this.host.now()));
          }
          break;
        case 'stats':
          // Outputs of earlier aborts go first, so that a stats reply never precedes them.
          this.flush(outputs);
          this.host.post({ type: 'stats', queryId: m.queryId, stats: this.snapshot() });
          break;
        case 'shutdown':
          this.flush(outputs);
          return true;
      }
    }
    this.flush(outputs);
    return false;
  }

  private add(requestId: string, promptTokenIds: readonly number[], params: ToAddParams): void {
    try {
      this.engine.addRequest(promptTokenIds, params, requestId);
    } catch (e) {
      const err = e as Error;
      const invalid = e instanceof RequestRejectedError;
      this.host.post({
        type: 'rejected',
        requestId,
        message: invalid ? err.message : `the engine could not accept the request: ${err.message}`,
        param: invalid ? (e as RequestRejectedError).param : null,
        isInvalidInput: invalid,
      });
      return;
    }
    this.tracker.onAdded(requestId, this.host.now());
    this.awaitingFirstOutput.add(requestId);
  }

  private async stepOnce(): Promise<void> {
    const stepStart = this.host.now();
    const updates = await this.engine.step();
    this.tracker.onStep(stepStart, this.engine.firstScheduledInLastStep);
    const now = this.host.now();
    const outputs = updates.map((u) => this.toOutput(u, now));
    this.flush(outputs);
  }

  private toOutput(u: RequestUpdate, now: number): EngineOutput {
    const s = u.state;
    if (u.newTokenIds.length > 0) this.tracker.onTokens(u.requestId, now);
    const first = this.awaitingFirstOutput.delete(u.requestId);
    const out: { -readonly [K in keyof EngineOutput]: EngineOutput[K] } = {
      requestId: u.requestId,
      newTokenIds: [...u.newTokenIds],
      textDelta: u.textDelta,
      newLogprobs: u.newLogprobs ? [...u.newLogprobs] : null,
      numOutputTokens: s.outputTokenIds.length,
      numPromptTokens: s.promptTokenIds.length,
      finished: u.finished,
      finishReason: u.finishReason,
      stopReason: u.stopReason,
      error: u.error,
    };
    if (first && s.promptLogprobs) out.promptLogprobs = s.promptLogprobs;
    if (u.finished) {
      this.awaitingFirstOutput.delete(u.requestId);
      out.final = {
        outputText: s.stopChecker.outputText,
        cumulativeLogprob: s.logprobs ? s.cumulativeLogprob : null,
        timings: this.tracker.onFinished(u.requestId, now),
      };
    }
    return out;
  }

  private flush(outputs: EngineOutput[]): void {
    if (outputs.length === 0) return;
    this.host.post({ type: 'outputs', outputs: outputs.splice(0) });
  }

  private snapshot(): EngineStatsSnapshot {
    const c = this.engine.counters;
    return {
      ...this.engine.stats(),
      promptTokens: c.promptTokens,
      generationTokens: c.generationTokens,
      numFinished: c.numFinished,
      numSteps: c.numSteps,
      dboSteps: this.engine.dboStats.steps,
      dboSplitSteps: this.engine.dboStats.splitSteps,
      dboOverlapMs: this.engine.dboStats.overlapMs,
    };
  }

  /**
   * Ends the loop. A shutdown (code 0) aborts the live requests, so each gets its final output; after a
   * fatal error (code 1) they are left to the main thread, which fails them with the fatal message.
   */
  private async stop(code: number): Promise<void> {
    this.stopped = true;
    try {
      if (code === 0) {
        const outputs: EngineOutput[] = [];
        for (const id of this.tracker.liveRequestIds()) {
          const u = this.engine.abort(id);
          if (u) outputs.push(this.toOutput(u, this.host.now()));
        }
        this.flush(outputs);
      }
      await this.engine.close();
    } finally {
      this.host.exit(code);
    }
  }
}

type ToAddParams = Extract<ToWorkerMessage, { type: 'add' }>['params'];
