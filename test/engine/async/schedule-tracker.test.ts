// The phase timings: requests a step scheduled for the first time (as the engine reports them) get its
// start time as their first-scheduled time; queue, prefill, decode and inference times follow from it.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ScheduleTracker } from '../../../src/engine/async/schedule-tracker.js';

describe('ScheduleTracker', () => {
  test('the requests a step first scheduled get its start time, whatever their arrival order', () => {
    const t = new ScheduleTracker();
    t.onAdded('a', 0);
    t.onAdded('b', 1);
    t.onAdded('c', 2);
    t.onStep(3, ['a', 'b']); // a and b admitted, c still waits
    t.onTokens('a', 4);
    t.onTokens('b', 4);
    t.onStep(5, ['c']); // c admitted
    t.onTokens('c', 6);
    t.onTokens('a', 7); // later tokens do not move the first-token time
    assert.deepEqual(t.onFinished('a', 8), { queueTime: 3, prefillTime: 1, decodeTime: 4, inferenceTime: 5 });
    assert.deepEqual(t.onFinished('c', 9), { queueTime: 3, prefillTime: 1, decodeTime: 3, inferenceTime: 4 });
    assert.deepEqual(t.liveRequestIds(), ['b']);
  });

  test('a request aborted while waiting spent its whole life queued', () => {
    const t = new ScheduleTracker();
    t.onAdded('a', 1);
    t.onStep(2, []);
    assert.deepEqual(t.onFinished('a', 5), { queueTime: 4, prefillTime: 0, decodeTime: 0, inferenceTime: 0 });
    t.onAdded('b', 6);
    t.onStep(7, ['b']);
    assert.equal(t.onFinished('b', 8).queueTime, 1);
  });

  test('a newer request scheduled before an older one (another replica) keeps its own times', () => {
    const t = new ScheduleTracker();
    t.onAdded('old', 0);
    t.onAdded('new', 1);
    t.onStep(2, ['new']);
    t.onStep(4, ['old']);
    t.onStep(6, ['new']); // reported again (it cannot be): the first time stands
    assert.equal(t.onFinished('new', 7).queueTime, 1);
    assert.equal(t.onFinished('old', 7).queueTime, 4);
  });

  test('a request aborted during prefill has prefill time and no decode time', () => {
    const t = new ScheduleTracker();
    t.onAdded('a', 0);
    t.onStep(1, ['a']);
    assert.deepEqual(t.onFinished('a', 3), { queueTime: 1, prefillTime: 2, decodeTime: 0, inferenceTime: 2 });
    assert.deepEqual(t.onFinished('unknown', 3), {
      queueTime: 0,
      prefillTime: 0,
      decodeTime: 0,
      inferenceTime: 0,
    });
  });
});
