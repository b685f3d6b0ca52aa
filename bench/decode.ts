// Single-request speed of the engine on dummy weights: prefill tokens/s (one long prompt, one output token)
// and decode tokens/s (batch 1), for a toy DeepSeek-V3 config (the former embedded default) and for
// DeepSeek-V2-Lite's config cut to a few layers, with a breakdown of where a decode step's time goes
// (embedding, attention projections, absorbed per-head GEMMs, attention kernel, MoE routing, experts, LM
// head, sampler, detokenizer, engine overhead). The breakdown comes from a second, instrumented decode
// run: every kernel call and a few model and engine methods are wrapped with timers, and time is charged
// to the innermost one running.
//
// On a shared machine the step times vary with other load: prefill is the best of --runs prompts, and
// decode is given as the median step and the 10th-percentile step (close to the unloaded speed).
//
//   npm run bench:decode -- [--models v3-toy,v2-lite] [--layers 4] [--prompt-len 512] [--decode 64]
//                           [--runs 3] [--batch 1] [--threads 2] [--kv-cache-mib 512|auto] [--no-breakdown]
//
// --batch B decodes B requests together (tokens/s counts all B; the breakdown is per step).

import { LLM } from '../src/engine/llm.js';
import type { LLMEngine } from '../src/engine/llm-engine.js';
import { StopChecker } from '../src/engine/stop-checker.js';
import { enableWasmFeatures } from '../src/platforms/cpu/wasm-features.js';
import { resolveSamplingParams } from '../src/sampling/sampling-params.js';
import { parseBenchArgs } from './bench-args.js';
import { addGreedyRequests } from './greedy-requests.js';

enableWasmFeatures();

const { values } = parseBenchArgs(import.meta.url, {
  options: {
    models: { type: 'string', default: 'v3-toy,v2-lite' },
    layers: { type: 'string', default: '4' },
    'prompt-len': { type: 'string', default: '512' },
    decode: { type: 'string', default: '64' },
    threads: { type: 'string' },
    'kv-cache-mib': { type: 'string', default: '512' },
    runs: { type: 'string', default: '3' },
    batch: { type: 'string', default: '1' },
    'no-breakdown': { type: 'boolean', default: false },
  },
});
const promptLen = Number(values['prompt-len']);
const numDecode = Number(values.decode);
const numLayers = Number(values.layers);
const numRuns = Number(values.runs);
/** Requests decoding together. */
const batch = Number(values.batch);

/** What a model entry of the bench loads. */
interface BenchModel {
  readonly label: string;
  /** Model folder (undefined: the embedded default). */
  readonly folder: string | undefined;
  readonly hfOverrides: Record<string, unknown>;
}

const MODELS: Record<string, BenchModel> = {
  'v3-toy': {
    label: 'DeepSeek-V3 toy config (4 layers, hidden 256)',
    folder: 'assets/configs/deepseek-v3-toy',
    hfOverrides: {},
  },
  'v2-lite': {
    label: `DeepSeek-V2-Lite cut to ${numLayers} layers`,
    folder: 'assets/configs/deepseek-v2-lite',
    hfOverrides: { num_hidden_layers: numLayers },
  },
};

/** Seeded pseudo-random token ids in [100, vocab − 1000). */
function randomTokens(seed: number, n: number, vocab: number): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out.push(100 + (s % (vocab - 1100)));
  }
  return out;
}

/** Runs requests (one per prompt) to the end through engine.step(); returns the seconds of each step. */
async function runRequests(engine: LLMEngine, prompts: number[][], maxTokens: number): Promise<number[]> {
  addGreedyRequests(engine, prompts, maxTokens);
  const steps: number[] = [];
  while (engine.hasUnfinishedRequests()) {
    const t = performance.now();
    const updates = await engine.step();
    steps.push((performance.now() - t) / 1000);
    for (const u of updates) if (u.error !== null) throw new Error(`bench/decode: ${u.error}`);
  }
  return steps;
}

/** Runs one request to the end; the seconds of each step. */
function runRequest(engine: LLMEngine, prompt: number[], maxTokens: number): Promise<number[]> {
  return runRequests(engine, [prompt], maxTokens);
}

/** `batch` short prompts (16 tokens) from `seed`. */
function decodePrompts(seed: number, vocab: number): number[][] {
  return Array.from({ length: batch }, (_, i) => randomTokens(seed * 1000 + i, 16, vocab));
}

/** The q-quantile (0..1) of `xs`, by the nearest rank. */
function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

// ---- Instrumentation (the breakdown run only) ----

/** Self time per phase, charged to the innermost wrapped call that is running. */
class PhaseTimer {
  readonly seconds = new Map<string, number>();
  private readonly stack: string[] = [];
  private last = 0;

  enter(phase: string): void {
    this.charge();
    this.stack.push(phase);
  }

  leave(): void {
    this.charge();
    this.stack.pop();
  }

  reset(): void {
    this.seconds.clear();
    this.last = performance.now();
  }

  private charge(): void {
    const now = performance.now();
    const top = this.stack[this.stack.length - 1];
    if (top !== undefined) this.seconds.set(top, (this.seconds.get(top) ?? 0) + (now - this.last) / 1000);
    this.last = now;
  }
}

type AnyObject = Record<string, unknown>;

/** Replaces `obj[key]` (a method) by a wrapper that times it as `phase` (a string or chosen per call). */
function wrap(timer: PhaseTimer, obj: AnyObject, key: string, phase: string | ((args: unknown[]) => string)) {
  const fn = obj[key] as (...args: unknown[]) => unknown;
  if (typeof fn !== 'function') throw new Error(`bench/decode: no method ${key} to instrument`);
  obj[key] = function (this: unknown, ...args: unknown[]) {
    timer.enter(typeof phase === 'string' ? phase : phase(args));
    let result: unknown;
    try {
      result = fn.apply(this, args);
    } catch (e) {
      timer.leave();
      throw e;
    }
    if (result instanceof Promise) {
      // Async: the phase stays open until it settles (the forward awaits only its collectives).
      return result.finally(() => timer.leave());
    }
    timer.leave();
    return result;
  };
}

/** Property paths of every prepared linear weight reachable from `root` (e.g. `layers.1.attn.wUkT.3`). */
function linearWeightPaths(root: unknown): Map<unknown, string> {
  const paths = new Map<unknown, string>();
  const seen = new Set<unknown>();
  const visit = (o: unknown, path: string): void => {
    if (o === null || typeof o !== 'object' || seen.has(o) || ArrayBuffer.isView(o)) return;
    seen.add(o);
    const r = o as AnyObject;
    if (typeof r.n === 'number' && typeof r.k === 'number' && typeof r.dtype === 'string') {
      paths.set(o, path);
      return;
    }
    for (const [key, value] of Object.entries(r)) {
      if (key === 'kernels' || key === 'ctx' || key === 'comm' || key === 'config') continue;
      visit(value, path ? `${path}.${key}` : key);
    }
  };
  visit(root, '');
  return paths;
}

/** The phase of a linear layer, from its weight's path in the model. */
function linearPhase(path: string | undefined): string {
  if (path === undefined) return 'other linear';
  if (path === 'lmHead') return 'LM head';
  if (/\.attn\.(wUkT|wUv|wUk|absorb)/.test(path)) return 'absorbed per-head GEMMs';
  if (/\.attn\.kvB$/.test(path)) return 'prefill K/V up-projection';
  if (/\.attn\./.test(path)) return 'attention projections';
  if (/\.gate\./.test(path)) return 'MoE routing';
  if (/\.shared\./.test(path)) return 'shared experts';
  if (/\.experts\./.test(path)) return 'routed experts (GEMMs)';
  if (/\.mlp\./.test(path)) return 'dense MLP';
  return `other linear (${path})`;
}

/** Instruments the engine in place; returns the timer. */
function instrument(engine: LLMEngine): PhaseTimer {
  const timer = new PhaseTimer();
  const e = engine as unknown as AnyObject;
  // One batch builder per data-parallel replica (the engine's replicas); the bench runs one.
  const builders = (e.replicas as AnyObject[]).map((r) => r.batches as AnyObject);
  const executor = e.executor as AnyObject;
  const model = (executor.rank as AnyObject).model as AnyObject;
  const kernels = e.kernels as AnyObject;
  const paths = linearWeightPaths(model);

  wrap(timer, e, 'step', 'engine overhead (scheduler, bookkeeping)');
  for (const builder of builders) {
    wrap(timer, builder, 'prepare', 'batch build');
    wrap(timer, builder, 'collect', 'batch build');
  }
  wrap(timer, model, 'forward', 'model glue (norms, residuals)');
  wrap(timer, model, 'embed', 'embedding');
  wrap(timer, e.sampler as AnyObject, 'sample', 'sampler');
  wrap(timer, StopChecker.prototype as unknown as AnyObject, 'appendToken', 'detokenizer + stop checks');
  for (const layer of model.layers as AnyObject[]) {
    wrap(timer, layer.attn as AnyObject, 'forward', 'attention glue (copies, rope, cache write)');
    const moe = layer.moe as AnyObject | null;
    if (moe) {
      wrap(timer, moe.gate as AnyObject, 'route', 'MoE routing');
      wrap(timer, moe, 'runExperts', 'routed experts (gather, scatter, activations)');
      if (typeof moe.runShared === 'function') wrap(timer, moe, 'runShared', 'shared experts');
    }
  }
  wrap(timer, kernels, 'linear', (args) => linearPhase(paths.get(args[2])));
  wrap(timer, kernels, 'mlaAttention', 'attention kernel');
  wrap(timer, kernels, 'mlaAttentionBatch', 'attention kernel');
  wrap(timer, kernels, 'mhaAttention', 'attention kernel (prefill, not absorbed)');
  wrap(timer, kernels, 'headLinear', 'absorbed per-head GEMMs');
  for (const op of ['rmsNorm', 'siluAndMul', 'softmax', 'rope', 'topK']) {
    if (typeof kernels[op] === 'function') wrap(timer, kernels, op, 'small ops (norm, rope, silu, top-k)');
  }
  return timer;
}

// ---- The runs ----

/** Seconds per phase over `steps` engine steps. */
interface Breakdown {
  readonly seconds: Map<string, number>;
  readonly steps: number;
}

interface ModelResult {
  label: string;
  prefillTokS: number;
  decodeTokS: number;
  decodeP10TokS: number;
  prefillBreakdown: Breakdown | null;
  decodeBreakdown: Breakdown | null;
}

async function benchModel(m: BenchModel): Promise<ModelResult> {
  const t0 = performance.now();
  const llm = new LLM({
    model: m.folder,
    loadFormat: 'dummy',
    hfOverrides: m.hfOverrides,
    // 'auto': the engine's own sizing (a share of the machine's memory), as `duet serve` does.
    ...(values['kv-cache-mib'] === 'auto' ? {} : { kvCacheMemory: Number(values['kv-cache-mib']) * 2 ** 20 }),
    maxModelLen: promptLen + numDecode + 64,
    enablePrefixCaching: false,
    ...(values.threads ? { numThreads: Number(values.threads) } : {}),
  });
  const engine = await llm.engine();
  const vocab = engine.loaded.config.vocabSize;
  console.log(
    `${m.label}: loaded in ${((performance.now() - t0) / 1000).toFixed(1)} s (${engine.kernels.name})`,
  );

  // Warm-up: compiles the hot paths, touches every weight once.
  await runRequest(engine, randomTokens(1, 64, vocab), 4);

  // Prefill: one long prompt, one output token; best of a few runs.
  const prefill: number[] = [];
  for (let i = 0; i < numRuns; i++) {
    const steps = await runRequest(engine, randomTokens(10 + i, promptLen, vocab), 1);
    prefill.push(steps.reduce((a, b) => a + b, 0));
  }
  const prefillTokS = promptLen / Math.min(...prefill);

  // Decode: batch 1 after a short prompt, a few requests; the steps after each request's first.
  const decodeSteps: number[] = [];
  for (let i = 0; i < numRuns; i++) {
    decodeSteps.push(...(await runRequests(engine, decodePrompts(20 + i, vocab), numDecode + 1)).slice(1));
  }
  const decodeTokS = batch / quantile(decodeSteps, 0.5);
  const decodeP10TokS = batch / quantile(decodeSteps, 0.1);
  console.log(
    `  prefill ${promptLen} tokens: ${prefillTokS.toFixed(1)} tok/s (best of ${numRuns}: ` +
      `${prefill.map((x) => x.toFixed(2)).join(', ')} s); decode: ${decodeTokS.toFixed(1)} tok/s median, ` +
      `${decodeP10TokS.toFixed(1)} tok/s at the 10th percentile step (${(quantile(decodeSteps, 0.5) * 1000).toFixed(2)} / ` +
      `${(quantile(decodeSteps, 0.1) * 1000).toFixed(2)} ms)`,
  );

  let decodeBreakdown: Breakdown | null = null;
  let prefillBreakdown: Breakdown | null = null;
  if (!values['no-breakdown']) {
    const timer = instrument(engine);
    await runRequest(engine, randomTokens(30, 16, vocab), 2); // warm the wrappers
    timer.reset();
    await runRequest(engine, randomTokens(31, promptLen, vocab), 1);
    prefillBreakdown = { seconds: new Map(timer.seconds), steps: 1 };
    // Decode steps only: the requests' prefill runs before the timer starts.
    for (const prompt of decodePrompts(32, vocab)) {
      const params = resolveSamplingParams(
        { temperature: 0, maxTokens: numDecode + 1, ignoreEos: true },
        {},
        { vocabSize: vocab, maxModelLen: engine.maxModelLen, numPromptTokens: prompt.length },
      );
      engine.addRequest(prompt, params);
    }
    await engine.step();
    timer.reset();
    let steps = 0;
    while (engine.hasUnfinishedRequests()) {
      await engine.step();
      steps++;
    }
    decodeBreakdown = { seconds: new Map(timer.seconds), steps };
  }
  await llm.close();
  return { label: m.label, prefillTokS, decodeTokS, decodeP10TokS, prefillBreakdown, decodeBreakdown };
}

const results: ModelResult[] = [];
for (const name of values.models!.split(',')) {
  const m = MODELS[name];
  if (!m)
    throw new Error(`bench/decode: unknown model '${name}'; allowed: ${Object.keys(MODELS).join(', ')}`);
  results.push(await benchModel(m));
}

console.log(
  '\n| model | prefill tok/s (best) | decode tok/s (median step) | decode tok/s (p10 step) |\n| --- | ---: | ---: | ---: |',
);
for (const r of results) {
  console.log(
    `| ${r.label} | ${r.prefillTokS.toFixed(1)} | ${r.decodeTokS.toFixed(1)} | ${r.decodeP10TokS.toFixed(1)} |`,
  );
}
console.log(
  'llama.cpp, V2-Lite 4 layers, 2 threads: BF16 85 / 16 tok/s, Q8_0 133 / 25 tok/s (prefill / decode)',
);

function printBreakdown(title: string, b: Breakdown): void {
  const total = [...b.seconds.values()].reduce((x, y) => x + y, 0);
  console.log(`\n${title} (instrumented, ${b.steps} step(s), ms per step):`);
  for (const [phase, s] of [...b.seconds].sort((x, y) => y[1] - x[1])) {
    const ms = (s * 1000) / b.steps;
    console.log(
      `  ${phase.padEnd(46)} ${ms.toFixed(3).padStart(9)} ms  ${((100 * s) / total).toFixed(1).padStart(5)} %`,
    );
  }
  console.log(`  ${'total'.padEnd(46)} ${((total * 1000) / b.steps).toFixed(3).padStart(9)} ms`);
}

for (const r of results) {
  if (r.prefillBreakdown)
    printBreakdown(`Prefill step breakdown (${promptLen} tokens), ${r.label}`, r.prefillBreakdown);
  if (r.decodeBreakdown) {
    printBreakdown(`Decode step breakdown (batch ${batch}), ${r.label}`, r.decodeBreakdown);
  }
}
