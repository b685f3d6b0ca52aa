// Dual-batch overlap (DBO) with the offline API: a DeepSeek model on two tensor-parallel ranks (worker
// threads of this process), generating with DBO on; then the same prompts with DBO off and on, timing the
// steps. With DBO on, a step whose batch is large enough is split into two micro-batches, and while one
// micro-batch's collective (all-reduce, all-gather, all-to-all) runs on the communication thread, the
// other computes. The outputs are the same either way; only the timing differs.
//
//   npm run build
//   node dist/examples/offline_dualbatch_overlap.js [--help] [--model DIR] [--num-prompts 4] [--input-len 256]
//       [--max-tokens 8] [--rounds 3] [--tp 2] [--moe-comm allgather|alltoall] [--num-threads N]
//       [--dbo-prefill-token-threshold 256] [--dbo-decode-token-threshold N] [--dbo-order auto]
//       [--dbo-auto-off false]
//
// Without --model it runs Duet's embedded default (a toy-size DeepSeek-V3 architecture with random
// weights: the text is meaningless, the timing is real). Over shared memory in one process the
// communication is cheap, so expect a small difference; DBO pays off where the ranks talk over a network
// (see docs/dbo.md and `npm run bench:dbo`).

import { parseArgs } from 'node:util';
import { DBO_ORDER_SETTINGS, type DboOrderSetting } from '../src/config/engine-config.js';
import { LLM, type LLMOptions } from '../src/engine/llm.js';
import { enableWasmFeatures } from '../src/platforms/cpu/wasm-features.js';
import { resolveSamplingParams } from '../src/sampling/sampling-params.js';

enableWasmFeatures();

const USAGE = `Dual-batch overlap (DBO) with the offline API: generates with DBO on, then times prefill and decode
steps with DBO off and on (alternating rounds) and checks that the greedy tokens are identical.

usage: node dist/examples/offline_dualbatch_overlap.js [options]
  --model DIR                        DeepSeek checkpoint (default: the embedded toy-size model)
  --num-prompts N                    prompts timed together (default 4)
  --input-len N                      tokens per timed prompt (default 256)
  --max-tokens N                     output tokens per timed prompt (default 8)
  --rounds N                         timing rounds of each setting (default 3)
  --tp N                             tensor-parallel ranks (default 2)
  --moe-comm allgather|alltoall      MoE communication (alltoall: with expert parallelism)
  --num-threads N                    kernel threads per rank
  --dbo-prefill-token-threshold N    DBO: split prefill steps of at least N tokens (default 256)
  --dbo-decode-token-threshold N     DBO: split decode steps of at least N tokens (default: --num-prompts,
                                     so that the decode steps timed here split)
  --dbo-order auto|alternate|staggered   order of split steps (default auto)
  --dbo-auto-off true|false          DBO's automatic off-switch (default false: time every split)
  -h, --help                         this text`;

/** Prints the usage (with `error` first, on stderr, exit code 2) and exits. */
function usage(error?: string): never {
  if (error) {
    console.error(`error: ${error}\n\n${USAGE}`);
    process.exit(2);
  }
  console.log(USAGE);
  process.exit(0);
}

let values: Record<string, string | boolean | undefined>;
try {
  ({ values } = parseArgs({
    options: {
      help: { type: 'boolean', short: 'h' },
      model: { type: 'string' },
      'num-prompts': { type: 'string', default: '4' },
      'input-len': { type: 'string', default: '256' },
      'max-tokens': { type: 'string', default: '8' },
      rounds: { type: 'string', default: '3' },
      tp: { type: 'string', default: '2' },
      'moe-comm': { type: 'string', default: 'allgather' },
      'num-threads': { type: 'string' },
      'dbo-prefill-token-threshold': { type: 'string' },
      'dbo-decode-token-threshold': { type: 'string' },
      'dbo-order': { type: 'string', default: 'auto' },
      // The example times split steps against one batch, so DBO's automatic off-switch (which would stop
      // splitting where it does not pay, as over shared memory it often does not) is off unless asked for.
      'dbo-auto-off': { type: 'string', default: 'false' },
    },
  }));
} catch (e) {
  usage((e as Error).message);
}
if (values.help) usage();

/** A positive integer flag (or undefined when absent and without default). */
function intFlag(name: string): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) usage(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
}
const numPrompts = intFlag('num-prompts')!;
const inputLen = intFlag('input-len')!;
const maxTokens = intFlag('max-tokens')!;
const numRounds = intFlag('rounds')!;
const moeComm = values['moe-comm'];
if (moeComm !== 'allgather' && moeComm !== 'alltoall')
  usage(`--moe-comm must be allgather or alltoall, got ${JSON.stringify(moeComm)}`);
const order = values['dbo-order'] as DboOrderSetting;
if (!DBO_ORDER_SETTINGS.includes(order))
  usage(`--dbo-order must be one of ${DBO_ORDER_SETTINGS.join(', ')}, got ${JSON.stringify(order)}`);
const autoOff = values['dbo-auto-off'];
if (autoOff !== 'true' && autoOff !== 'false')
  usage(`--dbo-auto-off must be true or false, got ${JSON.stringify(autoOff)}`);
const numThreads = intFlag('num-threads');
const prefillThreshold = intFlag('dbo-prefill-token-threshold');

console.log(
  'This example shows dual-batch overlap: with DBO on, large steps run as two micro-batches whose ' +
    "collectives overlap the other micro-batch's compute. Outputs are identical; only step times differ.\n",
);

/** Engine settings shared by every LLM below; only `enableDbo` differs between them. */
const common: LLMOptions = {
  ...(values.model ? { model: values.model as string } : {}),
  tensorParallelSize: intFlag('tp')!,
  ...(moeComm === 'alltoall' ? { enableExpertParallel: true, moeComm: 'alltoall' as const } : {}),
  ...(numThreads ? { numThreads } : {}),
  ...(prefillThreshold ? { dboPrefillTokenThreshold: prefillThreshold } : {}),
  // The decode steps timed below have numPrompts tokens: split them unless told otherwise.
  dboDecodeTokenThreshold: intFlag('dbo-decode-token-threshold') ?? numPrompts,
  dboOrder: order,
  dboAutoOff: autoOff === 'true',
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

/**
 * One round: the long prompts through the engine step by step, each step timed on its own; steps until
 * every prompt has its first token are prefill steps, the rest decode steps.
 */
async function timeRound(llm: LLM): Promise<Round> {
  const engine = await llm.engine();
  const split0 = engine.dboStats.splitSteps;
  const params = resolveSamplingParams(
    { temperature: 0, maxTokens, ignoreEos: true },
    {},
    { vocabSize: engine.loaded.config.vocabSize, maxModelLen: engine.maxModelLen, numPromptTokens: inputLen },
  );
  const ids = longPrompts.map((p) => engine.addRequest(p.prompt_token_ids, params));
  const tokens = new Map<string, number[]>(ids.map((id) => [id, []]));
  const prefill: number[] = [];
  const decode: number[] = [];
  let finished = 0;
  while (finished < ids.length) {
    const inPrefill = [...tokens.values()].some((t) => t.length === 0);
    const t = performance.now();
    const updates = await engine.step();
    (inPrefill ? prefill : decode).push(performance.now() - t);
    for (const u of updates) {
      tokens.get(u.requestId)?.push(...u.newTokenIds);
      if (u.finished) finished++;
    }
  }
  const mean = (xs: number[]) => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);
  return {
    prefillMsPerStep: mean(prefill),
    decodeMsPerStep: mean(decode),
    steps: prefill.length + decode.length,
    splitSteps: engine.dboStats.splitSteps - split0,
    tokens: ids.map((id) => tokens.get(id)!),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
// Warm-up (compiles the hot paths), not timed.
for (const llm of [llmOff, llmOn]) {
  await llm.generate(longPrompts.slice(0, 1), { temperature: 0, maxTokens: 2 }, { useTqdm: false });
}
const rounds: { off: Round[]; on: Round[] } = { off: [], on: [] };
for (let r = 0; r < numRounds; r++) {
  for (const dbo of r % 2 === 0 ? [false, true] : [true, false]) {
    (dbo ? rounds.on : rounds.off).push(await timeRound(dbo ? llmOn : llmOff));
  }
}

const c = engineOn.loaded.config;
console.log(
  `\nStep times (median of ${numRounds} rounds, min-max in brackets): ${numPrompts} prompts of ${inputLen} ` +
    `tokens, ${maxTokens} output tokens each; ${c.architecture}, ${c.numHiddenLayers} layers, -tp ${common.tensorParallelSize}` +
    `${common.moeComm ? ` (expert parallel, ${common.moeComm})` : ''}, kernels ${engineOn.kernels.name}`,
);
const spread = (xs: number[]) =>
  `${median(xs).toFixed(1).padStart(8)} ms/step [${Math.min(...xs).toFixed(1)}-${Math.max(...xs).toFixed(1)}]`;
const summary = (rs: Round[]) => ({
  prefill: median(rs.map((x) => x.prefillMsPerStep)),
  decode: median(rs.map((x) => x.decodeMsPerStep)),
  prefillText: spread(rs.map((x) => x.prefillMsPerStep)),
  decodeText: spread(rs.map((x) => x.decodeMsPerStep)),
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
    `  ${name.padEnd(8)} prefill ${t.prefillText}   decode ${t.decodeText}   split steps ${t.split} of ${t.steps}`,
  );
}
const ratios = (f: (r: Round) => number) =>
  rounds.on.map((r, i) => (f(r) / f(rounds.off[i]!)).toFixed(3)).join(', ');
console.log(
  `  DBO on / off: prefill ${(on.prefill / off.prefill).toFixed(3)}x (rounds ${ratios((r) => r.prefillMsPerStep)}), ` +
    `decode ${(on.decode / off.decode).toFixed(3)}x (rounds ${ratios((r) => r.decodeMsPerStep)})`,
);
const tokensOf = (rs: Round[]) => JSON.stringify(rs.map((x) => x.tokens));
const same = tokensOf(rounds.off) === tokensOf(rounds.on);
console.log(`  identical greedy tokens with and without DBO: ${same ? 'yes' : 'NO'}`);

await llmOn.close();
await llmOff.close();
if (!same) process.exitCode = 1;
