// The phase timings inferred from the FCFS waiting queue: requests admitted by a step get its start time
// as their first-scheduled time; queue, prefill, decode and inference times follow from it.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ScheduleTracker } from '../../../src/engine/async/schedule-tracker.js';

describe('ScheduleTracker', () => {
  test('the oldest never-scheduled requests are the ones a step admitted', () => {
    const t = new ScheduleTracker();
    t.onAdded('a', 0);
    t.onAdded('b', 1);
    t.onAdded('c', 2);
    t.onStep(3, 1); // a and b admitted, c still waits
    t.onTokens('a', 4);
    t.onTokens('b', 4);
    t.onStep(5, 0); // c admitted
    t.onTokens('c', 6);
    t.onTokens('a', 7); // later tokens do not move the first-token time
    assert.deepEqual(t.onFinished('a', 8), { queueTime: 3, prefillTime: 1, decodeTime: 4, inferenceTime: 5 });
    assert.deepEqual(t.onFinished('c', 9), { queueTime: 3, prefillTime: 1, decodeTime: 3, inferenceTime: 4 });
    assert.deepEqual(t.liveRequestIds(), ['b']);
  });

  test('a request aborted while waiting spent its whole life queued', () => {
    const t = new ScheduleTracker();
    t.onAdded('a', 1);
    t.onStep(2, 1);
    assert.deepEqual(t.onFinished('a', 5), { queueTime: 4, prefillTime: 0, decodeTime: 0, inferenceTime: 0 });
    t.onAdded('b', 6);
    t.onStep(7, 0);
    assert.equal(t.onFinished('b', 8).queueTime, 1, 'the aborted request no longer counts as waiting');
  });

  test('a request aborted during prefill has prefill time and no decode time', () => {
    const t = new ScheduleTracker();
    t.onAdded('a', 0);
    t.onStep(1, 0);
    assert.deepEqual(t.onFinished('a', 3), { queueTime: 1, prefillTime: 2, decodeTime: 0, inferenceTime: 2 });
    assert.deepEqual(t.onFinished('unknown', 3), {
      queueTime: 0,
      prefillTime: 0,
      decodeTime: 0,
      inferenceTime: 0,
    });
  });
});
