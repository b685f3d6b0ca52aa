// A small OpenAI-compatible streaming server for the benchmark's tests (node:http on an ephemeral port):
// it streams a known number of token chunks on a known timetable — the first `ttftMs` after the request
// arrives, then one every `itlMs` — reports usage when asked, records when each request arrived, and can
// fail chosen requests (HTTP error, cut connection, or a stream without tokens).

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** How the fake server treats one request. */
export type FakeFailure =
  | { kind: 'http'; status: number; message: string }
  | { kind: 'disconnect' }
  | { kind: 'no-tokens' };

/** The fake server's behaviour. */
export interface FakeServerOptions {
  /** Texts of the token chunks, cycled; a request gets max_tokens (or max_completion_tokens) chunks. */
  readonly tokens: readonly string[];
  readonly ttftMs: number;
  readonly itlMs: number;
  /** Send the usage chunk when the request asks for it (default true). */
  readonly reportUsage?: boolean;
  /** usage.prompt_tokens of a request body. */
  readonly promptTokens?: (body: Record<string, unknown>) => number;
  /** Failure of a request, by its x-request-id. */
  readonly failure?: (requestId: string) => FakeFailure | null;
  /** Chat: send the role-only chunk at once, before the first token (as vLLM does; default true). */
  readonly roleChunk?: boolean;
}

/** One request the server received. */
export interface ReceivedRequest {
  readonly path: string;
  readonly body: Record<string, unknown>;
  readonly headers: IncomingMessage['headers'];
  /** performance.now() in ms when the request body was read. */
  readonly arrivedAt: number;
}

/** A running fake server. */
export interface FakeServer {
  readonly baseUrl: string;
  readonly received: ReceivedRequest[];
  close(): Promise<void>;
}

/** Starts a fake server on 127.0.0.1 at an ephemeral port. */
export async function startFakeServer(options: FakeServerOptions): Promise<FakeServer> {
  const received: ReceivedRequest[] = [];
  const server: Server = createServer((req, res) => {
    let raw = '';
    req.on('data', (d: Buffer) => {
      raw += d.toString('utf8');
    });
    req.on('end', () => handle(req, res, raw, options, received));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    received,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function handle(
  req: IncomingMessage,
  res: ServerResponse,
  raw: string,
  o: FakeServerOptions,
  received: ReceivedRequest[],
): void {
  const path = req.url ?? '/';
  if (req.method === 'GET' && path === '/v1/models') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({ object: 'list', data: [{ id: 'fake-model', object: 'model', root: 'fake-root' }] }),
    );
    return;
  }
  const chat = path === '/v1/chat/completions';
  if (req.method !== 'POST' || (!chat && path !== '/v1/completions')) {
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: `no route ${req.method} ${path}`, type: 'NotFoundError' } }));
    return;
  }
  const body = JSON.parse(raw) as Record<string, unknown>;
  const arrivedAt = performance.now();
  received.push({ path, body, headers: req.headers, arrivedAt });
  const requestId = String(req.headers['x-request-id'] ?? '');
  const failure = o.failure?.(requestId) ?? null;
  if (failure?.kind === 'http') {
    res.writeHead(failure.status, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        error: { message: failure.message, type: 'BadRequestError', param: null, code: failure.status },
      }),
    );
    return;
  }
  const numTokens = Number(chat ? body.max_completion_tokens : body.max_tokens);
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  const send = (obj: unknown) => res.write(`data: ${JSON.stringify(obj)}\n\n`);
  const choice = (text: string, finish: string | null) =>
    chat
      ? { index: 0, delta: { content: text }, finish_reason: finish }
      : { index: 0, text, finish_reason: finish };
  if (chat && (o.roleChunk ?? true))
    send({ choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] });
  const emitted = failure?.kind === 'no-tokens' ? 0 : numTokens;
  let timer: NodeJS.Timeout | undefined;
  res.on('close', () => clearTimeout(timer));
  const finish = () => {
    const wantsUsage =
      (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true;
    if (wantsUsage && (o.reportUsage ?? true)) {
      const promptTokens = o.promptTokens?.(body) ?? 0;
      send({
        choices: [],
        usage: {
          prompt_tokens: promptTokens,
          completion_tokens: emitted,
          total_tokens: promptTokens + emitted,
        },
      });
    }
    res.write('data: [DONE]\n\n');
    res.end();
  };
  // Token k is due at arrival + ttft + k·itl; each step schedules the next, so the order is fixed even
  // when a blocked event loop makes several due at once.
  const step = (k: number) => {
    if (k === emitted) {
      finish();
      return;
    }
    if (failure?.kind === 'disconnect' && k === 1) {
      res.destroy();
      return;
    }
    send({ choices: [choice(o.tokens[k % o.tokens.length]!, k === emitted - 1 ? 'length' : null)] });
    schedule(k + 1);
  };
  const schedule = (k: number) => {
    const due = arrivedAt + o.ttftMs + Math.max(0, k === emitted ? k - 1 : k) * o.itlMs;
    timer = setTimeout(() => step(k), Math.max(0, due - performance.now()));
  };
  schedule(0);
}
