// A single-consumer async queue: producers push values (or one failure) and end it; the consumer reads
// with `for await`. Used to merge the outputs of a request's choices in arrival order.

export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: (() => void) | null = null;
  private failure: unknown = null;
  private hasFailed = false;
  private ended = false;

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

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = this.items.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.hasFailed) throw this.failure;
      if (this.ended) return;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }
}
