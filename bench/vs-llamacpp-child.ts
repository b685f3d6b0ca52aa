// One engine's side of `bench:vs-llamacpp`, run in a child process of its own so that its peak RSS is its
// own: Duet (the offline `LLM` API on a Hugging Face folder) or llama.cpp (node-llama-cpp on a GGUF
// file). It reads a `ChildJob` (JSON, argv[2]), measures what the job asks, and prints one line
// `RESULT <json>` (a `ChildResult`). Token ids go in directly on both sides: no tokenizer is involved.
//
// - load: seconds from the start of loading to a model ready to run (llama.cpp: model and a context);
//   a `loadOnly` Duet job measures only this. With `weightCacheDir` the onednn platform maps its prepared
//   weights from there (after a load that wrote them: `clearWeightCache` makes a job's load that one).
// - prefill: one prompt of `prefillPrompt.length` tokens; tokens/s of the best of `runs`.
// - decode at B sequences: B prompts (16 tokens) are prefilled, then each decodes `decodeTokens` tokens
//   greedily, all together; total tokens/s over the decode steps only.
// - accuracy: for each of `accuracyPrompts` and each position i of it but the last, the most likely next
//   token and the log-probability of the prompt's own next token (one trace per prompt, run one by one).
// - matmul share (Duet): the part of the prefill and decode step time spent in `linear` / `headLinear`.
//
// Duet's speed runs use the platform the job names (`cpu`, or the oneDNN package's `onednn`, which computes
// in the precision `dtype` selects: `bfloat16` rounds activations into matmuls to bf16); the accuracy run
// uses the `LLM` API on the default platform.

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { ControlledEvaluateInputItem, Token } from 'node-llama-cpp';
import type { QuantizationMethod } from '../src/config/engine-config.js';
import { createEngine } from '../src/engine/create-engine.js';
import { engineConfigFromLLMOptions, LLM, type LLMOptions } from '../src/engine/llm.js';
import type { LLMEngine } from '../src/engine/llm-engine.js';
import { CpuPlatform } from '../src/platforms/cpu/cpu-platform.js';
import { enableWasmFeatures } from '../src/platforms/cpu/wasm-features.js';
import type { Platform } from '../src/platforms/platform.js';
import { addGreedyRequests } from './greedy-requests.js';
import { MatmulClock, withMatmulClock } from './matmul-clock.js';

/** What a child measures. */
export interface ChildJob {
  readonly engine: 'duet' | 'llama.cpp';
  /** Duet: a Hugging Face folder; llama.cpp: a GGUF file. */
  readonly model: string;
  /** Duet's weight dtype. */
  readonly dtype: 'auto' | 'float32' | 'bfloat16';
  /** Duet: the engine's quantization (`--quantization`); null: none. */
  readonly quantization: QuantizationMethod | null;
  readonly threads: number;
  /** Whether to measure prefill and decode speed. */
  readonly perf: boolean;
  readonly prefillPrompt: readonly number[];
  readonly decodePrompts: readonly (readonly number[])[];
  readonly decodeTokens: number;
  readonly batches: readonly number[];
  readonly runs: number;
  /** The prompts scored for accuracy (each on its own); null: none. */
  readonly accuracyPrompts: readonly (readonly number[])[] | null;
  /** Duet: only load the model (on the job's platform) and report the load time. */
  readonly loadOnly?: boolean;
  /** Duet's platform for the speed runs: `cpu` (default) or the oneDNN package's `onednn`. */
  readonly platform?: 'cpu' | 'onednn';
  /** Duet: `--weight-cache-dir` (the onednn platform keeps its prepared weights there). */
  readonly weightCacheDir?: string;
  /** Duet: empty `weightCacheDir` first, so that the load packs and writes the cache. */
  readonly clearWeightCache?: boolean;
}

export interface AccuracyTrace {
  /** argmax[i]: the most likely token after prompt[0..i]. */
  readonly argmax: number[];
  /** logprob[i]: the log-probability of prompt[i + 1] after prompt[0..i]. */
  readonly logprob: number[];
}

export interface ChildResult {
  readonly loadS: number;
  readonly prefillTokS: number | null;
  /** Total decode tokens/s per number of sequences. */
  readonly decodeTokS: Record<string, number>;
  /** Peak RSS after the speed runs (before the accuracy run), MiB. */
  readonly peakRssMiB: number;
  /** One trace per accuracy prompt. */
  readonly accuracy: AccuracyTrace[] | null;
  /** Duet: the share of step time spent in matrix products, in the prefill run and per decode batch. */
  readonly matmulShare?: { readonly prefill: number; readonly decode: Record<string, number> };
}

function peakRssMiB(): number {
  return process.resourceUsage().maxRSS / 1024;
}

// ---- Duet ----

/** Runs requests to the end; the seconds of the prefill steps and of the decode steps after them. */
async function duetRun(
  engine: LLMEngine,
  prompts: readonly (readonly number[])[],
  maxTokens: number,
  clock: MatmulClock,
): Promise<{
  totalS: number;
  decodeS: number;
  decodeTokens: number;
  matmulS: number;
  decodeMatmulS: number;
}> {
  const firstSeen = new Set<string>();
  addGreedyRequests(engine, prompts, maxTokens);
  let totalS = 0;
  let decodeS = 0;
  let decodeTokens = 0;
  let matmulS = 0;
  let decodeMatmulS = 0;
  while (engine.hasUnfinishedRequests()) {
    const allStarted = firstSeen.size === prompts.length;
    const t = performance.now();
    const m0 = clock.seconds;
    const updates = await engine.step();
    const s = (performance.now() - t) / 1000;
    const ms = clock.seconds - m0;
    totalS += s;
    matmulS += ms;
    if (allStarted) decodeMatmulS += ms;
    for (const u of updates) {
      if (u.error !== null) throw new Error(`duet: ${u.error}`);
      if (allStarted) decodeTokens += u.newTokenIds.length;
      if (u.newTokenIds.length > 0) firstSeen.add(u.requestId);
    }
    if (allStarted) decodeS += s;
  }
  return { totalS, decodeS, decodeTokens, matmulS, decodeMatmulS };
}

/** The platform a job's speed runs use. */
async function jobPlatform(job: ChildJob): Promise<Platform> {
  if (job.platform === undefined || job.platform === 'cpu') return new CpuPlatform();
  const dist = join(fileURLToPath(import.meta.url), '..', '..', '..', 'packages', 'platform-onednn', 'dist');
  const entry = (await import(pathToFileURL(join(dist, 'index.js')).href)) as {
    createOnednnPlatform(addon: unknown): Platform;
  };
  const { loadAddon } = (await import(pathToFileURL(join(dist, 'addon.js')).href)) as {
    loadAddon(): { addon: unknown } | { reason: string };
  };
  const load = loadAddon();
  if (!('addon' in load)) throw new Error(`duet: the onednn platform is not available: ${load.reason}`);
  return entry.createOnednnPlatform(load.addon);
}

/** Tokens per KV cache block of the Duet runs. */
const KV_BLOCK = 128;

async function runDuet(job: ChildJob): Promise<ChildResult> {
  enableWasmFeatures();
  const maxLen =
    Math.max(job.prefillPrompt.length, ...(job.accuracyPrompts ?? []).map((p) => p.length)) +
    job.decodeTokens +
    64;
  const options: LLMOptions = {
    model: job.model,
    loadFormat: 'safetensors',
    dtype: job.dtype,
    ...(job.quantization !== null ? { quantization: job.quantization } : {}),
    numThreads: job.threads,
    maxModelLen: maxLen,
    // The KV cache holds what the runs need, as llama.cpp's contexts do (sized for their runs): a fixed
    // 512 MiB took seconds of the load time to allocate and clear, against llama.cpp's few MiB.
    blockSize: KV_BLOCK,
    numGpuBlocksOverride:
      Math.max(
        Math.ceil(maxLen / KV_BLOCK),
        Math.max(...job.batches, 1) * Math.ceil((16 + job.decodeTokens + 1) / KV_BLOCK),
      ) + 1,
    maxNumSeqs: Math.max(...job.batches, 1),
    enablePrefixCaching: false,
    ...(job.weightCacheDir !== undefined ? { weightCacheDir: job.weightCacheDir } : {}),
  };
  if (job.clearWeightCache === true && job.weightCacheDir !== undefined) {
    rmSync(job.weightCacheDir, { recursive: true, force: true });
  }
  let loadS = 0;
  let prefillTokS: number | null = null;
  const decodeTokS: Record<string, number> = {};
  let matmulShare: ChildResult['matmulShare'];
  if (job.loadOnly === true) {
    const t0 = performance.now();
    const engine = await createEngine(engineConfigFromLLMOptions(options), {
      platform: await jobPlatform(job),
    });
    loadS = (performance.now() - t0) / 1000;
    await engine.close();
  }
  if (job.perf) {
    const clock = new MatmulClock();
    const t0 = performance.now();
    const platform = withMatmulClock(await jobPlatform(job), clock);
    const engine = await createEngine(engineConfigFromLLMOptions(options), { platform });
    loadS = (performance.now() - t0) / 1000;
    await duetRun(engine, [job.prefillPrompt.slice(0, 32)], 2, clock); // warm-up
    let best = Number.POSITIVE_INFINITY;
    let prefillShare = 0;
    for (let r = 0; r < job.runs; r++) {
      const run = await duetRun(engine, [job.prefillPrompt], 1, clock);
      if (run.totalS < best) [best, prefillShare] = [run.totalS, run.matmulS / run.totalS];
    }
    prefillTokS = job.prefillPrompt.length / best;
    const decodeShare: Record<string, number> = {};
    for (const b of job.batches) {
      const run = await duetRun(engine, job.decodePrompts.slice(0, b), job.decodeTokens + 1, clock);
      decodeTokS[b] = run.decodeTokens / run.decodeS;
      decodeShare[b] = run.decodeMatmulS / run.decodeS;
    }
    matmulShare = { prefill: prefillShare, decode: decodeShare };
    await engine.close();
  }
  const rss = peakRssMiB();
  let accuracy: AccuracyTrace[] | null = null;
  if (job.accuracyPrompts !== null) {
    const t0 = performance.now();
    const llm = new LLM(options);
    await llm.engine();
    if (!job.perf) loadS = (performance.now() - t0) / 1000;
    accuracy = [];
    // One prompt at a time: the KV cache is sized for one.
    for (const prompt of job.accuracyPrompts) {
      const [out] = await llm.generate(
        [{ prompt_token_ids: [...prompt] }],
        { temperature: 0, maxTokens: 1, promptLogprobs: 1 },
        { useTqdm: false },
      );
      const lps = out?.prompt_logprobs ?? [];
      const trace: AccuracyTrace = { argmax: [], logprob: [] };
      for (let i = 1; i < lps.length; i++) {
        const lp = lps[i];
        if (!lp) throw new Error(`duet: no prompt logprobs at position ${i}`);
        trace.argmax.push(lp.top_logprobs[0]!.id);
        trace.logprob.push(lp.logprob);
      }
      accuracy.push(trace);
    }
    await llm.close();
  }
  return {
    loadS,
    prefillTokS,
    decodeTokS,
    peakRssMiB: rss,
    accuracy,
    ...(matmulShare ? { matmulShare } : {}),
  };
}

// ---- llama.cpp ----

/** Token ids as node-llama-cpp's branded `Token`s. */
function tokens(ids: readonly number[]): Token[] {
  return ids as unknown as Token[];
}

async function runLlama(job: ChildJob): Promise<ChildResult> {
  // node-llama-cpp is installed on demand by the bench (scripts/need-llamacpp.mjs; its types: bench/node-llama-cpp.d.ts).
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const t0 = performance.now();
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: job.model });
  const ctxLen = Math.max(job.prefillPrompt.length, ...(job.accuracyPrompts ?? []).map((p) => p.length)) + 64;
  const context = await model.createContext({ contextSize: ctxLen, batchSize: 512, threads: job.threads });
  const loadS = (performance.now() - t0) / 1000;
  let prefillTokS: number | null = null;
  const decodeTokS: Record<string, number> = {};
  if (job.perf) {
    const seq = context.getSequence();
    await seq.evaluateWithoutGeneratingNewTokens(tokens(job.prefillPrompt.slice(0, 32))); // warm-up
    let best = Number.POSITIVE_INFINITY;
    for (let r = 0; r < job.runs; r++) {
      await seq.clearHistory();
      const t = performance.now();
      await seq.evaluateWithoutGeneratingNewTokens(tokens(job.prefillPrompt));
      best = Math.min(best, (performance.now() - t) / 1000);
    }
    prefillTokS = job.prefillPrompt.length / best;
  }
  // One context at a time: an idle context's threads would compete with the measured one.
  await context.dispose();
  if (job.perf) {
    for (const b of job.batches) {
      const ctx = await model.createContext({
        contextSize: b * (16 + job.decodeTokens + 16),
        sequences: b,
        batchSize: Math.max(512, 16 * b),
        threads: job.threads,
      });
      const seqs = Array.from({ length: b }, () => ctx.getSequence());
      const prompts = job.decodePrompts.slice(0, b);
      // All but each prompt's last token first; decoding starts by evaluating the last one.
      await Promise.all(
        seqs.map((s, i) => s.evaluateWithoutGeneratingNewTokens(tokens(prompts[i]!.slice(0, -1)))),
      );
      const t = performance.now();
      let decoded = 0;
      await Promise.all(
        seqs.map(async (s, i) => {
          let n = 0;
          for await (const _ of s.evaluate(tokens([prompts[i]!.at(-1)!]), { temperature: 0 })) {
            decoded++;
            if (++n >= job.decodeTokens) break;
          }
        }),
      );
      decodeTokS[b] = decoded / ((performance.now() - t) / 1000);
      await ctx.dispose();
    }
  }
  const rss = peakRssMiB();
  let accuracy: AccuracyTrace[] | null = null;
  for (const p of job.accuracyPrompts ?? []) {
    const ctx = await model.createContext({ contextSize: ctxLen, batchSize: 512, threads: job.threads });
    const seq = ctx.getSequence();
    const results = await seq.controlledEvaluate(
      tokens(p).map(
        (t, i): ControlledEvaluateInputItem =>
          i + 1 < p.length
            ? [
                t,
                {
                  generateNext: {
                    logits: { filter: { tokens: tokens([p[i + 1]!]), includeTop: 1 } },
                    totalLogitWeight: true,
                  },
                },
              ]
            : t,
      ),
    );
    const trace: AccuracyTrace = { argmax: [], logprob: [] };
    for (let i = 0; i + 1 < p.length; i++) {
      const next = results[i]?.next;
      if (next?.logits === undefined || next.totalLogitWeight === undefined) {
        throw new Error(`llama.cpp: no logits at position ${i}`);
      }
      const [top, maxLogit] = next.logits.entries().next().value as [number, number];
      const own = next.logits.get(tokens([p[i + 1]!])[0]!)!;
      trace.argmax.push(top);
      // log softmax: the logit minus the max minus log Σ exp(logit − max).
      trace.logprob.push(own - maxLogit - Math.log(next.totalLogitWeight));
    }
    accuracy = [...(accuracy ?? []), trace];
    await ctx.dispose();
  }
  await model.dispose();
  return { loadS, prefillTokS, decodeTokS, peakRssMiB: rss, accuracy };
}

const job = JSON.parse(process.argv[2] ?? '{}') as ChildJob;
const result = job.engine === 'duet' ? await runDuet(job) : await runLlama(job);
console.log(`RESULT ${JSON.stringify(result)}`);
process.exit(0);
