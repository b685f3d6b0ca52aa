// Where the time of a step goes on the oneDNN platform, kernel by kernel: every member of the kernel set is
// timed (calls are synchronous), for one prefill of --prompt-len tokens and for decode at each --batches
// count of sequences, and printed as the share of step time per kernel. Dummy weights of a model config
// (default DeepSeek-V2-Lite cut to 2 layers: 1 dense + 1 MoE, about 2.5 GB, so no heavy-run lock needed).
//
//   node dist/bench/onednn-profile.js [--model assets/configs/deepseek-v2-lite] [--layers 2] [--threads 2]
//       [--prompt-len 512] [--batches 1,8] [--decode-tokens 8] [--dtype auto|bfloat16] [--quantization w8a8]

import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ModelDType, QuantizationMethod } from '../src/config/engine-config.js';
import { createEngine } from '../src/engine/create-engine.js';
import { engineConfigFromLLMOptions } from '../src/engine/llm.js';
import type { LLMEngine } from '../src/engine/llm-engine.js';
import type { Kernels } from '../src/kernels/kernels.js';
import type { Platform } from '../src/platforms/platform.js';
import { parseBenchArgs } from './bench-args.js';
import { addGreedyRequests } from './greedy-requests.js';

const { values } = parseBenchArgs(import.meta.url, {
  options: {
    model: { type: 'string', default: 'assets/configs/deepseek-v2-lite' },
    layers: { type: 'string', default: '2' },
    threads: { type: 'string', default: '2' },
    'prompt-len': { type: 'string', default: '512' },
    batches: { type: 'string', default: '1,8' },
    'decode-tokens': { type: 'string', default: '8' },
    dtype: { type: 'string', default: 'auto' },
    quantization: { type: 'string' },
  },
});
const numThreads = Number(values.threads);
const promptLen = Number(values['prompt-len']);
const batches = values.batches.split(',').map(Number);
const decodeTokens = Number(values['decode-tokens']);

/** Seconds per kernel member, reset per phase. */
const seconds = new Map<string, number>();

function timed(kernels: Kernels): Kernels {
  return new Proxy(kernels, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      const name = String(prop);
      return (...args: unknown[]) => {
        const t = performance.now();
        try {
          return value.apply(target, args);
        } finally {
          seconds.set(name, (seconds.get(name) ?? 0) + (performance.now() - t) / 1000);
        }
      };
    },
  });
}

async function onednnPlatform(): Promise<Platform> {
  const dist = join(fileURLToPath(import.meta.url), '..', '..', '..', 'packages', 'platform-onednn', 'dist');
  const { platformPlugin } = (await import(pathToFileURL(join(dist, 'index.js')).href)) as {
    platformPlugin: { create(): Promise<Platform> };
  };
  const p = await platformPlugin.create();
  return new Proxy(p, {
    get(target, prop) {
      if (prop === 'createKernels') {
        return async (opts: Parameters<Platform['createKernels']>[0]) =>
          timed(await target.createKernels(opts));
      }
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

async function run(engine: LLMEngine, prompts: number[][], maxTokens: number): Promise<number> {
  addGreedyRequests(engine, prompts, maxTokens);
  let total = 0;
  let steps = 0;
  while (engine.hasUnfinishedRequests()) {
    const t = performance.now();
    await engine.step();
    steps++;
    // Decode phases (maxTokens > 1) time the steps after the prompts' prefill, kernels included.
    if (maxTokens > 1 && steps === 1) seconds.clear();
    else total += (performance.now() - t) / 1000;
  }
  return total;
}

function report(label: string, total: number): void {
  const rows = [...seconds].sort((a, b) => b[1] - a[1]);
  const accounted = rows.reduce((s, [, v]) => s + v, 0);
  console.log(`\n${label}: ${total.toFixed(3)} s; kernels ${((accounted / total) * 100).toFixed(1)}%`);
  for (const [name, s] of rows) {
    if (s / total < 0.002) continue;
    console.log(
      `  ${name.padEnd(22)} ${(s * 1000).toFixed(1).padStart(9)} ms ${((s / total) * 100).toFixed(1).padStart(6)}%`,
    );
  }
  console.log(
    `  ${'(outside kernels)'.padEnd(22)} ${((total - accounted) * 1000).toFixed(1).padStart(9)} ms`,
  );
}

const engine = await createEngine(
  engineConfigFromLLMOptions({
    model: values.model,
    loadFormat: 'dummy',
    dtype: values.dtype as ModelDType,
    ...(values.quantization ? { quantization: values.quantization as QuantizationMethod } : {}),
    hfOverrides: { num_hidden_layers: Number(values.layers) },
    numThreads,
    maxModelLen: promptLen + decodeTokens + 64,
    kvCacheMemory: 256 * 2 ** 20,
    maxNumSeqs: Math.max(...batches, 1),
    enablePrefixCaching: false,
  }),
  { platform: await onednnPlatform() },
);
const ids = (n: number, seed: number) =>
  Array.from({ length: n }, (_, i) => 100 + ((i * 7919 + seed * 104729) % 50000));
await run(engine, [ids(32, 0)], 2); // warm-up
seconds.clear();
report(`prefill ${promptLen}`, await run(engine, [ids(promptLen, 1)], 1));
for (const b of batches) {
  seconds.clear();
  const prompts = Array.from({ length: b }, (_, i) => ids(16, 10 + i));
  report(`decode ${b} seq (${decodeTokens} steps)`, await run(engine, prompts, decodeTokens + 1));
}
await engine.close();
