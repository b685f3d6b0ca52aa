// Server-sent events on a raw Node response, as OpenAI streams: one `data: {json}\n\n` event per chunk and
// a final `data: [DONE]\n\n`. The status line and headers leave with the first event (one socket write and
// one client wakeup fewer per stream than flushing them alone; the routes open the stream only when its
// first event is ready). Writes wait for the socket to drain, so a slow client slows its own request
// instead of filling memory; a client that reads nothing for `stallTimeoutMs` has its connection closed,
// which aborts its request (the route's disconnect signal) and frees its KV blocks. Once the client is
// gone every write is a no-op.

import type { ServerResponse } from 'node:http';

/** What a write that the socket took at once returns: no promise allocated per streamed token. */
const WRITTEN: Promise<void> = Promise.resolve();

export class SseWriter {
  constructor(
    private readonly res: ServerResponse,
    /** How long a write may wait for the client to drain the socket before the stream is closed (ms). */
    private readonly stallTimeoutMs: number,
    /** Called when the stream is closed for that reason. */
    private readonly onStall: () => void = () => {},
  ) {}

  /**
   * Sets the status line and headers (`extraHeaders`: e.g. CORS headers set earlier); they are sent with
   * the first event.
   */
  open(extraHeaders: Record<string, string | number | readonly string[]> = {}): void {
    this.res.writeHead(200, {
      ...extraHeaders,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
  }

  /** Whether the client has gone (nothing more can be sent). */
  get isClosed(): boolean {
    return this.res.destroyed || this.res.writableEnded;
  }

  /** Sends one event whose data is `payload` as JSON. */
  send(payload: unknown): Promise<void> {
    return this.write(`data: ${JSON.stringify(payload)}\n\n`);
  }

  /** Sends `data: [DONE]` and ends the response. */
  async done(): Promise<void> {
    await this.write('data: [DONE]\n\n');
    if (!this.isClosed) this.res.end();
  }

  private write(text: string): Promise<void> {
    if (this.isClosed || this.res.write(text)) return WRITTEN;
    return new Promise<void>((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.res.off('drain', finish);
        this.res.off('close', finish);
        resolve();
      };
      const timer = setTimeout(() => {
        this.res.destroy();
        this.onStall();
        finish();
      }, this.stallTimeoutMs);
      this.res.on('drain', finish);
      this.res.on('close', finish);
    });
  }
}
