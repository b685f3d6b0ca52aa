// One request's outputs as an async iterable: the AsyncEngine pushes outputs as they arrive from the engine
// worker, the consumer pulls them with `for await`. Leaving the loop early cancels the request.

import type { EngineOutput } from './protocol.js';

export class OutputStream implements AsyncIterable<EngineOutput> {
  private readonly queue: EngineOutput[] = [];
  private waiter: { resolve: () => void } | null = null;
  private failure: Error | null = null;
  private ended = false;
  private iterated = false;

  /** @param onCancel called when the consumer stops before the request finished. */
  constructor(private readonly onCancel: () => void) {}

  /** Whether the last output (or a failure) has been delivered to the stream. */
  get isDone(): boolean {
    return this.ended || this.failure !== null;
  }

  push(output: EngineOutput): void {
    if (this.isDone) return;
    this.queue.push(output);
    if (output.finished) this.ended = true;
    this.wake();
  }

  fail(error: Error): void {
    if (this.isDone) return;
    this.failure = error;
    this.wake();
  }

  [Symbol.asyncIterator](): AsyncIterator<EngineOutput> {
    if (this.iterated) throw new Error('an OutputStream can be iterated only once');
    this.iterated = true;
    return {
      next: async (): Promise<IteratorResult<EngineOutput>> => {
        for (;;) {
          const out = this.queue.shift();
          if (out) return { value: out, done: false };
          if (this.failure) throw this.failure;
          if (this.ended) return { value: undefined, done: true };
          await new Promise<void>((resolve) => {
            this.waiter = { resolve };
          });
        }
      },
      return: async (): Promise<IteratorResult<EngineOutput>> => {
        if (!this.isDone) this.onCancel();
        this.ended = true;
        this.queue.length = 0;
        return { value: undefined, done: true };
      },
    };
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.resolve();
  }
}
