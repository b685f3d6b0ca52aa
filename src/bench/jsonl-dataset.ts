// Prompts from a JSON Lines file (--dataset-name jsonl --dataset-path FILE), one request per line:
//   {"prompt": "text"}                  sent as text (completions) or as the user message (chat)
//   {"prompt_token_ids": [1, 2, 3]}     sent as token ids, as they are (completions only)
// with an optional "output_len" (tokens to generate; default --random-output-len / --output-len).
// Blank lines are skipped. As vLLM's file datasets do, when the file has fewer lines than --num-prompts
// the missing requests are drawn at random (seeded) from its lines.

import { readFileSync } from 'node:fs';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { BenchRng } from './bench-rng.js';
import { BenchArgumentError, DatasetFileError } from './errors.js';
import type { SampleRequest } from './sample-request.js';

/** Options of the JSONL dataset. */
export interface JsonlDatasetOptions {
  readonly path: string;
  readonly numPrompts: number;
  /** Output length of lines without "output_len". */
  readonly defaultOutputLen: number;
  readonly seed: number;
  readonly requestIdPrefix?: string;
}

interface JsonlLine {
  readonly prompt?: string;
  readonly promptTokenIds?: number[];
  readonly outputLen?: number;
}

/** Reads and checks every line of a prompts file. */
export function readJsonlPrompts(path: string): JsonlLine[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new DatasetFileError(`cannot read --dataset-path ${path}: ${(e as Error).message}`);
  }
  const lines: JsonlLine[] = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    const where = `${path}:${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(raw);
    } catch (e) {
      throw new DatasetFileError(`${where} is not valid JSON (${(e as Error).message})`);
    }
    if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
      throw new DatasetFileError(`${where} must be a JSON object with "prompt" or "prompt_token_ids"`);
    }
    const o = obj as Record<string, unknown>;
    const hasText = typeof o.prompt === 'string';
    const ids = o.prompt_token_ids;
    const hasIds = Array.isArray(ids);
    if (hasText === hasIds) {
      throw new DatasetFileError(
        `${where} must have exactly one of "prompt" (a string) or "prompt_token_ids" (an array of ids)`,
      );
    }
    if (hasIds && (ids.length === 0 || !ids.every((v) => Number.isInteger(v) && (v as number) >= 0))) {
      throw new DatasetFileError(`${where}: "prompt_token_ids" must be a non-empty array of integers >= 0`);
    }
    if (hasText && (o.prompt as string).length === 0)
      throw new DatasetFileError(`${where}: "prompt" is empty`);
    const outputLen = o.output_len;
    if (outputLen !== undefined && (!Number.isInteger(outputLen) || (outputLen as number) < 1)) {
      throw new DatasetFileError(
        `${where}: "output_len" must be an integer >= 1, got ${JSON.stringify(outputLen)}`,
      );
    }
    lines.push({
      ...(hasText ? { prompt: o.prompt as string } : { promptTokenIds: ids as number[] }),
      ...(outputLen !== undefined ? { outputLen: outputLen as number } : {}),
    });
  });
  if (lines.length === 0) throw new DatasetFileError(`--dataset-path ${path} has no prompts`);
  return lines;
}

/** The first --num-prompts lines of the file (oversampled at random when it has fewer). */
export function sampleJsonlDataset(tokenizer: Tokenizer, options: JsonlDatasetOptions): SampleRequest[] {
  if (!Number.isInteger(options.numPrompts) || options.numPrompts < 1) {
    throw new BenchArgumentError(`--num-prompts must be an integer >= 1, got ${options.numPrompts}`);
  }
  const lines = readJsonlPrompts(options.path);
  const chosen = lines.slice(0, options.numPrompts);
  const rng = new BenchRng(options.seed, 0);
  while (chosen.length < options.numPrompts) chosen.push(lines[rng.integer(0, lines.length - 1)]!);
  return chosen.map((line, i) => {
    const requestId = `${options.requestIdPrefix ?? ''}${i}`;
    const expectedOutputLen = line.outputLen ?? options.defaultOutputLen;
    if (line.promptTokenIds !== undefined) {
      return {
        prompt: '',
        promptTokenIds: line.promptTokenIds,
        promptLen: line.promptTokenIds.length,
        expectedOutputLen,
        requestId,
        sendAsTokenIds: true,
      };
    }
    const prompt = line.prompt!;
    return { prompt, promptLen: tokenizer.encode(prompt).length, expectedOutputLen, requestId };
  });
}
