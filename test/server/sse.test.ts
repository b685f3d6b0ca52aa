// SseWriter on a real socket: the headers leave with the first event (nothing is sent at open), every
// event arrives whole and in order, a client that stops reading holds writes back until it reads again
// (backpressure, nothing lost), and one that reads nothing for the stall timeout has its stream closed.

import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SseWriter } from '../../src/server/sse.js';

/** A server that hands each request's response to the test. */
class ResponseServer {
  private readonly waiting: ((res: ServerResponse) => void)[] = [];
  readonly server: Server = createServer((_req, res) => this.waiting.shift()?.(res));

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as { port: number }).port;
  }

  /** Sends a GET on a raw socket; resolves with the socket and the server side's response. */
  async request(port: number): Promise<{ socket: Socket; res: ServerResponse }> {
    const res = new Promise<ServerResponse>((resolve) => this.waiting.push(resolve));
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', resolve));
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    return { socket, res: await res };
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Everything the socket received so far, as text. */
function received(socket: Socket): { text: () => string } {
  let text = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    text += d;
  });
  return { text: () => text };
}

/** Waits for the last chunk of a chunked response (the connection itself is kept alive). */
async function untilEnded(got: { text: () => string }): Promise<void> {
  while (!got.text().endsWith('\r\n0\r\n\r\n')) await sleep(5);
}

/** The `data` fields of the complete events in a chunked SSE response's text. */
function events(text: string): string[] {
  // Chunked transfer encoding frames each write; the events themselves end in a blank line.
  const body = text.slice(text.indexOf('\r\n\r\n') + 4).replace(/(^|\r\n)[0-9a-f]+\r\n/g, '');
  return [...body.matchAll(/data: (.*)\n\n/g)].map((m) => m[1]!);
}

describe('SseWriter', () => {
  const rs = new ResponseServer();
  let port = 0;
  before(async () => {
    port = await rs.listen();
  });
  after(() => {
    rs.server.closeAllConnections();
    rs.server.close();
  });

  test('open sends nothing: the status line and headers leave with the first event', async () => {
    const { socket, res } = await rs.request(port);
    const got = received(socket);
    const sse = new SseWriter(res, 10_000);
    sse.open({ 'x-extra': 'kept' });
    await sleep(100);
    assert.equal(got.text(), '', 'bytes reached the client before the first event');
    await sse.send({ a: 1 });
    await sse.done();
    await untilEnded(got);
    const text = got.text();
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /\r\ncontent-type: text\/event-stream; charset=utf-8\r\n/);
    assert.match(text, /\r\nx-extra: kept\r\n/);
    assert.deepEqual(events(text), ['{"a":1}', '[DONE]']);
    socket.destroy();
  });

  test('a client that stops reading holds writes back; once it reads, every event arrives in order', async () => {
    const { socket, res } = await rs.request(port);
    socket.pause();
    const sse = new SseWriter(res, 60_000);
    sse.open();
    const payload = 'x'.repeat(64 * 1024);
    let sent = 0;
    let held: Promise<void> | null = null;
    // Fill the socket and the kernel's buffers (a few MB on loopback) until a write has to wait for the
    // client: one still pending after 100 ms.
    for (; sent < 2000 && held === null; sent++) {
      let settled = false;
      const p = sse.send({ i: sent, p: payload }).then(() => {
        settled = true;
      });
      if (!settled) await Promise.race([p, sleep(100)]);
      if (!settled) held = p;
    }
    assert.notEqual(held, null, 'no write ever waited for the client');
    let released = false;
    void held!.then(() => {
      released = true;
    });
    await sleep(200);
    assert.equal(released, false, 'a write waiting for a client that reads nothing went on');
    const got = received(socket);
    socket.resume();
    await held;
    await sse.done();
    await untilEnded(got);
    const data = events(got.text());
    assert.equal(data.length, sent + 1);
    data.slice(0, -1).forEach((d, i) => {
      assert.equal((JSON.parse(d) as { i: number }).i, i);
    });
    assert.equal(data.at(-1), '[DONE]');
    socket.destroy();
  });

  test('a client that reads nothing for the stall timeout has its stream closed', async () => {
    const { socket, res } = await rs.request(port);
    socket.pause();
    let stalls = 0;
    const sse = new SseWriter(res, 300, () => stalls++);
    sse.open();
    const payload = 'y'.repeat(64 * 1024);
    const started = performance.now();
    for (let i = 0; i < 2000 && !sse.isClosed; i++) await sse.send({ p: payload });
    assert.ok(sse.isClosed, 'the stream was never closed');
    assert.equal(stalls, 1);
    assert.ok(performance.now() - started >= 300, 'closed before the stall timeout');
    // Once closed every write is a no-op that resolves at once.
    await sse.send({ after: true });
    await sse.done();
    socket.destroy();
  });
});
