// A bandwidth-limited TCP relay on loopback, for tests that need a slow link where network namespaces
// are not available: it forwards each connection to a target, each direction through a token bucket.

import { connect, createServer, type Socket } from 'node:net';

export interface ThrottledProxy {
  readonly port: number;
  close(): Promise<void>;
}

const BURST_BYTES = 16 * 1024;
const HIGH_WATER = 256 * 1024;
const TICK_MS = 2;

/** Copies src to dst at most `bytesPerSecond`, ending or destroying dst when src does. */
function throttle(src: Socket, dst: Socket, bytesPerSecond: number): void {
  const queue: Buffer[] = [];
  let queued = 0;
  let tokens = BURST_BYTES;
  let last = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let ended = false;
  const pump = () => {
    const now = performance.now();
    tokens = Math.min(BURST_BYTES, tokens + ((now - last) * bytesPerSecond) / 1000);
    last = now;
    while (queue.length > 0 && tokens >= 1) {
      const head = queue[0]!;
      const take = Math.min(head.length, Math.floor(tokens));
      dst.write(head.subarray(0, take));
      tokens -= take;
      queued -= take;
      if (take === head.length) queue.shift();
      else queue[0] = head.subarray(take);
    }
    if (queued < HIGH_WATER / 2 && src.isPaused()) src.resume();
    if (queue.length > 0 && timer === undefined)
      timer = setTimeout(() => {
        timer = undefined;
        pump();
      }, TICK_MS);
    if (queue.length === 0 && ended) dst.end();
  };
  src.on('data', (d: Buffer) => {
    queue.push(d);
    queued += d.length;
    if (queued > HIGH_WATER) src.pause();
    pump();
  });
  src.on('end', () => {
    ended = true;
    pump();
  });
  src.on('close', (hadError) => {
    if (hadError) dst.destroy();
  });
  src.on('error', () => dst.destroy());
}

/** Listens on 127.0.0.1 (ephemeral port) and relays to `target` at `bytesPerSecond` each way. */
export async function startThrottledProxy(
  target: { host: string; port: number },
  bytesPerSecond: number,
): Promise<ThrottledProxy> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    throttle(client, upstream, bytesPerSecond);
    throttle(upstream, client, bytesPerSecond);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no TCP port');
  return {
    port: address.port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
