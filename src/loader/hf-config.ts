// Reads a Hugging Face DeepSeek config.json (V2, V2-Lite, V3, R1) into the typed `DeepseekConfig`:
// every field the architecture uses is validated (zod) once, here, with messages that name the field,
// what was found and what is allowed. Unknown keys are ignored. `--hf-overrides` are merged in first.
//
// Defaults for missing keys follow the Hugging Face remote code of each model type where it has a
// behavioural default (topk_method, scoring_func, norm_topk_prob: V2 → greedy / softmax / false,
// V3 → noaux_tc / sigmoid / true, so a V3 config without them routes as DeepSeek-V3 does). Where the
// remote code's default is a size of one particular model (V3's n_group 8, topk_group 4,
// routed_scaling_factor 2.5), a missing key takes the neutral value instead (1, 1, 1.0).
// `noaux_tc` with `softmax` is accepted: DeepSeek's reference inference/model.py computes it (the bias
// is added to the softmax scores for selection), although the Hugging Face V3 code only implements sigmoid.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type {
  DeepseekArchitecture,
  DeepseekConfig,
  QuantizationConfig,
  ScoringFunc,
  TopkMethod,
  YarnScaling,
} from '../config/model-config.js';

/** A config.json that is missing, unreadable, or does not describe a supported DeepSeek model. */
export class ModelConfigError extends Error {
  /**
   * @param field the config.json key at fault (`rope_scaling.factor` for nested keys), or null.
   * @param detail what is wrong and what is allowed.
   * @param source the file (or `config.json` when parsing an object).
   */
  constructor(
    readonly field: string | null,
    detail: string,
    readonly source: string = 'config.json',
  ) {
    super(field === null ? `${source}: ${detail}` : `${source}: field "${field}" ${detail}`);
    this.name = 'ModelConfigError';
  }
}

const SUPPORTED_ARCHITECTURES: Readonly<Record<DeepseekArchitecture, 'deepseek_v2' | 'deepseek_v3'>> = {
  DeepseekV2ForCausalLM: 'deepseek_v2',
  DeepseekV3ForCausalLM: 'deepseek_v3',
};
const TOPK_METHODS = ['greedy', 'group_limited_greedy', 'noaux_tc'] as const satisfies readonly TopkMethod[];
const SCORING_FUNCS = ['softmax', 'sigmoid'] as const satisfies readonly ScoringFunc[];

const posInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();
const posNum = z.number().positive();
const anyNum = z.number();

/** A short, readable rendering of a JSON value for error messages. */
function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (typeof v === 'string') return `${JSON.stringify(v.length > 60 ? `${v.slice(0, 60)}…` : v)} (a string)`;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) {
    const s = JSON.stringify(v);
    return `${s.length > 60 ? `${s.slice(0, 60)}…` : s} (an array)`;
  }
  return 'an object';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Merges vLLM-style `--hf-overrides` into a raw config object: top-level keys replace, and where both the
 * config and the override hold an object (e.g. `rope_scaling`), the override is merged one level deep.
 */
export function applyHfOverrides(
  raw: Record<string, unknown>,
  overrides: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw };
  for (const [key, value] of Object.entries(overrides)) {
    const base = out[key];
    out[key] = isPlainObject(base) && isPlainObject(value) ? { ...base, ...value } : value;
  }
  return out;
}

/** Reads typed fields of one JSON object, turning every problem into a `ModelConfigError`. */
class FieldReader {
  constructor(
    private readonly raw: Record<string, unknown>,
    private readonly source: string,
    private readonly prefix = '',
  ) {}

  /** The raw value of `key` (undefined when absent). */
  peek(key: string): unknown {
    return this.raw[key];
  }

  /** A field that must be present and match `schema`. */
  required<T>(key: string, schema: z.ZodType<T>, allowed: string): T {
    const value = this.raw[key];
    if (value === undefined) throw this.error(key, `is missing; allowed: ${allowed}`);
    return this.check(key, value, schema, allowed);
  }

  /** A field that takes `fallback` when absent (and also when null, if `nullMeansDefault`). */
  optional<T>(key: string, schema: z.ZodType<T>, allowed: string, fallback: T, nullMeansDefault = false): T {
    const value = this.raw[key];
    if (value === undefined || (nullMeansDefault && value === null)) return fallback;
    return this.check(key, value, schema, allowed);
  }

  error(key: string, detail: string): ModelConfigError {
    return new ModelConfigError(`${this.prefix}${key}`, detail, this.source);
  }

  private check<T>(key: string, value: unknown, schema: z.ZodType<T>, allowed: string): T {
    const parsed = schema.safeParse(value);
    if (!parsed.success) throw this.error(key, `is ${describeValue(value)}; allowed: ${allowed}`);
    return parsed.data;
  }
}

function parseArchitecture(f: FieldReader): DeepseekArchitecture {
  const supported = Object.keys(SUPPORTED_ARCHITECTURES).join(', ');
  const archs = f.required(
    'architectures',
    z.array(z.string()).min(1),
    `a non-empty list of architecture names; supported: ${supported}`,
  );
  const found = archs.find((a): a is DeepseekArchitecture => a in SUPPORTED_ARCHITECTURES);
  if (found === undefined) {
    const listed = archs.join(', ');
    throw f.error(
      'architectures',
      `is ${describeValue(archs)}: ${listed} is not supported; supported: ${supported}`,
    );
  }
  return found;
}

function parseRopeScaling(f: FieldReader, source: string): YarnScaling | null {
  const value = f.peek('rope_scaling');
  if (value === undefined || value === null) return null;
  if (!isPlainObject(value)) {
    throw f.error('rope_scaling', `is ${describeValue(value)}; allowed: null or a yarn object`);
  }
  const r = new FieldReader(value, source, 'rope_scaling.');
  // Newer transformers write `rope_type`, older `type`.
  const typeKey = value.type !== undefined ? 'type' : 'rope_type';
  const type = r.required(typeKey, z.string(), '"yarn"');
  if (type !== 'yarn') {
    throw r.error(typeKey, `is ${describeValue(type)}, which is not supported; supported: "yarn" (or null)`);
  }
  return {
    type: 'yarn',
    factor: r.required('factor', z.number().min(1), 'a number ≥ 1'),
    originalMaxPositionEmbeddings: r.required(
      'original_max_position_embeddings',
      posInt,
      'a positive integer',
    ),
    betaFast: r.optional('beta_fast', posNum, 'a positive number', 32),
    betaSlow: r.optional('beta_slow', posNum, 'a positive number', 1),
    mscale: r.optional('mscale', anyNum, 'a number', 1),
    mscaleAllDim: r.optional('mscale_all_dim', anyNum, 'a number', 0),
  };
}

function parseQuantization(f: FieldReader, source: string): QuantizationConfig | null {
  const value = f.peek('quantization_config');
  if (value === undefined || value === null) return null;
  if (!isPlainObject(value)) {
    throw f.error('quantization_config', `is ${describeValue(value)}; allowed: null or an object`);
  }
  const q = new FieldReader(value, source, 'quantization_config.');
  return {
    method: q.required('quant_method', z.string().min(1), 'a method name such as "fp8"'),
    fields: value,
  };
}

function parseEosTokenIds(f: FieldReader): number[] {
  const value = f.optional(
    'eos_token_id',
    z.union([nonNegInt, z.array(nonNegInt)]).nullable(),
    'a token id, a list of token ids, or null',
    null,
  );
  if (value === null) return [];
  return typeof value === 'number' ? [value] : value;
}

/** Checks that fields agree with each other; the MoE checks apply only to MoE models. */
function checkConsistency(c: DeepseekConfig, f: FieldReader): void {
  if (c.qkRopeHeadDim % 2 !== 0) {
    throw f.error('qk_rope_head_dim', `is ${c.qkRopeHeadDim}; allowed: an even number (rope rotates pairs)`);
  }
  if (c.firstKDenseReplace > c.numHiddenLayers) {
    throw f.error(
      'first_k_dense_replace',
      `is ${c.firstKDenseReplace} but num_hidden_layers is ${c.numHiddenLayers}; allowed: 0..num_hidden_layers ` +
        '(when cutting layers with --hf-overrides, override first_k_dense_replace too)',
    );
  }
  const e = c.nRoutedExperts;
  if (e === null) return;
  if (c.numExpertsPerTok > e) {
    throw f.error(
      'num_experts_per_tok',
      `is ${c.numExpertsPerTok} but n_routed_experts is ${e}; allowed: 1..n_routed_experts`,
    );
  }
  if (c.topkGroup > c.nGroup) {
    throw f.error('topk_group', `is ${c.topkGroup} but n_group is ${c.nGroup}; allowed: 1..n_group`);
  }
  const grouped = c.topkMethod === 'group_limited_greedy' || c.topkMethod === 'noaux_tc';
  if (!grouped) return;
  if (e % c.nGroup !== 0) {
    throw f.error(
      'n_group',
      `is ${c.nGroup} but n_routed_experts (${e}) is not divisible by it; allowed with topk_method ` +
        `"${c.topkMethod}": a divisor of n_routed_experts`,
    );
  }
  const perGroup = e / c.nGroup;
  if (c.numExpertsPerTok > c.topkGroup * perGroup) {
    throw f.error(
      'num_experts_per_tok',
      `is ${c.numExpertsPerTok} but only topk_group · n_routed_experts / n_group = ${c.topkGroup * perGroup} ` +
        'experts can be chosen; allowed: at most that many',
    );
  }
  // noaux_tc scores a group by the sum of its best two experts.
  if (c.topkMethod === 'noaux_tc' && c.nGroup > 1 && perGroup < 2) {
    throw f.error(
      'n_group',
      `is ${c.nGroup}, leaving ${perGroup} expert per group; allowed with topk_method "noaux_tc": ` +
        'at least 2 experts per group',
    );
  }
}

function parseWithSource(
  json: unknown,
  overrides: Record<string, unknown> | undefined,
  source: string,
): DeepseekConfig {
  if (!isPlainObject(json)) {
    throw new ModelConfigError(null, `is ${describeValue(json)}; allowed: a JSON object`, source);
  }
  if (overrides !== undefined && !isPlainObject(overrides)) {
    throw new ModelConfigError(
      null,
      `hf-overrides is ${describeValue(overrides)}; allowed: a JSON object`,
      source,
    );
  }
  const raw = overrides === undefined ? json : applyHfOverrides(json, overrides);
  const f = new FieldReader(raw, source);

  const architecture = parseArchitecture(f);
  const expectedType = SUPPORTED_ARCHITECTURES[architecture];
  const modelType = f.required('model_type', z.string(), `"${expectedType}" for ${architecture}`);
  if (modelType !== expectedType) {
    throw f.error(
      'model_type',
      `is ${describeValue(modelType)}; allowed for ${architecture}: "${expectedType}"`,
    );
  }
  const isV3 = modelType === 'deepseek_v3';

  const hiddenAct = f.optional('hidden_act', z.string(), '"silu"', 'silu');
  if (hiddenAct !== 'silu') {
    throw f.error('hidden_act', `is ${describeValue(hiddenAct)}, which is not supported; supported: "silu"`);
  }

  const nRoutedExperts = f.optional(
    'n_routed_experts',
    posInt.nullable(),
    'a positive integer or null (dense)',
    null,
  );
  const isMoe = nRoutedExperts !== null;
  const intermediateSize = f.required('intermediate_size', posInt, 'a positive integer');
  const moeIntermediateSize = isMoe
    ? f.required('moe_intermediate_size', posInt, 'a positive integer')
    : f.optional('moe_intermediate_size', posInt, 'a positive integer', 0, true);
  const numExpertsPerTok = isMoe
    ? f.required('num_experts_per_tok', posInt, 'a positive integer')
    : f.optional('num_experts_per_tok', nonNegInt, 'a non-negative integer', 0, true);

  const topkMethod = f.optional(
    'topk_method',
    z.enum(TOPK_METHODS),
    TOPK_METHODS.map((m) => `"${m}"`).join(', '),
    isV3 ? 'noaux_tc' : 'greedy',
  );
  const scoringFunc = f.optional(
    'scoring_func',
    z.enum(SCORING_FUNCS),
    SCORING_FUNCS.map((m) => `"${m}"`).join(', '),
    isV3 ? 'sigmoid' : 'softmax',
  );

  const config: DeepseekConfig = {
    architecture,
    modelType: expectedType,
    vocabSize: f.required('vocab_size', posInt, 'a positive integer'),
    hiddenSize: f.required('hidden_size', posInt, 'a positive integer'),
    intermediateSize,
    moeIntermediateSize,
    numHiddenLayers: f.required('num_hidden_layers', posInt, 'a positive integer'),
    numAttentionHeads: f.required('num_attention_heads', posInt, 'a positive integer'),
    qLoraRank: f.required('q_lora_rank', posInt.nullable(), 'a positive integer, or null (no q compression)'),
    kvLoraRank: f.required('kv_lora_rank', posInt, 'a positive integer'),
    qkNopeHeadDim: f.required('qk_nope_head_dim', posInt, 'a positive integer'),
    qkRopeHeadDim: f.required('qk_rope_head_dim', posInt, 'a positive even integer'),
    vHeadDim: f.required('v_head_dim', posInt, 'a positive integer'),
    nRoutedExperts,
    nSharedExperts: f.optional('n_shared_experts', nonNegInt, 'a non-negative integer or null', 0, true),
    numExpertsPerTok,
    nGroup: f.optional('n_group', posInt, 'a positive integer or null', 1, true),
    topkGroup: f.optional('topk_group', posInt, 'a positive integer or null', 1, true),
    topkMethod,
    scoringFunc,
    normTopkProb: f.optional('norm_topk_prob', z.boolean(), 'true or false', isV3),
    routedScalingFactor: f.optional('routed_scaling_factor', posNum, 'a positive number', 1),
    firstKDenseReplace: f.optional('first_k_dense_replace', nonNegInt, 'a non-negative integer', 0),
    moeLayerFreq: f.optional('moe_layer_freq', posInt, 'a positive integer', 1),
    maxPositionEmbeddings: f.required('max_position_embeddings', posInt, 'a positive integer'),
    ropeTheta: f.optional('rope_theta', posNum, 'a positive number', 10000),
    ropeScaling: parseRopeScaling(f, source),
    rmsNormEps: f.optional('rms_norm_eps', posNum, 'a positive number', 1e-6),
    tieWordEmbeddings: f.optional('tie_word_embeddings', z.boolean(), 'true or false', false),
    bosTokenId: f.optional('bos_token_id', nonNegInt.nullable(), 'a token id or null', null),
    eosTokenIds: parseEosTokenIds(f),
    // Newer transformers write `dtype` instead of `torch_dtype`.
    torchDtype:
      f.peek('torch_dtype') === undefined && f.peek('dtype') !== undefined
        ? f.required('dtype', z.string().min(1), 'a dtype name such as "bfloat16"')
        : f.optional('torch_dtype', z.string().min(1), 'a dtype name such as "bfloat16"', 'bfloat16'),
    quantization: parseQuantization(f, source),
  };
  checkConsistency(config, f);
  return config;
}

/**
 * Validates a parsed config.json object and returns the typed config. `overrides` (vLLM's
 * `--hf-overrides`, config.json keys) are merged in before validation, see `applyHfOverrides`.
 * Throws `ModelConfigError`.
 */
export function parseDeepseekConfig(json: unknown, overrides?: Record<string, unknown>): DeepseekConfig {
  return parseWithSource(json, overrides, 'config.json');
}

/** Reads and validates `<dir>/config.json`; errors name the file. Throws `ModelConfigError`. */
export function loadDeepseekConfig(dir: string, overrides?: Record<string, unknown>): DeepseekConfig {
  const path = join(dir, 'config.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(err)})`;
    throw new ModelConfigError(null, `${why}; a model folder needs a Hugging Face config.json`, path);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ModelConfigError(null, `is not valid JSON (${(err as Error).message})`, path);
  }
  return parseWithSource(json, overrides, path);
}
