// Where a step's time goes on the CPU platform: one prefill step and decode steps at the given batches,
// split by kernel member (matrix products by weight dtype and shape), with the rest of the step (the
// engine, the scheduler, the model's JavaScript between kernels) as "outside kernels".
// Run: node dist/bench/step-profile.js [--quantization w8a8] [--layers 4] [--prefill 512] [--batches 1,8]
// [--threads 2] [--steps 8]. Dummy weights of assets/configs/deepseek-v2-lite cut to --layers layers
// (no checkpoint on disk); holds about 3 GB: run it under the heavy-run lock.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { QuantizationMethod } from '../src/config/engine-config.js';
import { createEngine } from '../src/engine/create-engine.js';
import { engineConfigFromLLMOptions, type LLMOptions } from '../src/engine/llm.js';
import { CpuPlatform } from '../src/platforms/cpu/cpu-platform.js';
import { enableWasmFeatures } from '../src/platforms/cpu/wasm-features.js';
import { leadingComment } from './bench-args.js';
import { addGreedyRequests } from './greedy-requests.js';
import { KernelProfile, withKernelProfile } from './kernel-profile.js';

interface Options {
  quantization: QuantizationMethod | null;
  layers: number;
  prefill: number;
  batches: number[];
  threads: number;
  steps: number;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { quantization: null, layers: 4, prefill: 512, batches: [1, 8], threads: 2, steps: 8 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1] ?? '';
    const int = (): number => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`bench/step-profile: ${a} ${v}; a positive integer`);
      i++;
      return n;
    };
    if (a === '--quantization') {
      if (v !== 'w8a8') throw new Error(`bench/step-profile: --quantization ${v}; allowed: w8a8`);
      o.quantization = 'w8a8';
      i++;
    } else if (a === '--layers') o.layers = int();
    else if (a === '--prefill') o.prefill = int();
    else if (a === '--threads') o.threads = int();
    else if (a === '--steps') o.steps = int();
    else if (a === '--batches') {
      o.batches = v.split(',').map(Number);
      if (o.batches.some((b) => !Number.isInteger(b) || b < 1)) {
        throw new Error(`bench/step-profile: --batches ${v}; a comma list of positive integers`);
      }
      i++;
    } else throw new Error(`bench/step-profile: unknown option ${a}`);
  }
  return o;
}

function prompt(len: number, seed: number): number[] {
  return Array.from({ length: len }, (_, i) => 100 + ((i * 7919 + seed * 104729) % 50000));
}

function report(title: string, stepS: number, profile: KernelProfile, steps: number): void {
  console.log(`\n${title}: ${((1000 * stepS) / steps).toFixed(1)} ms per step (${steps} steps)`);
  const rows = [...profile.seconds.entries()].sort((a, b) => b[1] - a[1]);
  rows.push(['(outside kernels)', stepS - profile.total()]);
  for (const [key, s] of rows) {
    const calls = profile.calls.get(key);
    console.log(
      `  ${key.padEnd(34)} ${((1000 * s) / steps).toFixed(2).padStart(9)} ms ${((100 * s) / stepS).toFixed(1).padStart(6)}%` +
        (calls !== undefined ? `  ${(calls / steps).toFixed(0)} calls` : ''),
    );
  }
}

async function main(): Promise<void> {
  let o: Options;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (process.argv.includes('--help') || process.argv.includes('-h')) {
      console.log(leadingComment(import.meta.url));
      process.exit(0);
    }
    console.error(`${(e as Error).message}\n\n${leadingComment(import.meta.url)}`);
    process.exit(2);
  }
  enableWasmFeatures();
  const model = join(
    fileURLToPath(import.meta.url),
    '..',
    '..',
    '..',
    'assets',
    'configs',
    'deepseek-v2-lite',
  );
  const options: LLMOptions = {
    model,
    loadFormat: 'dummy',
    dtype: 'bfloat16',
    hfOverrides: { num_hidden_layers: o.layers },
    ...(o.quantization !== null ? { quantization: o.quantization } : {}),
    numThreads: o.threads,
    maxModelLen: o.prefill + o.steps + 64,
    kvCacheMemory: 512 * 2 ** 20,
    maxNumSeqs: Math.max(...o.batches, 1),
    enablePrefixCaching: false,
  };
  const profile = new KernelProfile();
  const engine = await createEngine(engineConfigFromLLMOptions(options), {
    platform: withKernelProfile(new CpuPlatform(), profile),
  });
  console.log(`${o.layers} layers, ${o.quantization ?? 'bf16'}, ${o.threads} threads`);
  addGreedyRequests(engine, [prompt(32, 0)], 2); // warm-up
  while (engine.hasUnfinishedRequests()) await engine.step();
  // Prefill: one step of o.prefill tokens.
  addGreedyRequests(engine, [prompt(o.prefill, 1)], 1);
  profile.reset();
  let t = performance.now();
  await engine.step();
  report(`prefill ${o.prefill}`, (performance.now() - t) / 1000, profile, 1);
  while (engine.hasUnfinishedRequests()) await engine.step();
  for (const b of o.batches) {
    addGreedyRequests(
      engine,
      Array.from({ length: b }, (_, i) => prompt(16, 10 + i)),
      o.steps + 2,
    );
    // Prefill every sequence and take one decode step as warm-up, then time o.steps decode steps.
    while (engine.hasUnfinishedRequests()) {
      const s = await engine.step();
      if (s.every((u) => u.newTokenIds.length > 0) && s.length === b) break;
    }
    await engine.step();
    profile.reset();
    t = performance.now();
    for (let i = 0; i < o.steps; i++) await engine.step();
    report(`decode, ${b} sequences`, (performance.now() - t) / 1000, profile, o.steps);
    while (engine.hasUnfinishedRequests()) await engine.step();
  }
  await engine.close();
}

await main();
