// One engine's perplexity for `bench:vs-llamacpp --perplexity`, in a child process of its own: Duet (the
// offline `LLM` API on a Hugging Face folder, scored by `evaluatePerplexity`, the code of `duet eval
// perplexity`) or llama.cpp (node-llama-cpp on a GGUF file). It reads a `PerplexityJob` (JSON) from stdin,
// scores the job's token ids in the windows of `perplexityWindows` (src/cli/eval.ts), and prints one line
// `RESULT <json>` (a `PerplexityChildResult`). No tokenizer is involved: both engines get the same ids.

import { readFileSync } from 'node:fs';
import type { ControlledEvaluateInputItem, LlamaContextSequence, Token } from 'node-llama-cpp';
import { evaluatePerplexity, type PerplexityWindow, perplexityWindows } from '../src/cli/eval.js';
import type { QuantizationMethod } from '../src/config/engine-config.js';
import { LLM } from '../src/engine/llm.js';
import { enableWasmFeatures } from '../src/platforms/cpu/wasm-features.js';

/** What a child scores. */
export interface PerplexityJob {
  readonly engine: 'duet' | 'llama.cpp';
  /** Duet: a Hugging Face folder; llama.cpp: a GGUF file. */
  readonly model: string;
  /** Duet's weight dtype. */
  readonly dtype: 'float32' | 'bfloat16';
  /** Duet: the engine's quantization (`--quantization`); null: none. */
  readonly quantization: QuantizationMethod | null;
  /** llama.cpp's KV cache type (its default is F16). */
  readonly llamaKvType: 'F16' | 'F32';
  readonly threads: number;
  readonly ids: readonly number[];
  readonly context: number;
  readonly stride: number;
}

export interface PerplexityChildResult {
  readonly perplexity: number;
  /** Mean negative log-likelihood (nats) of the scored tokens. */
  readonly meanNll: number;
  readonly numScoredTokens: number;
  /** Seconds from the start of loading to a model ready to run. */
  readonly loadS: number;
  /** Seconds of scoring. */
  readonly seconds: number;
}

async function runDuet(job: PerplexityJob): Promise<PerplexityChildResult> {
  enableWasmFeatures();
  const t0 = performance.now();
  const llm = new LLM({
    model: job.model,
    loadFormat: 'safetensors',
    dtype: job.dtype,
    numThreads: job.threads,
    maxModelLen: job.context + 1,
    ...(job.quantization !== null ? { quantization: job.quantization } : {}),
  });
  try {
    await llm.engine();
    const loadS = (performance.now() - t0) / 1000;
    const r = await evaluatePerplexity(llm, job.ids, job.context, job.stride);
    return {
      perplexity: r.perplexity,
      meanNll: r.meanNll,
      numScoredTokens: r.numScoredTokens,
      loadS,
      seconds: r.seconds,
    };
  } finally {
    await llm.close();
  }
}

/** Token ids as node-llama-cpp's branded `Token`s. */
function tokens(ids: readonly number[]): Token[] {
  return ids as unknown as Token[];
}

/** Windows llama.cpp scores at once, one per sequence of its context. */
const LLAMA_SEQUENCES = 8;

/** The summed negative log-likelihood of window `w`'s scored tokens, run in `seq` from position 0. */
async function scoreWindow(
  seq: LlamaContextSequence,
  ids: readonly number[],
  w: PerplexityWindow,
): Promise<{ nll: number; numScored: number }> {
  await seq.clearHistory();
  const input = tokens(ids.slice(w.begin, w.end)).map((t, i): ControlledEvaluateInputItem => {
    const next = w.begin + i + 1; // the token this position predicts
    if (next < w.firstScored || next >= w.end) return t;
    return [
      t,
      {
        generateNext: {
          logits: { filter: { tokens: tokens([ids[next]!]), includeTop: 1 } },
          totalLogitWeight: true,
        },
      },
    ];
  });
  const results = await seq.controlledEvaluate(input);
  let nll = 0;
  for (let t = w.firstScored; t < w.end; t++) {
    const next = results[t - 1 - w.begin]?.next;
    if (next?.logits === undefined || next.totalLogitWeight === undefined) {
      throw new Error(`llama.cpp: no logits for token ${t} of the text`);
    }
    const [, maxLogit] = next.logits.entries().next().value as [number, number];
    const own = next.logits.get(tokens([ids[t]!])[0]!);
    if (own === undefined) throw new Error(`llama.cpp: no logit of token id ${ids[t]} at token ${t}`);
    // −log softmax: −(logit − max − log Σ exp(logit − max)).
    nll -= own - maxLogit - Math.log(next.totalLogitWeight);
  }
  return { nll, numScored: w.end - w.firstScored };
}

async function runLlama(job: PerplexityJob): Promise<PerplexityChildResult> {
  // node-llama-cpp is installed on demand by the bench (scripts/need-llamacpp.mjs; its types: bench/node-llama-cpp.d.ts).
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const t0 = performance.now();
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: job.model });
  const context = await model.createContext({
    contextSize: job.context * LLAMA_SEQUENCES,
    sequences: LLAMA_SEQUENCES,
    batchSize: job.context * LLAMA_SEQUENCES,
    threads: job.threads,
    experimentalKvCacheKeyType: job.llamaKvType,
    experimentalKvCacheValueType: job.llamaKvType,
  });
  const sequences = Array.from({ length: LLAMA_SEQUENCES }, () => context.getSequence());
  const loadS = (performance.now() - t0) / 1000;
  const started = performance.now();
  const windows = perplexityWindows(job.ids.length, job.context, job.stride);
  let nll = 0;
  let numScored = 0;
  // LLAMA_SEQUENCES windows at a time, one per sequence (node-llama-cpp batches them into one decode);
  // each window runs from position 0 in an emptied sequence, as each is a request of its own in Duet.
  for (let i = 0; i < windows.length; i += LLAMA_SEQUENCES) {
    const group = windows.slice(i, i + LLAMA_SEQUENCES);
    const sums = await Promise.all(group.map((w, j) => scoreWindow(sequences[j]!, job.ids, w)));
    for (const s of sums) {
      nll += s.nll;
      numScored += s.numScored;
    }
  }
  const seconds = (performance.now() - started) / 1000;
  await context.dispose();
  await model.dispose();
  const meanNll = nll / numScored;
  return { perplexity: Math.exp(meanNll), meanNll, numScoredTokens: numScored, loadS, seconds };
}

const job = JSON.parse(readFileSync(0, 'utf8')) as PerplexityJob;
const result = job.engine === 'duet' ? await runDuet(job) : await runLlama(job);
console.log(`RESULT ${JSON.stringify(result)}`);
process.exit(0);
