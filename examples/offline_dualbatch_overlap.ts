// Dual-batch overlap (DBO) with the offline API: a DeepSeek model on two tensor-parallel ranks (worker
// threads of this process), generating with DBO on; then the same prompts with DBO off and on, timing the
// steps. With DBO on, a step whose batch is large enough is split into two micro-batches, and while one
// micro-batch's collective (all-reduce, all-gather, all-to-all) runs on the communication thread, the
// other computes. The outputs are the same either way; only the timing differs.
//
//   npm run build
//   node dist/examples/offline_dualbatch_overlap.js [--model DIR] [--num-prompts 4] [--input-len 256]
//       [--max-tokens 8] [--tp 2] [--moe-comm allgather|alltoall] [--num-threads N]
//       [--dbo-prefill-token-threshold 256] [--dbo-decode-token-threshold 32] [--dbo-auto-off false]
//
// Without --model it runs Duet's embedded default (a toy-size DeepSeek-V3 architecture with random
// weights: the text is meaningless, the timing is real). Over shared memory in one process the
// communication is cheap, so expect a small difference; DBO pays off where the ranks talk over a network
// (see docs/dbo.md and `npm run bench:dbo`).

import { parseArgs } from 'node:util';
import { LLM, type LLMOptions } from '../src/engine/llm.js';
import { enableWasmFeatures } from '../src/platforms/cpu/wasm-features.js';

enableWasmFeatures();

const { values } = parseArgs({
  options: {
    model: { type: 'string' },
    'num-prompts': { type: 'string', default: '4' },
    'input-len': { type: 'string', default: '256' },
    'max-tokens': { type: 'string', default: '8' },
    tp: { type: 'string', default: '2' },
    'moe-comm': { type: 'string', default: 'allgather' },
    'num-threads': { type: 'string' },
    'dbo-prefill-token-threshold': { type: 'string' },
    'dbo-decode-token-threshold': { type: 'string' },
    // The example times split steps against one batch, so DBO's automatic off-switch (which would stop
    // splitting where it does not pay, as over shared memory it often does not) is off unless asked for.
    'dbo-auto-off': { type: 'string', default: 'false' },
  },
});
const numPrompts = Number(values['num-prompts']);
const inputLen = Number(values['input-len']);
const maxTokens = Number(values['max-tokens']);

/** Engine settings shared by every LLM below; only `enableDbo` differs between them. */
const common: LLMOptions = {
  ...(values.model ? { model: values.model } : {}),
  tensorParallelSize: Number(values.tp),
  ...(values['moe-comm'] === 'alltoall' ? { enableExpertParallel: true, moeComm: 'alltoall' as const } : {}),
  ...(values['num-threads'] ? { numThreads: Number(values['num-threads']) } : {}),
  ...(values['dbo-prefill-token-threshold']
    ? { dboPrefillTokenThreshold: Number(values['dbo-prefill-token-threshold']) }
    : {}),
  ...(values['dbo-decode-token-threshold']
    ? { dboDecodeTokenThreshold: Number(values['dbo-decode-token-threshold']) }
    : {}),
  dboAutoOff: values['dbo-auto-off'] === 'true',
  kvCacheMemory: 256 * 2 ** 20,
  // The timing runs repeat their prompts: recompute them instead of reusing cached blocks.
  enablePrefixCaching: false,
};

// 1. Generate with DBO on, as vLLM's offline examples do.
const prompts = [
  'Hello, my name is',
  'The president of the United States is',
  'The capital of France is',
  'The future of AI is',
];
const sampling = { temperature: 0, maxTokens: 16 };
const llmOn = new LLM({ ...common, enableDbo: true });
const outputs = await llmOn.generate(prompts, sampling, { useTqdm: false });
console.log('Outputs (DBO on):');
for (const o of outputs) {
  console.log(`Prompt: ${JSON.stringify(o.prompt)}, Generated text: ${JSON.stringify(o.outputs[0]!.text)}`);
}

// 2. Time the steps with DBO off and on: the same long prompts (token ids), first prefill only
//    (max_tokens 1: every step is a prefill step), then with decoding. The two settings take turns,
//    three rounds, and the median is shown: other work on the machine disturbs single timings.
const llmOff = new LLM({ ...common, enableDbo: false });
const engineOn = await llmOn.engine();
const vocab = engineOn.loaded.config.vocabSize;
const longPrompts = Array.from({ length: numPrompts }, (_, i) => ({
  prompt_token_ids: Array.from({ length: inputLen }, (_, t) => 10 + ((t * 7919 + i * 104729) % (vocab - 20))),
}));

/** One round's timing of one setting. */
interface Round {
  readonly prefillMsPerStep: number;
  readonly decodeMsPerStep: number;
  readonly steps: number;
  readonly splitSteps: number;
  readonly tokens: number[][];
}

async function timeRound(llm: LLM): Promise<Round> {
  const engine = await llm.engine();
  const steps0 = engine.counters.numSteps;
  const split0 = engine.dboStats.splitSteps;
  let t = performance.now();
  await llm.generate(longPrompts, { temperature: 0, maxTokens: 1, ignoreEos: true }, { useTqdm: false });
  const prefillMs = performance.now() - t;
  const prefillSteps = engine.counters.numSteps - steps0;
  const steps1 = engine.counters.numSteps;
  t = performance.now();
  const out = await llm.generate(
    longPrompts,
    { temperature: 0, maxTokens, ignoreEos: true },
    { useTqdm: false },
  );
  const fullMs = performance.now() - t;
  const decodeSteps = Math.max(1, engine.counters.numSteps - steps1 - prefillSteps);
  return {
    prefillMsPerStep: prefillMs / prefillSteps,
    decodeMsPerStep: Math.max(0, fullMs - prefillMs) / decodeSteps,
    steps: engine.counters.numSteps - steps0,
    splitSteps: engine.dboStats.splitSteps - split0,
    tokens: out.map((o) => [...o.outputs[0]!.token_ids]),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// Warm-up (compiles the hot paths), not timed.
for (const llm of [llmOff, llmOn]) {
  await llm.generate(longPrompts.slice(0, 1), { temperature: 0, maxTokens: 2 }, { useTqdm: false });
}
const rounds: { off: Round[]; on: Round[] } = { off: [], on: [] };
for (let r = 0; r < 3; r++) {
  for (const dbo of r % 2 === 0 ? [false, true] : [true, false]) {
    (dbo ? rounds.on : rounds.off).push(await timeRound(dbo ? llmOn : llmOff));
  }
}

const c = engineOn.loaded.config;
console.log(
  `\nStep times (median of 3 rounds): ${numPrompts} prompts of ${inputLen} tokens, ${maxTokens} output ` +
    `tokens each; ${c.architecture}, ${c.numHiddenLayers} layers, -tp ${common.tensorParallelSize}` +
    `${common.moeComm ? ` (expert parallel, ${common.moeComm})` : ''}, kernels ${engineOn.kernels.name}`,
);
const summary = (rs: Round[]) => ({
  prefill: median(rs.map((x) => x.prefillMsPerStep)),
  decode: median(rs.map((x) => x.decodeMsPerStep)),
  steps: rs.reduce((a, x) => a + x.steps, 0),
  split: rs.reduce((a, x) => a + x.splitSteps, 0),
});
const off = summary(rounds.off);
const on = summary(rounds.on);
for (const [name, t] of [
  ['DBO off', off],
  ['DBO on', on],
] as const) {
  console.log(
    `  ${name.padEnd(8)} prefill ${t.prefill.toFixed(1).padStart(8)} ms/step   ` +
      `decode ${t.decode.toFixed(1).padStart(8)} ms/step   split steps ${t.split} of ${t.steps}`,
  );
}
console.log(
  `  DBO on / off: prefill ${(on.prefill / off.prefill).toFixed(3)}x, decode ${(on.decode / off.decode).toFixed(3)}x`,
);
const tokensOf = (rs: Round[]) => JSON.stringify(rs.map((x) => x.tokens));
const same = tokensOf(rounds.off) === tokensOf(rounds.on);
console.log(`  identical greedy tokens with and without DBO: ${same ? 'yes' : 'NO'}`);

await llmOn.close();
await llmOff.close();
if (!same) process.exitCode = 1;
