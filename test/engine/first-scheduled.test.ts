// The engine reports which requests each step scheduled for the first time (from the scheduler's 'new'
// scheduled requests), so queue times come from the scheduler, not from guessing the queue order.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { LLM } from '../../src/engine/llm.js';
import { resolveSamplingParams } from '../../src/sampling/sampling-params.js';
import { fixtureDir } from '../helpers/golden.js';

const llm = new LLM({
  model: fixtureDir('v2-lite-tiny'),
  blockSize: 16,
  kvCacheMemory: 8 * 2 ** 20,
  maxNumSeqs: 1,
});
after(() => llm.close());

test('each request is reported once, in the step that first scheduled it', async () => {
  const engine = await llm.engine();
  const params = resolveSamplingParams({ temperature: 0, maxTokens: 2, ignoreEos: true }, undefined, {
    vocabSize: engine.loaded.config.vocabSize,
  });
  const a = engine.addRequest([1, 2, 3], params);
  const b = engine.addRequest([4, 5, 6], params);
  const reported: string[][] = [];
  while (engine.hasUnfinishedRequests()) {
    await engine.step();
    reported.push([...engine.firstScheduledInLastStep]);
  }
  // One running sequence at a time: a first; b only once a has finished (after its 2 tokens).
  assert.deepEqual(reported[0], [a]);
  assert.deepEqual(reported.flat(), [a, b], `per step: ${JSON.stringify(reported)}`);
  const bStep = reported.findIndex((ids) => ids.includes(b));
  assert.ok(bStep >= 2, `b waited for a's two decode steps (scheduled at step ${bStep})`);
});
