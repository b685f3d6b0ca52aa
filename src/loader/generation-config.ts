// Reads a model folder's optional generation_config.json: the sampling defaults the model's authors
// recommend (vLLM applies them under `--generation-config auto`). Every field is optional; null counts as
// absent; unknown keys are ignored.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { ModelConfigError } from './hf-config.js';

export const GENERATION_CONFIG_FILE = 'generation_config.json';

/** The sampling and token defaults of a generation_config.json (camelCase of its keys). */
export interface GenerationDefaults {
  readonly temperature?: number;
  readonly topP?: number;
  readonly topK?: number;
  readonly minP?: number;
  readonly repetitionPenalty?: number;
  readonly maxNewTokens?: number;
  /** Hugging Face's switch between sampling and greedy decoding. */
  readonly doSample?: boolean;
  readonly bosTokenId?: number;
  /** One or more end-of-sequence ids (`eos_token_id`, a number or a list). */
  readonly eosTokenIds?: readonly number[];
}

const tokenId = z.number().int().nonnegative();

/**
 * Validates a parsed generation_config.json object. Throws `ModelConfigError` naming the field, with
 * `source` as the file.
 */
export function parseGenerationConfig(json: unknown, source = GENERATION_CONFIG_FILE): GenerationDefaults {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ModelConfigError(null, 'is not a JSON object', source);
  }
  const raw = json as Record<string, unknown>;
  const get = <T>(key: string, schema: z.ZodType<T>, allowed: string): T | undefined => {
    const v = raw[key];
    if (v === undefined || v === null) return undefined;
    const parsed = schema.safeParse(v);
    if (!parsed.success)
      throw new ModelConfigError(key, `is ${JSON.stringify(v)}; allowed: ${allowed}`, source);
    return parsed.data;
  };
  const eos = get('eos_token_id', z.union([tokenId, z.array(tokenId)]), 'a token id or a list of token ids');
  const all: GenerationDefaults = {
    temperature: get('temperature', z.number().nonnegative(), 'a number ≥ 0'),
    topP: get('top_p', z.number().gt(0).max(1), 'a number in (0, 1]'),
    topK: get('top_k', z.number().int().min(-1), 'an integer ≥ -1 (0 or -1: off)'),
    minP: get('min_p', z.number().min(0).max(1), 'a number in [0, 1]'),
    repetitionPenalty: get('repetition_penalty', z.number().positive(), 'a positive number'),
    maxNewTokens: get('max_new_tokens', z.number().int().positive(), 'a positive integer'),
    doSample: get('do_sample', z.boolean(), 'true or false'),
    bosTokenId: get('bos_token_id', tokenId, 'a token id'),
    eosTokenIds: eos === undefined ? undefined : typeof eos === 'number' ? [eos] : eos,
  };
  // Leave absent fields out altogether rather than present as undefined.
  return Object.fromEntries(Object.entries(all).filter(([, v]) => v !== undefined)) as GenerationDefaults;
}

/** Reads `<dir>/generation_config.json`; null when the folder has none. Throws `ModelConfigError`. */
export function loadGenerationDefaults(dir: string): GenerationDefaults | null {
  const path = join(dir, GENERATION_CONFIG_FILE);
  if (!existsSync(path)) return null;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ModelConfigError(null, `is not valid JSON (${(err as Error).message})`, path);
  }
  return parseGenerationConfig(json, path);
}
