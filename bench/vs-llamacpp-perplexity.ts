// `bench:vs-llamacpp --perplexity` (issue 15, item 3): perplexity of one trained checkpoint in Duet and in
// llama.cpp, side by side. The checkpoint (default: the embedded speaking model) is written as GGUF F32,
// BF16 and Q8_0 by bench/gguf with its own tokenizer; the text (default: its held-out KJV text) is
// tokenized once with Duet's tokenizer and the same ids go to every engine, scored in the sliding windows
// of `duet eval perplexity` (perplexityWindows in src/cli/eval.ts: windows of --context tokens every
// --stride tokens, each scoring the tokens after the previous window's end). Each row runs in a child
// process (bench/vs-llamacpp-perplexity-child.ts); rows: Duet float32 / bfloat16 / w8a8
// against llama.cpp F32 / BF16 / Q8_0, each with its relative distance to Duet float32 and to llama.cpp
// F32. Exit status 1 when Duet float32 and llama.cpp F32 differ by more than 0.1% (issue 15, acceptance 3).
//
//   npm run bench:vs-llamacpp -- --perplexity [--model assets/default-model]
//       [--file tools/speaking-model/heldout.txt] [--context 128] [--stride 64] [--max-tokens N]
//       [--threads 1] [--engines duet,llama.cpp] [--llama-kv-type f16|f32] [--cache-dir DIR]
//
// One thread by default: threads change no figure here (each dot product is one thread's), and on a
// shared machine llama.cpp's spin-waiting thread pool ran 10x slower with two than with one.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkWindowShape, perplexityWindows, readEvalText } from '../src/cli/eval.js';
import type { DeepseekConfig } from '../src/config/model-config.js';
import { loadDeepseekConfig } from '../src/loader/hf-config.js';
import { openWeights } from '../src/loader/model-folder.js';
import { deepseekCheckpointLayout } from '../src/models/deepseek-weights.js';
import { loadTokenizer } from '../src/tokenizer/tokenizer.js';
import { parseBenchArgs, refuseBenchFlag } from './bench-args.js';
import { type Deepseek2FileType, writeDeepseek2Gguf } from './gguf/deepseek2-gguf.js';
import type { GgufValue } from './gguf/gguf-file.js';
import { byteLevelBpeVocab, placeholderVocab } from './gguf/gguf-vocab.js';
import type { PerplexityChildResult, PerplexityJob } from './vs-llamacpp-perplexity-child.js';
import { writeOnce } from './vs-llamacpp-weights.js';

/** Duet float32 and llama.cpp F32 agree within this relative distance (issue 15, acceptance 3). */
const F32_AGREEMENT = 0.001;

const ENGINES = ['duet', 'llama.cpp'] as const;
type EngineName = (typeof ENGINES)[number];

/** A bad flag: the message says which and what is allowed. */
function flagError(message: string): never {
  return refuseBenchFlag(import.meta.url, message);
}

function intFlag(name: string, value: string | undefined, fallback: number, min: number): number {
  const n = Number(value ?? fallback);
  if (!Number.isSafeInteger(n) || n < min) flagError(`--${name} must be an integer ≥ ${min}, got "${value}"`);
  return n;
}

/** The tokenizer block of `modelDir`'s GGUF: its byte-level BPE tokenizer.json, or a placeholder. */
function vocabOf(modelDir: string, config: DeepseekConfig): ReadonlyMap<string, GgufValue> {
  const tokenizerConfig = join(modelDir, 'tokenizer_config.json');
  const addBos =
    existsSync(tokenizerConfig) &&
    (JSON.parse(readFileSync(tokenizerConfig, 'utf8')) as { add_bos_token?: unknown }).add_bos_token === true;
  const options = {
    vocabSize: config.vocabSize,
    bosTokenId: config.bosTokenId,
    eosTokenId: config.eosTokenIds[0] ?? null,
    addBos,
  };
  const tokenizerJson = join(modelDir, 'tokenizer.json');
  if (!existsSync(tokenizerJson)) return placeholderVocab(options);
  return byteLevelBpeVocab(JSON.parse(readFileSync(tokenizerJson, 'utf8')), options);
}

/** The GGUF files of the checkpoint in `modelDir`, written once into `dir` (keyed by the files' hash). */
function writeCheckpointGgufs(
  dir: string,
  modelDir: string,
  config: DeepseekConfig,
): Record<Deepseek2FileType, string> {
  mkdirSync(dir, { recursive: true });
  const vocab = vocabOf(modelDir, config);
  const out = {} as Record<Deepseek2FileType, string>;
  for (const fileType of ['F32', 'BF16', 'Q8_0'] as const) {
    out[fileType] = join(dir, `model-${fileType}.gguf`);
    writeOnce(out[fileType], (tmp) => {
      const source = openWeights(modelDir, config, deepseekCheckpointLayout(config), 'safetensors');
      try {
        writeDeepseek2Gguf(tmp, config, source, fileType, vocab);
      } finally {
        source.close();
      }
    });
  }
  return out;
}

/** A hash of what the GGUF files are made from: config, weights and tokenizer files of the folder. */
function checkpointKey(modelDir: string): string {
  const h = createHash('sha256');
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
    const p = join(modelDir, f);
    h.update(f);
    if (existsSync(p)) h.update(readFileSync(p));
  }
  return h.digest('hex').slice(0, 16);
}

const CHILD = fileURLToPath(new URL('./vs-llamacpp-perplexity-child.js', import.meta.url));

function runChild(label: string, job: PerplexityJob): PerplexityChildResult {
  const out = execFileSync(process.execPath, [CHILD], {
    input: JSON.stringify(job),
    encoding: 'utf8',
    maxBuffer: 64 * 2 ** 20,
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (line === undefined) throw new Error(`bench:vs-llamacpp --perplexity: ${label} printed no result`);
  const r = JSON.parse(line.slice('RESULT '.length)) as PerplexityChildResult;
  console.log(
    `  ${label}: perplexity ${r.perplexity.toFixed(4)} over ${r.numScoredTokens} tokens; load ` +
      `${r.loadS.toFixed(1)} s, scoring ${r.seconds.toFixed(1)} s`,
  );
  return r;
}

/** Relative distance of a to b, as a signed percentage. */
function relative(a: number, b: number | undefined): string {
  if (b === undefined) return '—';
  const d = (a / b - 1) * 100;
  // Below 0.001% the digits that differ are in the exponent's reach only.
  const digits = d === 0 || Math.abs(d) >= 1e-3 ? d.toFixed(4) : d.toExponential(1);
  return `${d >= 0 ? '+' : ''}${digits}%`;
}

/** Runs the perplexity comparison with the flags in `argv` (the process's arguments after the script). */
export async function runPerplexityBench(argv: readonly string[]): Promise<void> {
  const { values } = parseBenchArgs(import.meta.url, {
    args: [...argv],
    options: {
      perplexity: { type: 'boolean' },
      model: { type: 'string', default: 'assets/default-model' },
      file: { type: 'string', default: 'tools/speaking-model/heldout.txt' },
      context: { type: 'string', default: '128' },
      stride: { type: 'string', default: '64' },
      'max-tokens': { type: 'string' },
      threads: { type: 'string', default: '1' },
      engines: { type: 'string', default: ENGINES.join(',') },
      'llama-kv-type': { type: 'string', default: 'f16' },
      'cache-dir': { type: 'string' },
    },
  });
  const context = intFlag('context', values.context, 128, 2);
  const stride = intFlag('stride', values.stride, 64, 1);
  checkWindowShape(context, stride);
  const threads = intFlag('threads', values.threads, 1, 1);
  const engines = values.engines!.split(',').map((e) => {
    if (!(ENGINES as readonly string[]).includes(e)) {
      flagError(`--engines takes a comma-separated list of ${ENGINES.join(', ')}; got "${e}"`);
    }
    return e as EngineName;
  });
  const kvType = values['llama-kv-type'];
  if (kvType !== 'f16' && kvType !== 'f32') flagError(`--llama-kv-type takes f16 or f32, got "${kvType}"`);
  const modelDir = values.model!;
  const config = loadDeepseekConfig(modelDir);

  // Tokenized once, by Duet (BOS first, as `duet eval perplexity` does): every engine scores these ids.
  let ids = loadTokenizer(modelDir).encode(readEvalText(values.file!));
  if (values['max-tokens'] !== undefined) {
    ids = ids.slice(0, intFlag('max-tokens', values['max-tokens'], 0, 2));
  }
  const numWindows = perplexityWindows(ids.length, context, stride).length;
  console.log(
    `perplexity of ${modelDir} on ${values.file}: ${ids.length} tokens (Duet's tokenizer), context ` +
      `${context}, stride ${stride}, ${numWindows} windows; ${threads} thread(s) per engine`,
  );

  const duetJob = {
    engine: 'duet' as const,
    model: modelDir,
    quantization: null,
    llamaKvType: 'F16' as const,
    threads,
    ids,
    context,
    stride,
  };
  const rows: { label: string; job: PerplexityJob }[] = [];
  if (engines.includes('duet')) {
    rows.push({ label: 'Duet float32', job: { ...duetJob, dtype: 'float32' } });
    rows.push({ label: 'Duet bfloat16', job: { ...duetJob, dtype: 'bfloat16' } });
    rows.push({ label: 'Duet w8a8', job: { ...duetJob, dtype: 'float32', quantization: 'w8a8' } });
  }
  if (engines.includes('llama.cpp')) {
    const dir = resolve(
      values['cache-dir'] ?? join(tmpdir(), 'duet-vs-llamacpp'),
      `ppl-${checkpointKey(modelDir)}`,
    );
    const t = performance.now();
    const gguf = writeCheckpointGgufs(dir, modelDir, config);
    console.log(`GGUF files in ${dir} (${((performance.now() - t) / 1000).toFixed(1)} s; written once)`);
    for (const fileType of ['F32', 'BF16', 'Q8_0'] as const) {
      rows.push({
        label: `llama.cpp ${fileType}`,
        job: {
          ...duetJob,
          engine: 'llama.cpp',
          model: gguf[fileType],
          dtype: 'float32',
          llamaKvType: kvType === 'f32' ? 'F32' : 'F16',
        },
      });
    }
  }

  const results = new Map<string, PerplexityChildResult>();
  for (const r of rows) results.set(r.label, runChild(r.label, r.job));
  report(results, { ids, context, stride, kvType, file: values.file!, modelDir });
}

/** Prints the table and the acceptance lines; sets the exit status when float32 and F32 disagree. */
function report(
  results: ReadonlyMap<string, PerplexityChildResult>,
  o: {
    ids: readonly number[];
    context: number;
    stride: number;
    kvType: string;
    file: string;
    modelDir: string;
  },
): void {
  const duet = results.get('Duet float32')?.perplexity;
  const llama = results.get('llama.cpp F32')?.perplexity;
  const first = [...results.values()][0];
  const scored = first?.numScoredTokens ?? 0;
  console.log(
    `\n| perplexity, ${scored} tokens, context ${o.context} / stride ${o.stride} | perplexity | ` +
      'vs Duet float32 | vs llama.cpp F32 | scored tokens/s |',
  );
  console.log('|---|---:|---:|---:|---:|');
  for (const [label, r] of results) {
    if (r.numScoredTokens !== scored) {
      throw new Error(
        `bench:vs-llamacpp --perplexity: ${label} scored ${r.numScoredTokens} tokens, not ${scored}`,
      );
    }
    console.log(
      `| ${label} | ${r.perplexity.toFixed(4)} | ${relative(r.perplexity, duet)} | ` +
        `${relative(r.perplexity, llama)} | ${(r.numScoredTokens / r.seconds).toFixed(0)} |`,
    );
  }
  if (llama !== undefined) console.log(`(llama.cpp's KV cache: ${o.kvType.toUpperCase()})`);
  const reference = pytorchReference(o);
  if (reference !== null) {
    console.log(
      `PyTorch float32 (tools/speaking-model/export.py, eval.json): ${reference.toFixed(4)}` +
        (duet !== undefined ? `; Duet float32 ${relative(duet, reference)}` : ''),
    );
  }
  if (duet !== undefined && llama !== undefined) {
    const d = Math.abs(duet / llama - 1);
    const ok = d <= F32_AGREEMENT;
    console.log(
      `Duet float32 vs llama.cpp F32: ${(d * 100).toPrecision(3)}% apart (limit ${F32_AGREEMENT * 100}%): ` +
        (ok ? 'agree' : 'DISAGREE'),
    );
    if (!ok) process.exitCode = 1;
  }
  const w8a8 = results.get('Duet w8a8')?.perplexity;
  const q8 = results.get('llama.cpp Q8_0')?.perplexity;
  if (w8a8 !== undefined && duet !== undefined) {
    const d = Math.abs(w8a8 / duet - 1);
    const q8d = q8 !== undefined && llama !== undefined ? Math.abs(q8 / llama - 1) : undefined;
    // Issue 15, acceptance 3: within 1% of float32, and no farther from it than llama.cpp Q8_0 from F32.
    const ok = d <= 0.01 && (q8d === undefined || d <= q8d);
    console.log(
      `Duet w8a8 vs Duet float32: ${(d * 100).toPrecision(3)}% apart (limit 1%` +
        (q8d !== undefined ? `, and llama.cpp Q8_0 vs F32: ${(q8d * 100).toPrecision(3)}%` : '') +
        `): ${ok ? 'within' : 'OUTSIDE'}`,
    );
  }
}

/** The PyTorch perplexity in the model folder's eval.json when it scored this text in these windows. */
function pytorchReference(o: {
  ids: readonly number[];
  context: number;
  stride: number;
  modelDir: string;
}): number | null {
  const path = join(o.modelDir, 'eval.json');
  if (!existsSync(path)) return null;
  const e = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const same =
    e.eval_context === o.context &&
    e.eval_stride === o.stride &&
    e.heldout_tokens_scored === o.ids.length - 1;
  return same && typeof e.heldout_perplexity === 'number' ? e.heldout_perplexity : null;
}
