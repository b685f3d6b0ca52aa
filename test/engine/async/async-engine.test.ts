// AsyncEngine over a real engine worker with the v2-lite-tiny golden checkpoint: greedy outputs match the
// golden tokens while the main thread stays responsive, refusals arrive as RequestRejectedError, aborts
// (explicit, by signal or by leaving the loop) free the request before the next stats reply, and a killed
// worker fails in-flight and later requests with EngineDeadError instead of hanging them.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { threadId } from 'node:worker_threads';
import {
  AsyncEngine,
  ENGINE_YOUNG_GENERATION_MB,
  EngineDeadError,
  EngineStartError,
} from '../../../src/engine/async/async-engine.js';
import type { EngineOutput } from '../../../src/engine/async/protocol.js';
import { engineConfigFromLLMOptions } from '../../../src/engine/llm.js';
import { RequestRejectedError } from '../../../src/engine/llm-engine.js';
import { resolveSamplingParams, type SamplingParams } from '../../../src/sampling/sampling-params.js';
import { fixtureDir, loadGolden } from '../../helpers/golden.js';

const golden = loadGolden('v2-lite-tiny');
const config = engineConfigFromLLMOptions({
  model: fixtureDir('v2-lite-tiny'),
  kvCacheMemory: 16 * 2 ** 20,
  blockSize: 16,
});

function params(maxTokens: number, extra: Parameters<typeof resolveSamplingParams>[0] = {}): SamplingParams {
  return resolveSamplingParams(
    { temperature: 0, ignoreEos: true, maxTokens, ...extra },
    {},
    { vocabSize: 512 },
  );
}

async function collect(stream: AsyncIterable<EngineOutput>): Promise<EngineOutput[]> {
  const out: EngineOutput[] = [];
  for await (const o of stream) out.push(o);
  return out;
}

describe('AsyncEngine', () => {
  let engine: AsyncEngine;
  before(async () => {
    engine = await AsyncEngine.start(config);
  });
  after(async () => {
    await engine.close();
  });

  test('reports the loaded model', () => {
    assert.equal(engine.info.maxModelLen, 256);
    assert.equal(engine.info.vocabSize, 512);
    assert.equal(engine.info.architecture, 'DeepseekV2ForCausalLM');
    assert.equal(engine.info.isDummy, false);
    assert.equal(engine.info.idleKvCacheUsage, 0);
    assert.notEqual(engine.info.engineThreadId, threadId, 'the engine runs off the calling thread');
  });

  test('concurrent greedy requests match the golden tokens; outputs are plain data, one token per step', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const results = await Promise.all(
      golden.prompts.map((p, i) => collect(engine.generate(p.ids, params(16, { logprobs: 1 }), `g${i}`))),
    );
    clearInterval(timer);
    results.forEach((outs, i) => {
      const p = golden.prompts[i]!;
      assert.deepEqual(
        outs.flatMap((o) => o.newTokenIds),
        p.greedy.ids,
        p.name,
      );
      assert.ok(outs.every((o) => o.newTokenIds.length <= 1));
      const last = outs.at(-1)!;
      assert.equal(last.finished, true);
      assert.equal(last.finishReason, 'length');
      assert.equal(last.numOutputTokens, 16);
      assert.equal(last.numPromptTokens, p.ids.length);
      assert.equal(last.final!.outputText, outs.map((o) => o.textDelta).join(''));
      assert.ok(last.final!.timings.queueTime >= 0 && last.final!.timings.decodeTime > 0);
      assert.equal(outs.flatMap((o) => o.newLogprobs ?? []).length, 16);
    });
    assert.ok(ticks > 0, 'the main thread ran timers while the engine computed');
  });

  test('prompt log-probs come once, with the first output', async () => {
    const p = golden.prompts[1]!;
    const outs = await collect(engine.generate(p.ids, params(2, { promptLogprobs: 5 }), 'pl'));
    assert.equal(outs[0]!.promptLogprobs!.length, p.ids.length);
    assert.equal(outs[0]!.promptLogprobs![0], null);
    assert.ok(outs.slice(1).every((o) => o.promptLogprobs === undefined));
    const top = outs[0]!.promptLogprobs![1]!.topTokenIds;
    assert.deepEqual(top, p.top5_ids[0], 'the top-5 after the first prompt token');
  });

  test('a refused request throws RequestRejectedError with the field', async () => {
    await assert.rejects(collect(engine.generate([], params(2), 'empty')), (e: unknown) => {
      assert.ok(e instanceof RequestRejectedError);
      assert.equal(e.param, 'prompt');
      return true;
    });
    await assert.rejects(collect(engine.generate([1, 9999], params(2), 'oov')), /out of vocabulary/);
  });

  test('abort by call, by signal and by leaving the loop; stats after them show nothing running', async () => {
    const long = params(200);
    const a = engine.generate([500, 1, 2], long, 'ab1');
    const controller = new AbortController();
    const b = engine.generate([500, 3, 4], long, 'ab2', { signal: controller.signal });
    const c = engine.generate([500, 5, 6], long, 'ab3');
    const firstOfA = a[Symbol.asyncIterator]();
    assert.equal((await firstOfA.next()).done, false);
    engine.abort('ab1');
    controller.abort();
    let n = 0;
    for await (const _ of c) if (++n === 2) break;
    const stats = await engine.stats();
    assert.equal(stats.numRunning, 0);
    assert.equal(stats.numWaiting, 0);
    assert.equal(stats.kvCacheUsage, 0);
    const restA: EngineOutput[] = [];
    for (;;) {
      const r = await firstOfA.next();
      if (r.done) break;
      restA.push(r.value);
    }
    assert.equal(restA.at(-1)!.finishReason, 'abort');
    const outsB = await collect(b);
    assert.equal(outsB.at(-1)!.finishReason, 'abort');
    assert.equal(engine.numInFlight, 0);
  });

  test('a bad model folder fails start-up with EngineStartError', async () => {
    const bad = engineConfigFromLLMOptions({ model: fixtureDir('no-such-model') });
    await assert.rejects(AsyncEngine.start(bad), (e: unknown) => {
      assert.ok(e instanceof EngineStartError);
      assert.match(e.message, /no-such-model/);
      return true;
    });
  });

  test("the engine thread writes the process's own environment, which native code reads", async () => {
    // libgomp reads OMP_WAIT_POLICY from the C environment; in a worker's default copy of process.env
    // the oneDNN platform's setting never reached it and its threads spun (the served engine ran 5x
    // slower than the offline one on 2 cores).
    delete process.env.DUET_ENGINE_ENV_PROBE;
    await assert.rejects(
      AsyncEngine.start(config, { workerUrl: new URL('./env-probe-engine-thread.js', import.meta.url) }),
      (e: unknown) => e instanceof EngineStartError && e.causeName === 'EnvProbe',
    );
    assert.equal(process.env.DUET_ENGINE_ENV_PROBE, 'set by the engine thread');
    delete process.env.DUET_ENGINE_ENV_PROBE;
  });

  test('the engine thread runs with a small young generation (its ArrayBuffers die in young collections)', async () => {
    // Without the limit V8's default young generation (16 MiB semi-spaces) let each step's activation
    // buffers pile up until they started a full mark-compact every ~10 steps (bench:serve-overhead).
    let limits: { maxYoungGenerationSizeMb?: number } = {};
    await assert.rejects(
      AsyncEngine.start(config, { workerUrl: new URL('./limits-probe-engine-thread.js', import.meta.url) }),
      (e: unknown) => {
        if (!(e instanceof EngineStartError) || e.causeName !== 'LimitsProbe') return false;
        limits = JSON.parse(e.message) as typeof limits;
        return true;
      },
    );
    assert.equal(limits.maxYoungGenerationSizeMb, ENGINE_YOUNG_GENERATION_MB);
  });

  test('a killed worker fails in-flight and later requests, and stats, with EngineDeadError', async () => {
    const doomed = await AsyncEngine.start(config);
    const stream = doomed.generate([500, 1, 2], params(200), 'x');
    const it = stream[Symbol.asyncIterator]();
    assert.equal((await it.next()).done, false);
    await doomed.crash();
    await assert.rejects(
      (async () => {
        for (;;) if ((await it.next()).done) return;
      })(),
      EngineDeadError,
    );
    assert.equal(doomed.health().alive, false);
    assert.match(doomed.health().reason!, /exited/);
    await assert.rejects(collect(doomed.generate([1], params(1), 'y')), EngineDeadError);
    await assert.rejects(doomed.stats(), EngineDeadError);
    await doomed.close();
  });
});
