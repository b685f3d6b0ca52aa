// The server's HTTP socket, bound before the model loads: a port in use or a host that is not this
// machine's fails at once with a hint, not after minutes of loading. While the model loads every request
// (/health and /ready included) gets a 503 in vLLM's error shape, except the liveness probe /live (200);
// once the app is ready it takes over the socket (fastify's serverFactory). The socket's timeouts are set here: a client must send its whole request
// within `requestTimeoutMs`, and an idle keep-alive connection is closed after `keepAliveTimeoutMs`.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { resolve } from 'node:path';
import { ServiceUnavailableError } from './errors.js';

/** Where to listen: a TCP host and port, or a Unix domain socket. */
export type ListenAddress = { readonly host: string; readonly port: number } | { readonly path: string };

/** The socket's timeouts. */
export interface HttpTimeouts {
  /** Time a client has to send its request line, headers and body (ms; --http-request-timeout). */
  readonly requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long (ms; --http-keep-alive-timeout). */
  readonly keepAliveTimeoutMs: number;
}

/**
 * The keep-alive idle time is longer than HTTP clients' own (undici: 4 s, or the server's hint less 1 s),
 * so the client closes an idle connection first: a server that closes it first races a client reusing it,
 * and that request is lost ("other side closed"; 5 of 38,845 in a 10-minute bench:soak at 5 s, none of
 * 47,895 at 120 s). Idle connections cost a socket each; slow or incomplete requests are bounded by the
 * request timeout instead.
 */
export const DEFAULT_HTTP_TIMEOUTS: HttpTimeouts = { requestTimeoutMs: 60_000, keepAliveTimeoutMs: 75_000 };

/** The HTTP socket cannot be opened as asked: the message says why and what to do. */
export class ListenError extends Error {
  constructor(
    message: string,
    /** The system's error code (EADDRINUSE, EACCES, ENOTFOUND, EADDRNOTAVAIL...). */
    readonly code: string,
  ) {
    super(message);
    this.name = 'ListenError';
  }
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

function answerLoading(req: IncomingMessage, res: ServerResponse): void {
  // Liveness: the process is alive while it loads (a 503 would have Kubernetes restart a slow load).
  if (req.url === '/live') {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify({ status: 'loading' }));
    return;
  }
  const body = JSON.stringify(
    new ServiceUnavailableError('the model is still loading; retry shortly').toBody(),
  );
  res.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '5' });
  res.end(body);
}

function where(address: ListenAddress): string {
  return 'path' in address ? `Unix socket ${address.path}` : `${address.host}:${address.port}`;
}

/** Turns a listen failure into a ListenError whose message says what to change. */
export function describeListenError(address: ListenAddress, e: NodeJS.ErrnoException): ListenError {
  const code = e.code ?? 'UNKNOWN';
  const at = where(address);
  switch (code) {
    case 'EADDRINUSE':
      return new ListenError(
        'path' in address
          ? `cannot listen on ${at}: the file exists (another server, or a stale socket): remove it or pick another --uds`
          : `cannot listen on ${at}: the port is in use (another duet serve?): pick another --port, or stop the ` +
              'process holding it',
        code,
      );
    case 'EACCES':
      return new ListenError(
        `cannot listen on ${at}: permission denied (ports below 1024 need privileges): pick a --port of 1024 or more`,
        code,
      );
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new ListenError(
        `cannot listen on ${at}: the host name does not resolve: give --host an address of this machine ` +
          '(127.0.0.1 for this machine only, 0.0.0.0 for every interface)',
        code,
      );
    case 'EADDRNOTAVAIL':
      return new ListenError(
        `cannot listen on ${at}: that address belongs to no interface of this machine: give --host one of its ` +
          'addresses (127.0.0.1 for this machine only, 0.0.0.0 for every interface)',
        code,
      );
    default:
      return new ListenError(`cannot listen on ${at}: ${e.message}`, code);
  }
}

/** Whether `host` keeps the server on this machine (the loopback interface). */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127(\.\d{1,3}){3}$/.test(h);
}

/** A bound HTTP socket: answers 503 until {@link HttpListener.serve} hands it the app's handler. */
export class HttpListener {
  private handler: Handler = answerLoading;

  private constructor(
    readonly server: Server,
    /** http://host:port, or unix:<path>. */
    readonly url: string,
  ) {}

  /** Binds the socket; throws ListenError at once when it cannot. */
  static async open(
    address: ListenAddress,
    timeouts: HttpTimeouts = DEFAULT_HTTP_TIMEOUTS,
  ): Promise<HttpListener> {
    let listener: HttpListener | null = null;
    const server = createServer(
      {
        requestTimeout: timeouts.requestTimeoutMs,
        headersTimeout: timeouts.requestTimeoutMs,
        keepAliveTimeout: timeouts.keepAliveTimeoutMs,
        // How often request timeouts are checked: often enough to honour a short timeout.
        connectionsCheckingInterval: Math.max(100, Math.min(30_000, timeouts.requestTimeoutMs / 4)),
      },
      (req, res) => listener!.handler(req, res),
    );
    const target = 'path' in address ? { path: resolve(address.path) } : address;
    await new Promise<void>((done, fail) => {
      const onError = (e: NodeJS.ErrnoException) => fail(describeListenError(target, e));
      server.once('error', onError);
      server.listen(target, () => {
        server.off('error', onError);
        done();
      });
    });
    let url: string;
    if ('path' in target) {
      url = `unix:${target.path}`;
    } else {
      const bound = server.address();
      const port = typeof bound === 'object' && bound !== null ? bound.port : target.port;
      url = `http://${target.host.includes(':') ? `[${target.host}]` : target.host}:${port}`;
    }
    listener = new HttpListener(server, url);
    return listener;
  }

  /** From now on requests go to `handler` (the app's). */
  serve(handler: Handler): void {
    this.handler = handler;
  }

  /** Stops listening and ends every open connection. */
  async close(): Promise<void> {
    const closed = new Promise<void>((done) => this.server.close(() => done()));
    this.server.closeAllConnections();
    await closed;
  }
}
