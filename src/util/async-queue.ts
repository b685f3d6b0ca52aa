// A single-consumer async queue: producers push values (or one failure) and end it; the consumer reads
// with `for await`. One request's outputs (the engine client's OutputStream) and the merged outputs of a
// request's choices (the server) are such queues. `onStop` runs once when the consumer stops before the
// end: it left the loop early, or the failure was thrown to it.

export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: (() => void) | null = null;
  private failure: unknown = null;
  private hasFailed = false;
  private ended = false;
  private stopped = false;
  private iterated = false;

  constructor(private readonly onStop: () => void = () => {}) {}

  /** Whether the end (or a failure) has been queued: nothing more can be pushed. */
  get isDone(): boolean {
    return this.ended || this.hasFailed;
  }

  push(item: T): void {
    if (this.ended || this.hasFailed) return;
    this.items.push(item);
    this.wake();
  }

  /** Fails the queue: the consumer gets `error` after the items already pushed. */
  fail(error: unknown): void {
    if (this.ended || this.hasFailed) return;
    this.hasFailed = true;
    this.failure = error;
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  // A plain iterator rather than an async generator: one promise per item instead of a generator's
  // several, on the path every streamed token takes.
  [Symbol.asyncIterator](): AsyncIterator<T> {
    if (this.iterated) throw new Error('an AsyncQueue can be iterated only once');
    this.iterated = true;
    return {
      next: async (): Promise<IteratorResult<T>> => {
        for (;;) {
          if (this.items.length > 0) return { value: this.items.shift()!, done: false };
          if (this.hasFailed) {
            this.stop();
            throw this.failure;
          }
          if (this.ended) return { value: undefined, done: true };
          await new Promise<void>((resolve) => {
            this.waiter = resolve;
          });
        }
      },
      return: async (): Promise<IteratorResult<T>> => {
        if (!this.ended) this.stop();
        this.ended = true;
        this.items.length = 0;
        return { value: undefined, done: true };
      },
    };
  }

  private stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.onStop();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}
