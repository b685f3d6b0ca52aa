// Offline throughput benchmark, like vLLM's benchmark_throughput: random prompts through the offline LLM
// API on a dummy-weight DeepSeek-V2-Lite-shaped model cut to a few layers. Prints requests/s and tokens/s
// for batch-1 sequential requests and for continuous batching, side by side in one run, and the peak
// RSS against the weights plus the configured KV cache.
//
//   npm run bench:throughput -- [--num-prompts 16] [--input-len 128] [--output-len 16] [--layers 4]
//                               [--config assets/configs/deepseek-v2-lite] [--kv-cache-memory 1GiB]

import { parseBytes } from '../src/cli/engine-args.js';
import { LLM } from '../src/engine/llm.js';
import { enableWasmFeatures } from '../src/platforms/cpu/wasm-features.js';
import { createLogger } from '../src/util/logger.js';
import { parseBenchArgs } from './bench-args.js';

enableWasmFeatures();

const { values } = parseBenchArgs(import.meta.url, {
  options: {
    'num-prompts': { type: 'string', default: '16' },
    'input-len': { type: 'string', default: '128' },
    'output-len': { type: 'string', default: '16' },
    layers: { type: 'string', default: '4' },
    config: { type: 'string', default: 'assets/configs/deepseek-v2-lite' },
    'kv-cache-memory': { type: 'string', default: '1GiB' },
    'max-num-seqs': { type: 'string', default: '64' },
    'num-threads': { type: 'string' },
  },
});
const numPrompts = Number(values['num-prompts']);
const inputLen = Number(values['input-len']);
const outputLen = Number(values['output-len']);
const kvBytes = parseBytes(values['kv-cache-memory']!);

/** Seeded random prompts (token ids), distinct per seed so the two runs share no prefix. */
function randomPrompts(seed: number, vocab: number): { prompt_token_ids: number[] }[] {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
  // Ids away from the special tokens at either end, as far as a small (test) vocabulary allows.
  const margin = Math.min(100, Math.floor(vocab / 8));
  return Array.from({ length: numPrompts }, () => ({
    prompt_token_ids: Array.from(
      { length: inputLen },
      () => Math.floor(next() * (vocab - 2 * margin)) + margin,
    ),
  }));
}

const log = createLogger();
const llm = new LLM({
  model: values.config!,
  loadFormat: 'dummy',
  hfOverrides: { num_hidden_layers: Number(values.layers) },
  kvCacheMemory: kvBytes,
  blockSize: 128,
  maxNumSeqs: Number(values['max-num-seqs']),
  maxModelLen: inputLen + outputLen + 1,
  enablePrefixCaching: false,
  ...(values['num-threads'] ? { numThreads: Number(values['num-threads']) } : {}),
  logger: log,
});
const engine = await llm.engine();
const vocab = engine.loaded.config.vocabSize;
const params = { temperature: 0, maxTokens: outputLen, ignoreEos: true };

// Warm-up: one short request (compiles hot paths).
await llm.generate([{ prompt_token_ids: [1, 2, 3] }], { ...params, maxTokens: 2 }, { useTqdm: false });

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return (performance.now() - t) / 1000;
}

const seqPrompts = randomPrompts(1, vocab);
const seqTime = await timed(async () => {
  for (const p of seqPrompts) await llm.generate([p], params, { useTqdm: false });
});
const batchPrompts = randomPrompts(2, vocab);
const batchTime = await timed(() => llm.generate(batchPrompts, params, { useTqdm: false }));

const totalTokens = numPrompts * (inputLen + outputLen);
const row = (name: string, t: number) =>
  `${name.padEnd(22)} ${t.toFixed(2).padStart(8)} s ${(numPrompts / t).toFixed(3).padStart(9)} req/s ` +
  `${(totalTokens / t).toFixed(1).padStart(9)} tok/s ${((numPrompts * outputLen) / t).toFixed(1).padStart(9)} out tok/s`;

const peakRss = process.resourceUsage().maxRSS * 1024;
const weights = engine.loaded.weightBytes;
const overhead = peakRss - weights - kvBytes;
const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;
console.log(
  `\nthroughput: ${numPrompts} prompts x (${inputLen} in + ${outputLen} out) tokens, ${engine.loaded.config.numHiddenLayers} layers, ` +
    `kernels ${engine.kernels.name}`,
);
console.log(row('batch-1 sequential', seqTime));
console.log(row('continuous batching', batchTime));
console.log(`speed-up: ${(seqTime / batchTime).toFixed(2)}x`);
console.log(
  `memory: peak RSS ${gib(peakRss)} = weights ${gib(weights)} + KV cache ${gib(kvBytes)} + overhead ${gib(overhead)}`,
);
await llm.close();
