// The benchmark client's HTTP: a POST whose response is read as text as it streams, on node:http and
// node:https with keep-alive agents and no header or body timeouts (a loaded CPU server queueing hundreds
// of long prompts may take minutes before its first byte; vLLM's client allows 6 hours). It replaced
// fetch, whose undici and web-stream layers cost about twice the CPU per streamed chunk: on a machine
// that also runs the server, every cycle the client spends is taken from what it measures
// (bench/serve-overhead.ts reports the client's share).

import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';

/** Keep-alive connection pools for http: and https: URLs, with no limit on open connections. */
export class ClientAgents {
  readonly http = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  readonly https = new https.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });

  /** Closes every pooled connection. */
  close(): void {
    this.http.destroy();
    this.https.destroy();
  }
}

export interface PostOptions {
  /** The connection pools (default: Node's global agents). */
  readonly agents?: ClientAgents;
  /** Aborting it destroys the connection; the returned promise, or the reading, rejects with AbortError. */
  readonly signal?: AbortSignal;
}

/** Sends `body` with POST to `url`; resolves with the response once its headers have arrived. */
export function postRequest(
  url: string,
  headers: Readonly<Record<string, string>>,
  body: string,
  options: PostOptions = {},
): Promise<IncomingMessage> {
  const target = new URL(url);
  const isHttps = target.protocol === 'https:';
  if (!isHttps && target.protocol !== 'http:') {
    return Promise.reject(new TypeError(`${url}: only http: and https: URLs can be benchmarked`));
  }
  const send = isHttps ? https.request : http.request;
  const agent = isHttps ? options.agents?.https : options.agents?.http;
  return new Promise((resolve, reject) => {
    const req = send(target, {
      method: 'POST',
      headers: { ...headers, 'content-length': Buffer.byteLength(body) },
      ...(agent !== undefined ? { agent } : {}),
      ...(options.signal !== undefined ? { signal: options.signal } : {}),
    });
    req.once('response', resolve);
    req.once('error', reject);
    req.end(body);
  });
}

/**
 * Reads a response's body as UTF-8 text, handing each piece to `onText` as it arrives; resolves at its
 * end, rejects when the connection is cut before it (or the request's signal aborts it).
 */
export function readText(res: IncomingMessage, onText: (text: string) => void): Promise<void> {
  res.setEncoding('utf8');
  return new Promise((resolve, reject) => {
    res.on('data', onText);
    res.once('end', resolve);
    res.once('error', reject);
    res.once('close', () => {
      if (!res.complete) reject(new Error('the connection closed before the response ended'));
    });
  });
}

/** The whole body as text (at most `limit` characters kept). */
export async function readAllText(res: IncomingMessage, limit: number): Promise<string> {
  let text = '';
  await readText(res, (t) => {
    if (text.length < limit) text += t;
  });
  return text.slice(0, limit);
}
