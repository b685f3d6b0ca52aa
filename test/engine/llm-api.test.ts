// The offline LLM API beyond greedy generation: chat through a chat template, n > 1 with seeds
// (reproducible, per-completion streams), stop strings, abort returning every KV block, and clear errors
// for bad input (out-of-vocabulary ids, too-long prompts, bad sampling parameters).

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { LLM } from '../../src/engine/llm.js';
import { fixtureDir } from '../helpers/golden.js';

const TEMPLATE =
  "{% for m in messages %}{{ '<' + m.role + '>' + m.content }}{% endfor %}{% if add_generation_prompt %}{{ '<assistant>' }}{% endif %}";

describe('offline LLM API', () => {
  const llm = new LLM({
    model: fixtureDir('v2-lite-tiny'),
    blockSize: 16,
    kvCacheMemory: 8 * 2 ** 20,
    chatTemplate: TEMPLATE,
    numThreads: 2,
  });
  after(() => llm.close());

  test('chat renders the template and generates like the rendered prompt', async () => {
    const [chat] = await llm.chat([{ role: 'user', content: 'Hello there' }], {
      temperature: 0,
      maxTokens: 6,
    });
    assert.equal(chat!.prompt, '<user>Hello there<assistant>');
    const engine = await llm.engine();
    const ids = engine.tokenizer.encode('<user>Hello there<assistant>', { addSpecialTokens: false });
    assert.deepEqual(chat!.prompt_token_ids, ids);
    const [plain] = await llm.generate([{ prompt_token_ids: ids }], { temperature: 0, maxTokens: 6 });
    assert.deepEqual(chat!.outputs[0]!.token_ids, plain!.outputs[0]!.token_ids);
  });

  test('n = 3 with a seed: reproducible, and the completions differ', async () => {
    const params = { n: 3, temperature: 1, seed: 1234, maxTokens: 12, ignoreEos: true };
    const [a] = await llm.generate(['Once upon a time'], params);
    const [b] = await llm.generate(['Once upon a time'], params);
    assert.equal(a!.outputs.length, 3);
    assert.deepEqual(
      a!.outputs.map((o) => o.token_ids),
      b!.outputs.map((o) => o.token_ids),
    );
    const distinct = new Set(a!.outputs.map((o) => o.token_ids.join(',')));
    assert.ok(distinct.size > 1, 'per-completion seeds give different samples');
  });

  test('a seeded request samples the same alone and in a batch', async () => {
    const p = { temperature: 0.9, seed: 7, maxTokens: 10, ignoreEos: true };
    const [alone] = await llm.generate(['The sky is'], p);
    const batch = await llm.generate(
      ['The sky is', 'Another prompt entirely', 'x'],
      [p, { ...p, seed: 8 }, { ...p, seed: 9 }],
    );
    assert.deepEqual(batch[0]!.outputs[0]!.token_ids, alone!.outputs[0]!.token_ids);
  });

  test('stop strings end the text before them', async () => {
    const [free] = await llm.generate(['Hello'], { temperature: 0, maxTokens: 16, ignoreEos: true });
    const text = free!.outputs[0]!.text;
    const stop = text.slice(3, 5);
    assert.ok(stop.length === 2, `need generated text to cut, got ${JSON.stringify(text)}`);
    const [cut] = await llm.generate(['Hello'], {
      temperature: 0,
      maxTokens: 16,
      ignoreEos: true,
      stop: [stop],
    });
    assert.equal(cut!.outputs[0]!.finish_reason, 'stop');
    assert.equal(cut!.outputs[0]!.stop_reason, stop);
    assert.equal(cut!.outputs[0]!.text, text.slice(0, text.indexOf(stop)));
  });

  test('abort returns every KV block', async () => {
    const engine = await llm.engine();
    const idle = engine.stats().kvCacheUsage;
    const params = (await import('../../src/sampling/sampling-params.js')).resolveSamplingParams(
      { maxTokens: 50, ignoreEos: true },
      undefined,
      { vocabSize: 512 },
    );
    const ids = [engine.addRequest([1, 2, 3, 4, 5], params), engine.addRequest(Array(40).fill(7), params)];
    await engine.step();
    assert.ok(engine.stats().kvCacheUsage > idle);
    for (const id of ids) assert.equal(engine.abort(id)?.finishReason, 'abort');
    assert.equal(engine.stats().kvCacheUsage, idle);
    assert.equal(engine.hasUnfinishedRequests(), false);
  });

  test('bad input is refused with a clear message', async () => {
    await assert.rejects(llm.generate([{ prompt_token_ids: [1, 999] }]), /token id 999 is out of vocabulary/);
    await assert.rejects(
      llm.generate([{ prompt_token_ids: Array(300).fill(1) }]),
      /maximum context length is 256/,
    );
    await assert.rejects(llm.generate(['x'], { temperature: -1 }), /temperature/);
    await assert.rejects(llm.generate(['x'], { topP: 0 }), /top_p/);
  });
});
