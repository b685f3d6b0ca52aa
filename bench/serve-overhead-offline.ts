// The offline half of bench/serve-overhead.ts, run as its own process: builds the same random dataset as
// `duet bench serve` (same tokenizer, seed and lengths), runs it through the offline `LLM` API with
// maxNumSeqs = the served run's concurrency, and prints one JSON line: wall time, requests, output tokens
// and the CPU of each thread role during the run, with the time each role waited for a core (thread-cpu.ts).
//
//   node dist/bench/serve-overhead-offline.js --num-prompts 600 --input-len 128 --output-len 32 \
//     --max-num-seqs 32 [--model DIR] [--kv-cache-memory BYTES]

import { sampleRandomDataset } from '../src/bench/random-dataset.js';
import { parseBytes } from '../src/cli/engine-args.js';
import { LLM } from '../src/engine/llm.js';
import { enableWasmFeatures } from '../src/platforms/cpu/wasm-features.js';
import { parseBenchArgs } from './bench-args.js';
import { perRoleSince, threadCpu, threadRunqueueWait } from './thread-cpu.js';

enableWasmFeatures();

const { values } = parseBenchArgs(import.meta.url, {
  options: {
    'num-prompts': { type: 'string', default: '600' },
    'input-len': { type: 'string', default: '128' },
    'output-len': { type: 'string', default: '32' },
    'max-num-seqs': { type: 'string', default: '32' },
    model: { type: 'string' },
    'kv-cache-memory': { type: 'string' },
    seed: { type: 'string', default: '0' },
  },
});

const llm = new LLM({
  ...(values.model ? { model: values.model } : {}),
  ...(values['kv-cache-memory'] ? { kvCacheMemory: parseBytes(values['kv-cache-memory']) } : {}),
  maxNumSeqs: Number(values['max-num-seqs']),
});
const engine = await llm.engine();
const outputLen = Number(values['output-len']);
const dataset = sampleRandomDataset(engine.tokenizer, {
  numPrompts: Number(values['num-prompts']),
  inputLen: Number(values['input-len']),
  outputLen,
  rangeRatio: 0,
  prefixLen: 0,
  seed: Number(values.seed),
});
// Warm-up, as the served run's one warm-up request.
await llm.generate([dataset[0]!.prompt], { maxTokens: outputLen, ignoreEos: true }, { useTqdm: false });

const cpuBefore = threadCpu('self');
const waitBefore = threadRunqueueWait('self');
const start = performance.now();
const outputs = await llm.generate(
  dataset.map((r) => r.prompt),
  { maxTokens: outputLen, ignoreEos: true },
  { useTqdm: false },
);
const wallS = (performance.now() - start) / 1000;
const cpu = perRoleSince(cpuBefore, threadCpu('self'));
const wait = perRoleSince(waitBefore, threadRunqueueWait('self'));
await llm.close();

const numOutputTokens = outputs.reduce((a, o) => a + o.outputs[0]!.token_ids.length, 0);
console.log(
  JSON.stringify({
    wallS,
    numRequests: outputs.length,
    numOutputTokens,
    cpu: Object.fromEntries(cpu),
    wait: Object.fromEntries(wait),
  }),
);
