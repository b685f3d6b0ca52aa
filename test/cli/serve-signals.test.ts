// The stop rules of `duet serve` on signals, with a fake signal source: SIGTERM drains for the shutdown
// timeout and SIGINT does not wait, a second signal cuts the drain short; a headless node outlives a
// signal until its head stops the group, and leaves with status 1 when that does not come in time or on a
// second signal.

import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { type Closable, runHeadlessUntilStopped, serveUntilSignalled } from '../../src/cli/serve-signals.js';
import { createLogger } from '../../src/util/logger.js';

class FakeServer implements Closable {
  readonly graces: number[] = [];
  endGraceCalls = 0;
  private finish!: (drained: boolean) => void;
  readonly closed = new Promise<boolean>((resolve) => {
    this.finish = resolve;
  });
  close(graceMs: number): Promise<boolean> {
    this.graces.push(graceMs);
    return this.closed;
  }
  endGrace(): void {
    this.endGraceCalls++;
    this.finish(false);
  }
  drained(): void {
    this.finish(true);
  }
}

const quiet = () => createLogger('error', () => {});

test('SIGTERM closes with the shutdown timeout; a second signal ends the grace; listeners are removed', async () => {
  const signals = new EventEmitter();
  const server = new FakeServer();
  const done = serveUntilSignalled(server, 20_000, quiet(), signals);
  assert.equal(signals.listenerCount('SIGTERM'), 1);
  signals.emit('SIGTERM');
  assert.deepEqual(server.graces, [20_000]);
  signals.emit('SIGINT');
  assert.equal(server.endGraceCalls, 1);
  assert.deepEqual(server.graces, [20_000], 'closed once');
  await done;
  assert.equal(signals.listenerCount('SIGTERM') + signals.listenerCount('SIGINT'), 0);
});

test('SIGINT closes without a grace', async () => {
  const signals = new EventEmitter();
  const server = new FakeServer();
  const done = serveUntilSignalled(server, 20_000, quiet(), signals);
  signals.emit('SIGINT');
  assert.deepEqual(server.graces, [0]);
  server.drained();
  await done;
});

test('a headless node outlives a signal until its head stops the group', async () => {
  const signals = new EventEmitter();
  const left: number[] = [];
  let stopGroup!: () => void;
  const running = new Promise<void>((resolve) => {
    stopGroup = resolve;
  });
  const done = runHeadlessUntilStopped(running, 50, quiet(), signals, (c) => left.push(c), 50);
  signals.emit('SIGTERM');
  await new Promise((r) => setTimeout(r, 30));
  stopGroup();
  await done;
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(left, [], 'the timer was cleared when the head stopped the group');
  assert.equal(signals.listenerCount('SIGTERM'), 0);
});

test('a headless node leaves with status 1 when its head does not stop the group in time, or on a second signal', async () => {
  const signals = new EventEmitter();
  const left: number[] = [];
  const never = new Promise<void>(() => {});
  void runHeadlessUntilStopped(never, 20, quiet(), signals, (c) => left.push(c), 20);
  signals.emit('SIGTERM');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(left, [1], 'left after the drain time plus the margin');

  const signals2 = new EventEmitter();
  const left2: number[] = [];
  void runHeadlessUntilStopped(never, 60_000, quiet(), signals2, (c) => left2.push(c), 60_000);
  signals2.emit('SIGTERM');
  assert.deepEqual(left2, []);
  signals2.emit('SIGTERM');
  assert.deepEqual(left2, [1], 'a second signal leaves at once');
});

test('a headless node that loses its head rejects (its process exits non-zero)', async () => {
  const lost = Promise.reject(new Error('rank 1: connection to peer rank 0 lost'));
  await assert.rejects(
    runHeadlessUntilStopped(lost, 0, quiet(), new EventEmitter(), () => {}),
    /peer rank 0 lost/,
  );
});
