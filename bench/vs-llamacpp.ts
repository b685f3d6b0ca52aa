// Duet against llama.cpp on the same weights (issue 11, item 5). Writes a model's seeded dummy weights once
// as a Hugging Face folder (BF16 safetensors, what Duet loads) and as GGUF files (BF16 and Q8_0, written
// by bench/gguf, what llama.cpp loads), then runs each engine in a child process of its own
// (bench/vs-llamacpp-child.ts), alternating engines round by round, with the same threads and the same
// token ids, and prints tokens/s (prefill, decode at 1 / 8 / 32 sequences, total), load time and peak RSS
// per engine with Duet / llama.cpp ratios (Duet W8A8 loads a pre-quantized compressed-tensors checkpoint of
// the same weights, int8 LM head included as in Q8_0; a load-only row times `--quantization w8a8` on the
// BF16 folder), and the accuracy of llama.cpp Q8_0 against Duet float32 on one
// prompt (argmax agreement and mean |Δ logprob| of the prompt's own next tokens). Where the oneDNN platform
// package (packages/platform-onednn) is built, Duet BF16 runs on it too, computing in float32 (dtype auto:
// float32-grade) and in bf16 (dtype bfloat16: activations rounded to bf16 as llama.cpp's BF16 does), and
// Duet W8A8 on its int8 matmul; every Duet row also reports the share of its prefill and decode step time
// spent outside matrix products. Each onednn row (but bf16 compute) has two more with the prepared-weight
// cache (--weight-cache-dir, in <cache>/weight-cache): `weight cache written` (a first load: packs and
// writes it) and `weight cache mapped` (the next: maps it; W8A8 with its speeds); a load table puts each
// onednn row's load beside llama.cpp's on the same weights (issue 11, acceptance 4). Choose both cache rows
// (e.g. --rows 'Q8_0,onednn W8A8'): the mapped row alone finds no cache in the first round.
//
//   npm run bench:vs-llamacpp -- [--model assets/configs/deepseek-v2-lite] [--hf-overrides '{"num_hidden_layers":4}']
//       [--threads 2] [--prompt-len 512] [--decode-tokens 32] [--batches 1,8,32] [--rounds 1] [--runs 2]
//       [--accuracy-len 512] [--accuracy-prompts 1] [--w8a8-recipe rtn] [--smooth-alpha 0.5] [--w8a8-act-group token|G,...] [--validate-f32] [--cache-dir DIR] [--rows 'Q8_0,W8A8'] [--smoke]
//
// --rows: run only the rows whose label contains one of these comma-separated words (case-insensitive);
// ratio lines need both of their rows, the float32 accuracy reference runs when a chosen row scores accuracy.
//
// --accuracy-prompts N: score accuracy on N different seeded prompts of --accuracy-len positions each (the first
// is the one-prompt default's) and report each engine's mean and range over them, and the per-prompt
// difference of Duet W8A8 and llama.cpp Q8_0 (argmax agreement varies with the prompt by more than the two
// differ, so one prompt settles little).
//
// --w8a8-recipe: how the Duet W8A8 row's checkpoint is made from the BF16 weights: `rtn` (per-channel
// round to nearest, folder hf-w8a8) or `smoothquant` (SmoothQuant smoothing with strength --smooth-alpha,
// calibrated on 4 random-token prompts of 128 tokens unlike the accuracy prompts, then the same rounding;
// folder hf-w8a8-smoothquant-a<α>; docs/int8.md). The row's label names the recipe.
// --w8a8-act-group G[,G2,...]: the Duet W8A8 checkpoint declares its activations per token and group of G k
// values (compressed-tensors `strategy: "group"`; G a multiple of 4 from 4 to 256; `token`: per token, the
// default) instead of per token: the same int8 weights (the per-token folder's file linked when present),
// folder <recipe folder>-g<G>. The row's label names the activation scheme. Each further scheme in the
// list adds a W8A8 row of its own (speed and accuracy, against the same float32 reference).
//
// --smoke: a tiny config (hidden 128, 3 layers, vocab 1024) and short runs, with --validate-f32: llama.cpp
// F32 against Duet float32 checks the GGUF writer (MLA layout, rope, MoE routing) in seconds.
// --perplexity: the quality comparison instead (bench/vs-llamacpp-perplexity.ts, its own flags).

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ACT_GROUP_SIZE_RULE, isActGroupSize } from '../src/kernels/int8-quant.js';
import { applyHfOverrides, parseDeepseekConfig } from '../src/loader/hf-config.js';
import { numParameters } from '../src/models/deepseek-weights.js';
import { parseBenchArgs, refuseBenchFlag } from './bench-args.js';
import type { CalibrateJob } from './vs-llamacpp-calibrate.js';
import type { AccuracyTrace, ChildJob, ChildResult } from './vs-llamacpp-child.js';
import { runPerplexityBench } from './vs-llamacpp-perplexity.js';
import {
  describeActGroup,
  describeW8A8Recipe,
  type W8A8ActGroup,
  type W8A8Recipe,
  writeGgufModel,
  writeHfFolder,
  writeW8A8Folder,
} from './vs-llamacpp-weights.js';

if (process.argv.includes('--perplexity')) {
  await runPerplexityBench(process.argv.slice(2));
  process.exit();
}

/** SmoothQuant's calibration: prompts of random token ids (seeds unlike the accuracy prompts'). */
const CALIBRATION_PROMPTS = 4;
const CALIBRATION_LEN = 128;

/** The tiny config of --smoke: every dimension a multiple of 32, so Q8_0 quantizes every matrix. */
const SMOKE_OVERRIDES = {
  num_hidden_layers: 3,
  hidden_size: 128,
  intermediate_size: 256,
  moe_intermediate_size: 64,
  n_routed_experts: 8,
  num_experts_per_tok: 2,
  n_shared_experts: 1,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  kv_lora_rank: 64,
  qk_nope_head_dim: 32,
  qk_rope_head_dim: 32,
  v_head_dim: 32,
  vocab_size: 1024,
  bos_token_id: 0,
  eos_token_id: 1,
};

const { values } = parseBenchArgs(import.meta.url, {
  options: {
    model: { type: 'string', default: 'assets/configs/deepseek-v2-lite' },
    'hf-overrides': { type: 'string' },
    threads: { type: 'string', default: '2' },
    'prompt-len': { type: 'string' },
    'decode-tokens': { type: 'string' },
    batches: { type: 'string' },
    rounds: { type: 'string', default: '1' },
    runs: { type: 'string' },
    'accuracy-len': { type: 'string' },
    'accuracy-prompts': { type: 'string', default: '1' },
    'validate-f32': { type: 'boolean', default: false },
    'cache-dir': { type: 'string' },
    seed: { type: 'string', default: '0' },
    smoke: { type: 'boolean', default: false },
    rows: { type: 'string' },
    'w8a8-recipe': { type: 'string', default: 'rtn' },
    'smooth-alpha': { type: 'string', default: '0.5' },
    'w8a8-act-group': { type: 'string' },
  },
});

const smoke = values.smoke === true;
/** An integer flag of at least `min`, or a clear error naming it. */
function intFlag(name: string, value: string | undefined, fallback: number, min = 1): number {
  const n = Number(value ?? fallback);
  if (!Number.isSafeInteger(n) || n < min) {
    refuseBenchFlag(import.meta.url, `--${name} must be an integer ≥ ${min}, got "${value}"`);
  }
  return n;
}
const threads = intFlag('threads', values.threads, 2);
const promptLen = intFlag('prompt-len', values['prompt-len'], smoke ? 64 : 512);
const decodeTokens = intFlag('decode-tokens', values['decode-tokens'], smoke ? 8 : 32);
const rounds = intFlag('rounds', values.rounds, 1);
const runs = intFlag('runs', values.runs, smoke ? 1 : 2);
const accuracyLen = intFlag('accuracy-len', values['accuracy-len'], smoke ? 64 : 512);
const numAccuracyPrompts = intFlag('accuracy-prompts', values['accuracy-prompts'], 1);
const seed = intFlag('seed', values.seed, 0, 0);
const batches = (values.batches ?? (smoke ? '1,4' : '1,8,32'))
  .split(',')
  .map((b) => intFlag('batches', b, 1));
const recipeKind = values['w8a8-recipe'];
if (recipeKind !== 'rtn' && recipeKind !== 'smoothquant') {
  refuseBenchFlag(import.meta.url, `--w8a8-recipe must be rtn or smoothquant, got "${recipeKind}"`);
}
const smoothAlpha = Number(values['smooth-alpha']);
if (!(smoothAlpha >= 0 && smoothAlpha <= 1)) {
  refuseBenchFlag(
    import.meta.url,
    `--smooth-alpha must be a number in [0, 1], got "${values['smooth-alpha']}"`,
  );
}
/** --w8a8-act-group: the W8A8 rows' activation schemes, the first the main row's (null: per token). */
const actGroupFlags = [...new Set((values['w8a8-act-group'] ?? 'token').split(','))];
const actGroups: W8A8ActGroup[] = actGroupFlags.map((v) => {
  if (v === 'token') return null;
  const g = Number(v);
  if (!isActGroupSize(g)) {
    refuseBenchFlag(
      import.meta.url,
      `--w8a8-act-group takes "token" or group sizes, each ${ACT_GROUP_SIZE_RULE}; got "${v}"`,
    );
  }
  return g;
});
const actGroup = actGroups[0]!;
const validateF32 = smoke || values['validate-f32'] === true;

let overrides: Record<string, unknown> = smoke ? SMOKE_OVERRIDES : { num_hidden_layers: 4 };
if (values['hf-overrides'] !== undefined) {
  let parsed: unknown;
  try {
    parsed = JSON.parse(values['hf-overrides']);
  } catch (e) {
    refuseBenchFlag(import.meta.url, `--hf-overrides is not JSON (${(e as Error).message})`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    refuseBenchFlag(import.meta.url, `--hf-overrides takes a JSON object, got ${values['hf-overrides']}`);
  }
  overrides = { ...overrides, ...(parsed as Record<string, unknown>) };
}
const rawConfig = JSON.parse(readFileSync(join(values.model!, 'config.json'), 'utf8')) as Record<
  string,
  unknown
>;
const configJson = applyHfOverrides(rawConfig, overrides);
const config = parseDeepseekConfig(configJson);

// The cache folder is keyed by the config and seed: the same model is written once.
const key = createHash('sha256').update(JSON.stringify({ configJson, seed })).digest('hex').slice(0, 16);
const cacheDir = resolve(values['cache-dir'] ?? join(tmpdir(), 'duet-vs-llamacpp'), key);
const hfDir = join(cacheDir, 'hf');
const w8a8TokenDir = join(cacheDir, recipeKind === 'rtn' ? 'hf-w8a8' : `hf-w8a8-smoothquant-a${smoothAlpha}`);
const w8a8DirOf = (g: W8A8ActGroup): string => (g === null ? w8a8TokenDir : `${w8a8TokenDir}-g${g}`);
const w8a8Dir = w8a8DirOf(actGroup);

console.log(
  `model: ${values.model} with ${JSON.stringify(overrides)}: ${(numParameters(config) / 1e9).toFixed(3)} B ` +
    `parameters, vocab ${config.vocabSize}; ${threads} threads; cache ${cacheDir}`,
);
const t = performance.now();
writeHfFolder(hfDir, configJson, config, seed);
const w8a8Recipe = await w8a8RecipeOf(recipeKind, smoothAlpha);
// The folders differ in config.json only: the first one written gives the others its weights file.
let weightsFrom = w8a8TokenDir;
for (const g of actGroups) {
  writeW8A8Folder(w8a8DirOf(g), configJson, config, seed, w8a8Recipe, g, weightsFrom);
  if (!existsSync(join(weightsFrom, 'model.safetensors'))) weightsFrom = w8a8DirOf(g);
}
/** A Duet W8A8 row's label: it names the recipe of its checkpoint and its activation scheme. */
const w8a8LabelOf = (g: W8A8ActGroup): string =>
  `Duet W8A8 (${describeW8A8Recipe(w8a8Recipe)}, ${describeActGroup(g)})`;
const W8A8_SCHEME = `${describeW8A8Recipe(w8a8Recipe)}, ${describeActGroup(actGroup)}`;
const W8A8_LABEL = w8a8LabelOf(actGroup);
const ONEDNN_W8A8_LABEL = `Duet onednn W8A8 (${W8A8_SCHEME})`;
const gguf = {
  BF16: writeGgufModel(cacheDir, config, seed, 'BF16'),
  Q8_0: writeGgufModel(cacheDir, config, seed, 'Q8_0'),
  F32: validateF32 ? writeGgufModel(cacheDir, config, seed, 'F32') : null,
};
console.log(`weights ready in ${((performance.now() - t) / 1000).toFixed(1)} s (written once per config)`);

/**
 * The recipe of the W8A8 folder; for SmoothQuant, the activation maxima from the calibration child (run once
 * per cache folder, its result kept as smoothquant-calibration.json), unless the folder is written already.
 */
async function w8a8RecipeOf(kind: 'rtn' | 'smoothquant', alpha: number): Promise<W8A8Recipe> {
  if (kind === 'rtn') return { kind };
  const calibration = `${CALIBRATION_PROMPTS} random-token prompts of ${CALIBRATION_LEN} tokens`;
  if (existsSync(join(w8a8Dir, 'model.safetensors')) || existsSync(join(w8a8TokenDir, 'model.safetensors')))
    return { kind, alpha, calibration, normMaxima: new Map() };
  const out = join(cacheDir, 'smoothquant-calibration.json');
  if (!existsSync(out)) {
    const job: CalibrateJob = {
      hfDir,
      out,
      threads,
      prompts: Array.from({ length: CALIBRATION_PROMPTS }, (_, i) => randomTokens(5000 + i, CALIBRATION_LEN)),
    };
    execFileSync(
      process.execPath,
      [fileURLToPath(new URL('./vs-llamacpp-calibrate.js', import.meta.url)), JSON.stringify(job)],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
  }
  const maxima = JSON.parse(readFileSync(out, 'utf8')) as Record<string, number[]>;
  return {
    kind,
    alpha,
    calibration,
    normMaxima: new Map(Object.entries(maxima).map(([k, v]) => [k, Float32Array.from(v)])),
  };
}

/** Seeded pseudo-random token ids in [0, vocab): the same ids go to both engines. */
function randomTokens(s: number, n: number): number[] {
  let x = (s * 2654435761 + 1) >>> 0;
  return Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % config.vocabSize;
  });
}
const maxBatch = Math.max(...batches);
const baseJob = {
  threads,
  prefillPrompt: randomTokens(1, promptLen),
  decodePrompts: Array.from({ length: maxBatch }, (_, i) => randomTokens(100 + i, 16)),
  decodeTokens,
  batches,
  runs,
  quantization: null,
};
// Positions scored: accuracyLen, so each prompt is one token longer.
const accuracyPrompts = Array.from({ length: numAccuracyPrompts }, (_, j) =>
  randomTokens(7 + j, accuracyLen + 1),
);

const CHILD = fileURLToPath(new URL('./vs-llamacpp-child.js', import.meta.url));

function runChild(label: string, job: ChildJob): ChildResult {
  const started = performance.now();
  const out = execFileSync(process.execPath, [CHILD, JSON.stringify(job)], {
    encoding: 'utf8',
    maxBuffer: 256 * 2 ** 20,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = out.split('\n').find((l) => l.startsWith('RESULT '));
  if (line === undefined) throw new Error(`bench:vs-llamacpp: ${label} printed no result`);
  const r = JSON.parse(line.slice('RESULT '.length)) as ChildResult;
  const speeds = Object.entries(r.decodeTokS).map(([b, v]) => `decode ${b} seq ${v.toFixed(1)}`);
  console.log(
    `  ${label}: done in ${((performance.now() - started) / 1000).toFixed(1)} s; load ${r.loadS.toFixed(1)} s` +
      (r.prefillTokS !== null ? `, prefill ${r.prefillTokS.toFixed(1)}` : '') +
      (speeds.length > 0 ? `, ${speeds.join(', ')} tok/s` : '') +
      `, peak RSS ${r.peakRssMiB.toFixed(0)} MiB`,
  );
  return r;
}

/** One row of the speed table: an engine on one weight format. */
interface Contender {
  readonly label: string;
  readonly job: ChildJob;
}
const contenders: Contender[] = [
  {
    label: 'llama.cpp BF16',
    job: {
      ...baseJob,
      engine: 'llama.cpp',
      model: gguf.BF16,
      dtype: 'auto',
      perf: true,
      accuracyPrompts: null,
    },
  },
  {
    label: 'Duet BF16',
    job: { ...baseJob, engine: 'duet', model: hfDir, dtype: 'auto', perf: true, accuracyPrompts: null },
  },
  {
    label: 'llama.cpp Q8_0',
    job: { ...baseJob, engine: 'llama.cpp', model: gguf.Q8_0, dtype: 'auto', perf: true, accuracyPrompts },
  },
  // The main W8A8 row, then one per further --w8a8-act-group scheme.
  ...actGroups.map((g) => ({
    label: w8a8LabelOf(g),
    job: {
      ...baseJob,
      engine: 'duet' as const,
      model: w8a8DirOf(g),
      dtype: 'auto' as const,
      perf: true,
      accuracyPrompts,
    },
  })),
  {
    // The same int8 weights but the LM head, quantized from the BF16 folder while loading: load time only.
    label: 'Duet W8A8 quantize-on-load',
    job: {
      ...baseJob,
      engine: 'duet',
      model: hfDir,
      dtype: 'auto',
      quantization: 'w8a8',
      perf: false,
      loadOnly: true,
      accuracyPrompts: null,
    },
  },
];

/** Why the oneDNN platform package cannot run here, or null when it can. */
async function whyNoOnednn(): Promise<string | null> {
  const entry = fileURLToPath(new URL('../../packages/platform-onednn/dist/index.js', import.meta.url));
  if (!existsSync(entry)) return `${entry} is not built`;
  const { platformPlugin } = (await import(pathToFileURL(entry).href)) as {
    platformPlugin: { probe(): Promise<{ available: boolean; reason: string }> };
  };
  const probe = await platformPlugin.probe();
  return probe.available ? null : probe.reason;
}
const noOnednn = await whyNoOnednn();
if (noOnednn !== null) console.log(`Duet onednn: skipped — ${noOnednn}`);
else {
  // BF16 weights computed in float32 (dtype auto: float32-grade) and in bf16 (dtype bfloat16, as vLLM's
  // --dtype bfloat16 and llama.cpp's BF16 compute); W8A8 as the Duet W8A8 row, on the oneDNN int8 matmul.
  for (const [compute, dtype] of [
    ['float32', 'auto'],
    ['bf16', 'bfloat16'],
  ] as const) {
    contenders.push({
      label: `Duet onednn BF16 (${compute} compute)`,
      job: {
        ...baseJob,
        engine: 'duet',
        model: hfDir,
        dtype,
        perf: true,
        accuracyPrompts: null,
        platform: 'onednn',
      },
    });
  }
  const w8a8 = contenders.find((c) => c.label === W8A8_LABEL);
  if (w8a8 !== undefined) {
    contenders.push({
      label: ONEDNN_W8A8_LABEL,
      job: { ...w8a8.job, accuracyPrompts: null, platform: 'onednn' },
    });
  }
  // The prepared-weight cache (--weight-cache-dir, docs/platforms.md): in each round a first load packs the
  // weights and writes the cache (load only), then a second maps it (W8A8: with its speeds, computed on the
  // mapped weights).
  const weightCacheDir = join(cacheDir, 'weight-cache');
  for (const base of contenders.filter(
    (c) => c.job.platform === 'onednn' && !c.label.includes('bf16 compute'),
  )) {
    const isW8A8 = base.label === ONEDNN_W8A8_LABEL;
    contenders.push(
      {
        label: `${base.label}, weight cache written`,
        job: { ...base.job, perf: false, loadOnly: true, weightCacheDir, clearWeightCache: true },
      },
      {
        label: `${base.label}, weight cache mapped`,
        job: { ...base.job, perf: isW8A8, loadOnly: !isW8A8, weightCacheDir },
      },
    );
  }
}

/** --rows: the label words a row must contain one of (null: every row). */
const rowWords =
  values.rows === undefined
    ? null
    : values.rows
        .split(',')
        .map((w) => w.trim().toLowerCase())
        .filter((w) => w !== '');
if (rowWords !== null) {
  const chosen = contenders.filter((c) => rowWords.some((w) => c.label.toLowerCase().includes(w)));
  if (chosen.length === 0) {
    refuseBenchFlag(
      import.meta.url,
      `--rows ${values.rows} matches no row; rows: ${contenders.map((c) => c.label).join(', ')}`,
    );
  }
  contenders.splice(0, contenders.length, ...chosen);
}
const scoresAccuracy = contenders.some((c) => c.job.accuracyPrompts !== null);

/** The best (fastest) of each contender's rounds. */
const best = new Map<string, ChildResult>();
const accuracyTraces = new Map<string, AccuracyTrace[]>();
for (let r = 0; r < rounds; r++) {
  console.log(`round ${r + 1} of ${rounds}:`);
  for (const c of contenders) {
    // The accuracy prompt is scored once, in the last round.
    const job = r + 1 === rounds ? c.job : { ...c.job, accuracyPrompts: null };
    const res = runChild(c.label, job);
    if (res.accuracy !== null) accuracyTraces.set(c.label, res.accuracy);
    const prev = best.get(c.label);
    best.set(c.label, prev === undefined ? res : bestOf(prev, res));
  }
}
const reference = !scoresAccuracy
  ? null
  : runChild('Duet float32 (accuracy reference)', {
      ...baseJob,
      engine: 'duet',
      model: hfDir,
      dtype: 'float32',
      perf: false,
      accuracyPrompts,
    });
if (gguf.F32 !== null && reference !== null) {
  const f32 = runChild('llama.cpp F32 (writer check)', {
    ...baseJob,
    engine: 'llama.cpp',
    model: gguf.F32,
    dtype: 'auto',
    perf: false,
    accuracyPrompts,
  });
  accuracyTraces.set('llama.cpp F32', f32.accuracy!);
}

function bestOf(a: ChildResult, b: ChildResult): ChildResult {
  const decode: Record<string, number> = {};
  for (const k of Object.keys(a.decodeTokS)) decode[k] = Math.max(a.decodeTokS[k]!, b.decodeTokS[k] ?? 0);
  return {
    loadS: Math.min(a.loadS, b.loadS),
    prefillTokS: Math.max(a.prefillTokS ?? 0, b.prefillTokS ?? 0),
    decodeTokS: decode,
    peakRssMiB: Math.max(a.peakRssMiB, b.peakRssMiB),
    accuracy: null,
    ...(b.matmulShare ? { matmulShare: b.matmulShare } : {}),
  };
}

// ---- Report ----

const cols = [`prefill ${promptLen}`, ...batches.map((b) => `decode ${b} seq`), 'load s', 'peak RSS MiB'];
function row(r: ChildResult): number[] {
  return [r.prefillTokS ?? 0, ...batches.map((b) => r.decodeTokS[b] ?? 0), r.loadS, r.peakRssMiB];
}
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(2));
console.log(`\n| tokens/s (total), ${threads} threads | ${cols.join(' | ')} |`);
console.log(`|---|${cols.map(() => '---:').join('|')}|`);
for (const c of contenders) {
  const cells = row(best.get(c.label)!).map(fmt);
  // A load-only row has no speeds: only its load time (and the RSS of loading).
  if (c.job.loadOnly === true) cells.splice(0, 1 + batches.length, ...Array(1 + batches.length).fill('—'));
  console.log(`| ${c.label} | ${cells.join(' | ')} |`);
}
/** Ratio rows: speed columns higher is better; load and RSS as plain ratios (lower is better). */
const ratios: [string, string][] = [
  ['Duet BF16', 'llama.cpp BF16'],
  ['Duet BF16', 'llama.cpp Q8_0'],
  ...(noOnednn === null
    ? ([
        ['Duet onednn BF16 (float32 compute)', 'llama.cpp BF16'],
        ['Duet onednn BF16 (bf16 compute)', 'llama.cpp BF16'],
        ['Duet onednn BF16 (float32 compute)', 'Duet BF16'],
        [ONEDNN_W8A8_LABEL, 'llama.cpp Q8_0'],
        [ONEDNN_W8A8_LABEL, W8A8_LABEL],
      ] as [string, string][])
    : []),
  [W8A8_LABEL, 'llama.cpp Q8_0'],
];
for (const [a, b] of ratios) {
  if (!best.has(a) || !best.has(b)) continue;
  const ra = row(best.get(a)!);
  const rb = row(best.get(b)!);
  console.log(`| ${a} / ${b} | ${ra.map((x, i) => `${(x / rb[i]!).toFixed(2)}x`).join(' | ')} |`);
}

// Load time beside llama.cpp's on the same weights (W8A8 rows against Q8_0, float rows against BF16): the
// onednn rows without the weight cache, writing it (a first load) and mapping it (the loads after).
const loadRows = contenders.filter((c) => c.label.startsWith('Duet') && c.job.platform === 'onednn');
if (loadRows.length > 0) {
  console.log('\n| load, best of the rounds | s | llama.cpp on the same weights | ratio |');
  console.log('|---|---:|---|---:|');
  for (const c of loadRows) {
    const r = best.get(c.label);
    const ref = c.label.includes('W8A8') ? 'llama.cpp Q8_0' : 'llama.cpp BF16';
    const l = best.get(ref);
    if (r === undefined) continue;
    const cell =
      l === undefined ? '— | —' : `${ref} ${l.loadS.toFixed(2)} s | ${(r.loadS / l.loadS).toFixed(2)}x`;
    console.log(`| ${c.label} | ${r.loadS.toFixed(2)} | ${cell} |`);
  }
}

// Load time has a floor no engine that copies its weights into memory of its own escapes: each new page of
// that memory costs a fault, and on a virtual machine whose host backs guest memory lazily the fault is
// slow. llama.cpp computes on the pages of its mapped GGUF file (the page cache, already present); Duet's
// kernels keep weights in their own layout, so its peak RSS is new memory (the onednn platform populates
// its weight pages in one call, which costs about 40% less than touching them page by page; WebAssembly
// memory can only be touched). Measured here, in this run.
const freshSPerGiB = freshMemorySecondsPerGiB();
console.log(
  `\nnew memory on this machine: ${freshSPerGiB.toFixed(2)} s per GiB to touch for the first time (4 KiB pages)`,
);
for (const c of contenders) {
  const r = best.get(c.label);
  if (r === undefined || !c.label.startsWith('Duet')) continue;
  const touch = (r.peakRssMiB / 1024) * freshSPerGiB;
  console.log(
    `  ${c.label}: load ${r.loadS.toFixed(1)} s; its peak RSS as new memory touched page by page ≈ ${touch.toFixed(1)} s`,
  );
}

/** Seconds per GiB to touch fresh memory, the best of three 256 MiB probes. */
function freshMemorySecondsPerGiB(): number {
  const bytes = 256 << 20;
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < 3; r++) {
    const probe = new Uint8Array(bytes); // large: mapped zero pages, none present yet
    const t = performance.now();
    for (let i = 0; i < bytes; i += 4096) probe[i] = 1;
    best = Math.min(best, (performance.now() - t) / 1000);
  }
  return best * ((1 << 30) / bytes);
}

console.log(
  `\n| share of step time outside matrix products | prefill ${promptLen} | ${batches.map((b) => `decode ${b} seq`).join(' | ')} |`,
);
console.log(`|---|---:|${batches.map(() => '---:').join('|')}|`);
for (const c of contenders) {
  const share = best.get(c.label)?.matmulShare;
  if (share === undefined) continue;
  const outside = [share.prefill, ...batches.map((b) => share.decode[b] ?? 0)].map(
    (x) => `${((1 - x) * 100).toFixed(1)}%`,
  );
  console.log(`| ${c.label} | ${outside.join(' | ')} |`);
}

/** Argmax agreement and mean |Δ logprob| of `trace` against the float32 reference. */
function compare(
  trace: AccuracyTrace,
  ref: AccuracyTrace,
): { agree: number; meanAbs: number; maxAbs: number } {
  let same = 0;
  let sum = 0;
  let max = 0;
  for (let i = 0; i < ref.argmax.length; i++) {
    if (trace.argmax[i] === ref.argmax[i]) same++;
    const d = Math.abs(trace.logprob[i]! - ref.logprob[i]!);
    sum += d;
    max = Math.max(max, d);
  }
  return { agree: same / ref.argmax.length, meanAbs: sum / ref.argmax.length, maxAbs: max };
}
const refs = reference?.accuracy ?? [];
/** Each prompt's comparison of an engine's traces with the reference's. */
function compareAll(label: string, traces: readonly AccuracyTrace[]): ReturnType<typeof compare>[] {
  return refs.map((r, j) => {
    const t = traces[j];
    if (t === undefined || t.argmax.length !== r.argmax.length) {
      throw new Error(
        `bench:vs-llamacpp: ${label} scored ${t?.argmax.length ?? 0} positions of prompt ${j}, not ${r.argmax.length}`,
      );
    }
    return compare(t, r);
  });
}
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
if (reference !== null) {
  console.log(
    `\naccuracy against Duet float32, ${refs[0]?.argmax.length ?? 0} positions of each of ${refs.length} prompt(s)` +
      ' (agreement: mean over the prompts, [min, max]):',
  );
  console.log('| engine | argmax agreement | per prompt | mean abs Δ logprob | max abs Δ logprob |');
  console.log('|---|---:|---|---:|---:|');
}
const agreements = new Map<string, number[]>();
for (const [label, traces] of accuracyTraces) {
  const cs = compareAll(label, traces);
  const agree = cs.map((c) => c.agree);
  agreements.set(label, agree);
  console.log(
    `| ${label} | ${mean(agree).toFixed(4)} [${Math.min(...agree).toFixed(4)}, ${Math.max(...agree).toFixed(4)}] | ` +
      `${agree.map((a) => a.toFixed(4)).join(' ')} | ${mean(cs.map((c) => c.meanAbs)).toExponential(3)} | ` +
      `${Math.max(...cs.map((c) => c.maxAbs)).toExponential(3)} |`,
  );
}
const q8Agree = agreements.get('llama.cpp Q8_0');
for (const label of actGroups.map(w8a8LabelOf)) {
  const w8a8Agree = agreements.get(label);
  if (w8a8Agree === undefined || q8Agree === undefined || refs.length <= 1) continue;
  // Paired per prompt: the same positions, so prompt-to-prompt variation cancels; the spread of the
  // differences says whether their mean is more than noise (mean ± 2 standard errors).
  const d = w8a8Agree.map((a, j) => a - q8Agree[j]!);
  const m = mean(d);
  const se = Math.sqrt(d.reduce((a, x) => a + (x - m) ** 2, 0) / (d.length - 1) / d.length);
  console.log(
    `${label} − llama.cpp Q8_0, per prompt: ${d.map((x) => x.toFixed(4)).join(' ')}; ` +
      `mean ${m.toFixed(4)} ± ${(2 * se).toFixed(4)} (2 standard errors)`,
  );
}
if (gguf.F32 !== null && reference !== null) {
  // llama.cpp F32 runs the same float weights as Duet float32: only summation order and the f16 KV
  // cache of llama.cpp differ, so near-total agreement is expected; less means the GGUF is wrong.
  for (const c of compareAll('llama.cpp F32', accuracyTraces.get('llama.cpp F32')!)) {
    if (c.agree >= 0.95 && c.meanAbs <= 0.05) continue;
    console.error(
      `bench:vs-llamacpp: llama.cpp F32 disagrees with Duet float32 (argmax ${c.agree}, mean abs Δ ${c.meanAbs})`,
    );
    process.exitCode = 1;
  }
}
