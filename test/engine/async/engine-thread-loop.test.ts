// The engine worker's loop over a scripted fake engine (no model, no thread): messages are applied
// between steps in order, a stats reply follows the outputs of earlier aborts, the prompt log-probs ride
// on the first output only, a shutdown aborts live requests, and a failing step is fatal without
// pretending that the live requests were aborted.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EngineWorkerLoop } from '../../../src/engine/async/engine-thread-loop.js';
import type { FromWorkerMessage } from '../../../src/engine/async/protocol.js';
import type { LLMEngine } from '../../../src/engine/llm-engine.js';
import { RequestRejectedError } from '../../../src/engine/llm-engine.js';
import type { RequestUpdate } from '../../../src/engine/request-state.js';
import { resolveSamplingParams } from '../../../src/sampling/sampling-params.js';

const PARAMS = resolveSamplingParams({ maxTokens: 2 }, {}, { vocabSize: 10 });

interface FakeRequest {
  readonly id: string;
  readonly prompt: number[];
  readonly out: number[];
}

/** Generates token 7 per step for each live request, finishing at 2 tokens; `failStep` makes step() throw. */
class FakeEngine {
  readonly live = new Map<string, FakeRequest>();
  counters = { promptTokens: 0, generationTokens: 0, numFinished: 0, numSteps: 0 };
  /** No dual-batch overlap in the fake: no step splits. */
  readonly dboStats = { steps: 0, splitSteps: 0, overlapMs: 0 };
  failStep = false;
  closed = false;
  /** Every live request runs each step: those without output were scheduled for the first time. */
  firstScheduledInLastStep: string[] = [];
  private deathListeners: ((reason: string) => void)[] = [];

  onDead(listener: (reason: string) => void): void {
    this.deathListeners.push(listener);
  }
  /** Simulates a rank dying. */
  die(reason: string): void {
    for (const l of this.deathListeners) l(reason);
  }

  addRequest(prompt: readonly number[], _params: unknown, id: string): string {
    if (prompt.length === 0) throw new RequestRejectedError('the prompt is empty', 'prompt');
    this.live.set(id, { id, prompt: [...prompt], out: [] });
    return id;
  }
  hasUnfinishedRequests(): boolean {
    return this.live.size > 0;
  }
  abort(id: string): RequestUpdate | null {
    const r = this.live.get(id);
    if (!r) return null;
    this.live.delete(id);
    return this.update(r, [], true, 'abort');
  }
  async step(): Promise<RequestUpdate[]> {
    await new Promise((resolve) => setImmediate(resolve));
    if (this.failStep) throw new Error('kernel exploded');
    this.counters.numSteps++;
    this.firstScheduledInLastStep = [...this.live.values()]
      .filter((r) => r.out.length === 0)
      .map((r) => r.id);
    return [...this.live.values()].map((r) => {
      r.out.push(7);
      const done = r.out.length === 2;
      if (done) this.live.delete(r.id);
      return this.update(r, [7], done, done ? 'length' : null);
    });
  }
  stats() {
    return {
      numRunning: this.live.size,
      numWaiting: 0,
      numPreemptedWaiting: 0,
      kvCacheUsage: this.live.size / 10,
      prefixCacheQueries: 0,
      prefixCacheHits: 0,
      numPreemptions: 0,
      numPrefixCacheEvictions: 0,
    };
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  private update(
    r: FakeRequest,
    ids: number[],
    finished: boolean,
    reason: 'abort' | 'length' | null,
  ): RequestUpdate {
    const state = {
      outputTokenIds: r.out,
      promptTokenIds: r.prompt,
      promptLogprobs: [null],
      logprobs: null,
      cumulativeLogprob: 0,
      stopChecker: { outputText: 'x'.repeat(r.out.length) },
    };
    return {
      requestId: r.id,
      newTokenIds: ids,
      textDelta: 'x'.repeat(ids.length),
      newLogprobs: null,
      finished,
      finishReason: reason,
      stopReason: null,
      error: null,
      state: state as unknown as RequestUpdate['state'],
    };
  }
}

function harness() {
  const engine = new FakeEngine();
  const posted: FromWorkerMessage[] = [];
  let exitCode: number | null = null;
  let t = 0;
  let onExit: () => void = () => {};
  const exited = new Promise<void>((resolve) => {
    onExit = resolve;
  });
  const loop = new EngineWorkerLoop(engine as unknown as LLMEngine, {
    post: (m) => posted.push(m),
    now: () => t++,
    exit: (code) => {
      exitCode = code;
      onExit();
    },
  });
  return { engine, posted, loop, exited, exitCode: () => exitCode };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

/**
 * Waits (up to 5 s) until `done()`: on a busy machine a fixed pause's timer can fire before the loop's
 * first turn has even run.
 */
async function until(done: () => boolean): Promise<void> {
  for (let waited = 0; waited < 5000 && !done(); waited += 5) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe('EngineWorkerLoop', () => {
  test('runs requests to the end; rejects bad ones; prompt log-probs only on the first output', async () => {
    const h = harness();
    h.loop.receive({ type: 'add', requestId: 'a', promptTokenIds: [1, 2], params: PARAMS });
    h.loop.receive({ type: 'add', requestId: 'bad', promptTokenIds: [], params: PARAMS });
    await until(() => h.posted.some((m) => m.type === 'outputs' && m.outputs.some((o) => o.finished)));
    const rejected = h.posted.find((m) => m.type === 'rejected');
    assert.deepEqual(rejected, {
      type: 'rejected',
      requestId: 'bad',
      message: 'the prompt is empty',
      param: 'prompt',
      isInvalidInput: true,
    });
    const outputs = h.posted.flatMap((m) => (m.type === 'outputs' ? m.outputs : []));
    assert.deepEqual(
      outputs.map((o) => [o.requestId, o.newTokenIds, o.finished]),
      [
        ['a', [7], false],
        ['a', [7], true],
      ],
    );
    assert.deepEqual(outputs[0]!.promptLogprobs, [null]);
    assert.equal(outputs[1]!.promptLogprobs, undefined);
    assert.equal(outputs[1]!.final!.outputText, 'xx');
    assert.equal(outputs[1]!.numPromptTokens, 2);
  });

  test('a stats reply comes after the outputs of earlier aborts and reflects them', async () => {
    const h = harness();
    h.loop.receive({ type: 'add', requestId: 'a', promptTokenIds: [1], params: PARAMS });
    h.loop.receive({ type: 'abort', requestIds: ['a', 'unknown'] });
    h.loop.receive({ type: 'stats', queryId: 4 });
    await settle();
    const kinds = h.posted.map((m) => m.type);
    assert.deepEqual(kinds, ['outputs', 'stats']);
    const out = h.posted[0]!.type === 'outputs' ? h.posted[0]!.outputs : [];
    assert.equal(out[0]!.finishReason, 'abort');
    const stats = h.posted[1]!;
    assert.ok(stats.type === 'stats' && stats.queryId === 4 && stats.stats.numRunning === 0);
  });

  test('shutdown aborts live requests, closes the engine and exits 0', async () => {
    const h = harness();
    h.loop.receive({ type: 'add', requestId: 'a', promptTokenIds: [1], params: PARAMS });
    h.loop.receive({ type: 'shutdown' });
    await h.exited;
    assert.equal(h.exitCode(), 0);
    assert.ok(h.engine.closed);
    const outputs = h.posted.flatMap((m) => (m.type === 'outputs' ? m.outputs : []));
    assert.deepEqual(
      outputs.map((o) => o.finishReason),
      ['abort'],
    );
  });

  test('a failing step is fatal: reported, engine closed, exit 1, no fake aborts', async () => {
    const h = harness();
    h.engine.failStep = true;
    h.loop.receive({ type: 'add', requestId: 'a', promptTokenIds: [1], params: PARAMS });
    await h.exited;
    assert.equal(h.exitCode(), 1);
    assert.ok(h.engine.closed);
    assert.deepEqual(h.posted, [{ type: 'fatal', message: 'engine loop failed: kernel exploded' }]);
    h.loop.receive({ type: 'stats', queryId: 1 });
    await settle();
    assert.equal(h.posted.length, 1, 'a stopped loop ignores messages');
  });

  test('an engine that dies while idle (a rank died) is reported at once: fatal, exit 1', async () => {
    const h = harness();
    h.engine.die('rank 1: exited with code 1');
    await h.exited;
    assert.equal(h.exitCode(), 1);
    assert.ok(h.engine.closed);
    assert.deepEqual(h.posted, [{ type: 'fatal', message: 'rank 1: exited with code 1' }]);
  });
});
