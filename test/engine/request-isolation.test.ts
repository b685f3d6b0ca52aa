// Issue 10, finding 2: one request must never kill the engine. Adding a request is all or nothing (a
// request whose state cannot be built is refused alone and the scheduler never hears of it); a failure
// that concerns one request during a step fails that request alone; the engine goes on serving the
// golden greedy tokens. Also through the engine worker: 1.5 M stop strings (over the default limits,
// which refuse them with a 400; raised here as an operator may) are served (the automaton takes them)
// without hurting anyone else, and /health stays alive.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { AsyncEngine } from '../../src/engine/async/async-engine.js';
import type { EngineOutput } from '../../src/engine/async/protocol.js';
import { engineConfigFromLLMOptions, LLM } from '../../src/engine/llm.js';
import { type LLMEngine, RequestRejectedError } from '../../src/engine/llm-engine.js';
import type { RequestUpdate } from '../../src/engine/request-state.js';
import {
  DEFAULT_SAMPLING_LIMITS,
  resolveSamplingParams,
  type SamplingLimits,
  type SamplingParams,
} from '../../src/sampling/sampling-params.js';
import { fixtureDir, loadGolden } from '../helpers/golden.js';

const golden = loadGolden('v2-lite-tiny');
const prompt = golden.prompts[0]!;

function greedy(
  extra: Parameters<typeof resolveSamplingParams>[0] = {},
  limits: SamplingLimits = DEFAULT_SAMPLING_LIMITS,
): SamplingParams {
  return resolveSamplingParams(
    { temperature: 0, ignoreEos: true, maxTokens: prompt.greedy.ids.length, ...extra },
    {},
    { vocabSize: 512, limits },
  );
}

/** Steps the engine until `ids` have all finished; returns each one's last update. */
async function runToEnd(engine: LLMEngine, ids: readonly string[]): Promise<Map<string, RequestUpdate>> {
  const done = new Map<string, RequestUpdate>();
  for (let steps = 0; done.size < ids.length; steps++) {
    assert.ok(steps < 500, 'the requests finish');
    for (const u of await engine.step()) if (u.finished) done.set(u.requestId, u);
  }
  return done;
}

describe('finding 2: one request cannot kill the engine (LLMEngine)', () => {
  const llm = new LLM({ model: fixtureDir('v2-lite-tiny'), blockSize: 16, kvCacheMemory: 8 * 2 ** 20 });
  let engine: LLMEngine;
  before(async () => {
    engine = await llm.engine();
  });
  after(() => llm.close());

  test('finding 2: a request whose state cannot be built is refused alone; the scheduler never sees it', async () => {
    // A stop list the automaton cannot take (null is no string): before the fix the stop checker threw
    // after the scheduler had the request, and the next step died with "no token was sampled".
    const bad = { ...greedy(), stop: [null as unknown as string] };
    assert.throws(
      () => engine.addRequest(prompt.ids, bad, 'bad'),
      (e: Error) => e instanceof RequestRejectedError && e.param === 'stop' && /stop\[0\]/.test(e.message),
    );
    assert.equal(engine.hasUnfinishedRequests(), false);
    const stats = engine.stats();
    assert.equal(stats.numWaiting + stats.numRunning, 0, 'the scheduler holds nothing of it');
    assert.equal(stats.kvCacheUsage, 0);

    const ok = engine.addRequest(prompt.ids, greedy(), 'ok');
    const done = await runToEnd(engine, [ok]);
    assert.deepEqual(done.get(ok)!.state.outputTokenIds, prompt.greedy.ids, 'the golden greedy tokens');
    assert.ok(engine.isHealthy);
    // The same id can be used again: nothing of the refused request lingers.
    const again = engine.addRequest(prompt.ids, greedy(), 'bad');
    await runToEnd(engine, [again]);
  });

  test('finding 2: a request that fails in its step is failed alone; its batch-mates go on', async () => {
    // Fault injection: decoding token POISON throws (as a detokenizer bug would) and logit_bias makes
    // one request sample it; another request in the same batch must not notice.
    const POISON = 400;
    const tokenizer = engine.tokenizer;
    const decode = tokenizer.decode.bind(tokenizer);
    tokenizer.decode = ((ids: readonly number[], options?: object) => {
      if (ids.includes(POISON)) throw new Error(`cannot decode token ${POISON}`);
      return decode(ids, options as never);
    }) as typeof tokenizer.decode;
    try {
      const victim = engine.addRequest(prompt.ids, greedy({ logitBias: { [POISON]: 100 } }), 'victim');
      const mate = engine.addRequest(prompt.ids, greedy(), 'mate');
      const done = await runToEnd(engine, [victim, mate]);
      const v = done.get(victim)!;
      assert.equal(v.finishReason, 'error');
      assert.match(v.error ?? '', /the request failed: cannot decode token 400/);
      const m = done.get(mate)!;
      assert.equal(m.finishReason, 'length');
      assert.deepEqual(
        m.state.outputTokenIds,
        prompt.greedy.ids,
        'the batch-mate still gets the golden tokens',
      );
      assert.ok(engine.isHealthy, 'the engine is alive');
      assert.equal(engine.stats().kvCacheUsage, 0, 'the failed request gave back its blocks');
    } finally {
      tokenizer.decode = decode;
    }
  });
});

describe('finding 2: one request cannot kill the engine (engine worker)', () => {
  let engine: AsyncEngine;
  before(async () => {
    engine = await AsyncEngine.start(
      engineConfigFromLLMOptions({
        model: fixtureDir('v2-lite-tiny'),
        kvCacheMemory: 16 * 2 ** 20,
        blockSize: 16,
      }),
    );
  });
  after(() => engine.close());

  async function outputs(stream: AsyncIterable<EngineOutput>): Promise<EngineOutput[]> {
    const out: EngineOutput[] = [];
    for await (const o of stream) out.push(o);
    return out;
  }

  test('finding 2: 1.5 M stop strings are served without harm; the engine stays healthy', async () => {
    // The default limits refuse this many (a 400 at the server); an operator may raise them
    // (--max-stop-strings), and the engine must then still take such a request without harm.
    const stop = Array.from({ length: 1_500_000 }, (_, i) => `never-said-${i}`);
    assert.throws(() => greedy({ stop }), /stop holds 1500000 strings; at most 128/);
    const raised = { ...DEFAULT_SAMPLING_LIMITS, maxStopStrings: 2_000_000 };
    const [many, other] = await Promise.all([
      outputs(engine.generate(prompt.ids, greedy({ stop }, raised), 'many-stops')),
      outputs(engine.generate(prompt.ids, greedy(), 'other')),
    ]);
    for (const out of [many, other]) {
      const last = out.at(-1)!;
      assert.equal(last.finishReason, 'length', last.error ?? '');
      assert.deepEqual(
        out.flatMap((o) => o.newTokenIds),
        prompt.greedy.ids,
      );
    }
    assert.deepEqual(engine.health(), { alive: true, reason: null });
    const later = await outputs(engine.generate(prompt.ids, greedy(), 'later'));
    assert.deepEqual(
      later.flatMap((o) => o.newTokenIds),
      prompt.greedy.ids,
    );
    assert.equal((await engine.stats()).kvCacheUsage, 0);
  });
});
