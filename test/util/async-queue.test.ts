// AsyncQueue: the merged queue of a request's choice outputs. Items come out in push order; `onStop`
// (the server aborts the choices still running) fires once when the consumer leaves early or is thrown
// the failure, and never when the queue simply ends.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { AsyncQueue } from '../../src/util/async-queue.js';

describe('AsyncQueue', () => {
  test('items in push order, pushed before and while the consumer waits; an end stops nothing', async () => {
    let stops = 0;
    const q = new AsyncQueue<number>(() => stops++);
    q.push(1);
    setTimeout(() => {
      q.push(2);
      q.push(3);
      q.end();
    }, 5);
    const got: number[] = [];
    for await (const v of q) got.push(v);
    assert.deepEqual(got, [1, 2, 3]);
    assert.equal(stops, 0);
  });

  test('leaving the loop early stops the producers once', async () => {
    let stops = 0;
    const q = new AsyncQueue<number>(() => stops++);
    q.push(1);
    q.push(2);
    for await (const v of q) if (v === 1) break;
    assert.equal(stops, 1);
    q.push(3);
    q.end();
    assert.equal(stops, 1);
  });

  test('a failure comes after the items pushed before it and stops the producers once', async () => {
    let stops = 0;
    const q = new AsyncQueue<number>(() => stops++);
    q.push(1);
    q.fail(new Error('engine died'));
    q.push(2);
    const got: number[] = [];
    await assert.rejects(async () => {
      for await (const v of q) got.push(v);
    }, /engine died/);
    assert.deepEqual(got, [1]);
    assert.equal(stops, 1);
  });

  test('it can be iterated only once', () => {
    const q = new AsyncQueue<number>();
    q[Symbol.asyncIterator]();
    assert.throws(() => q[Symbol.asyncIterator](), /only once/);
  });
});
