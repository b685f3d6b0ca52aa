// `duet generate`: runs prompts through the offline engine (all prompts submitted at once, so they are
// batched) and prints the results as text or as one JSON object per prompt, in input order.

import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { LLM, PromptRejectedError, type RequestOutput } from '../engine/llm.js';
import type { PromptInput } from '../engine/prompt.js';
import type { SamplingParamsInput } from '../sampling/sampling-params.js';
import { createLogger } from '../util/logger.js';
import { addEngineOptions, engineConfigFromOptions } from './engine-args.js';
import { intArg } from './int-arg.js';

/** A --prompts-file line or option that cannot be used: says where and why. */
export class PromptInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PromptInputError';
  }
}

function parseTokenIds(v: string): number[] {
  const parts = v.split(',').map((s) => s.trim());
  const ids = parts.map(Number);
  if (parts.length === 0 || ids.some((n, i) => parts[i] === '' || !Number.isInteger(n) || n < 0)) {
    throw new InvalidArgumentError(
      `--prompt-token-ids takes comma-separated non-negative integers, got "${v}"`,
    );
  }
  return ids;
}

function numOpt(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${flag} takes a number, got "${v}"`);
    return n;
  };
}

/** Reads JSON Lines of {"prompt": "..."} or {"prompt_token_ids": [...]}. */
export function readPromptsFile(path: string): PromptInput[] {
  return readPromptsFileLines(path).map((p) => p.prompt);
}

/** A prompt with where it came from, for error messages ("prompts.jsonl line 3", "--prompt 2"). */
interface SourcedPrompt {
  readonly prompt: PromptInput;
  readonly source: string;
}

/** The prompts of a --prompts-file, each with its line. */
function readPromptsFileLines(path: string): SourcedPrompt[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new PromptInputError(`cannot read --prompts-file ${path}: ${(e as Error).message}`);
  }
  const prompts: SourcedPrompt[] = [];
  text.split('\n').forEach((line, i) => {
    const source = `--prompts-file ${path} line ${i + 1}`;
    if (line.trim() === '') return;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch {
      throw new PromptInputError(`${path} line ${i + 1}: not valid JSON`);
    }
    const o = obj as Record<string, unknown>;
    if (typeof o?.prompt === 'string') prompts.push({ prompt: { prompt: o.prompt }, source });
    else if (Array.isArray(o?.prompt_token_ids) && o.prompt_token_ids.every((t) => Number.isInteger(t))) {
      prompts.push({ prompt: { prompt_token_ids: o.prompt_token_ids as number[] }, source });
    } else {
      throw new PromptInputError(
        `${path} line ${i + 1}: expected {"prompt": "text"} or {"prompt_token_ids": [integers]}`,
      );
    }
  });
  if (prompts.length === 0) throw new PromptInputError(`--prompts-file ${path} holds no prompts`);
  return prompts;
}

/** The JSON line printed per prompt with `--output json`. */
export function toJsonLine(out: RequestOutput): string {
  const o = out.outputs[0]!;
  const top = (lp: { top_logprobs: readonly { id: number; logprob: number }[] }) => lp.top_logprobs;
  return JSON.stringify({
    prompt_token_ids: out.prompt_token_ids,
    prompt_logprobs: out.prompt_logprobs?.map((lp) => (lp ? top(lp) : null)) ?? null,
    token_ids: o.token_ids,
    text: o.text,
    logprobs: o.logprobs?.map(top) ?? null,
    finish_reason: o.finish_reason,
  });
}

/** A prompt as a short label: its text (JSON-quoted) or its token ids, cut to about 60 characters. */
function promptLabel(p: PromptInput): string {
  const full =
    typeof p === 'string'
      ? JSON.stringify(p)
      : 'prompt' in p
        ? JSON.stringify(p.prompt)
        : `token ids [${p.prompt_token_ids.join(', ')}]`;
  return full.length > 60 ? `${full.slice(0, 59)}…` : full;
}

/** The `--output text` block of output `index`: with several prompts, a header line names its prompt. */
export function textOutputBlock(out: RequestOutput, index: number, prompts: readonly PromptInput[]): string {
  const text = `${out.outputs[0]!.text}\n`;
  if (prompts.length === 1) return text;
  return `--- prompt ${index + 1} of ${prompts.length}: ${promptLabel(prompts[index]!)} ---\n${text}`;
}

/**
 * Runs the prompts (as chat messages with `chat`); a prompt the engine refuses is named as the user gave
 * it: its flag, or its line in the prompts file.
 */
async function runPrompts(
  llm: LLM,
  sourced: readonly SourcedPrompt[],
  params: SamplingParamsInput,
  chat: boolean,
): Promise<RequestOutput[]> {
  const prompts = sourced.map((p) => p.prompt);
  try {
    if (!chat) return await llm.generate(prompts, params);
    const texts = prompts.map((p) => {
      if (typeof p === 'string') return p;
      if ('prompt' in p) return p.prompt;
      throw new PromptInputError('--chat takes text prompts, not token ids');
    });
    return await llm.chat(
      texts.map((t) => [{ role: 'user', content: t }]),
      params,
    );
  } catch (e) {
    if (!(e instanceof PromptRejectedError)) throw e;
    const source = sourced[e.promptIndex]?.source ?? `prompt ${e.promptIndex + 1}`;
    throw new PromptInputError(`${source}: ${e.reason}`);
  }
}

export function generateCommand(): Command {
  const cmd = new Command('generate')
    .description('generate completions offline for one or more prompts (batched by the engine)')
    .option('--prompt <text>', 'a prompt (repeatable)', (v: string, acc: string[] = []) => [...acc, v])
    .option('--prompt-token-ids <ids>', 'a prompt as comma-separated token ids', parseTokenIds)
    .option('--prompts-file <file.jsonl>', 'JSON Lines of {"prompt": ...} or {"prompt_token_ids": [...]}')
    .option('--max-tokens <n>', 'tokens to generate per prompt', intArg('--max-tokens', 1), 16)
    .option('--temperature <t>', 'sampling temperature (0: greedy)', numOpt('--temperature'))
    .option('--top-p <p>', 'nucleus sampling threshold', numOpt('--top-p'))
    .option('--top-k <k>', 'sample among the k most likely tokens (-1: off)', intArg('--top-k', -1))
    .option('--min-p <p>', 'minimum probability relative to the most likely token', numOpt('--min-p'))
    .option(
      '--sampling-seed <n>',
      "seed of each request's sampling (default: from --seed)",
      intArg('--sampling-seed', 0),
    )
    .option('--ignore-eos', 'keep generating after the end-of-sequence token')
    .option('--logprobs <k>', 'top-K log-probs per generated token', intArg('--logprobs', 0))
    .option('--prompt-logprobs <k>', 'top-K log-probs per prompt token', intArg('--prompt-logprobs', 0))
    .option('--stop <text>', 'a stop string (repeatable)', (v: string, acc: string[] = []) => [...acc, v])
    .option('--chat', 'treat each text prompt as a user message and apply the chat template')
    .addOption(new Option('--output <format>', 'output format').choices(['text', 'json']).default('text'));
  addEngineOptions(cmd, 'offline');
  cmd.action(async (o: Record<string, unknown>) => {
    const config = engineConfigFromOptions(o);
    const sourced: SourcedPrompt[] = [];
    ((o.prompt as string[] | undefined) ?? []).forEach((p, i, all) => {
      sourced.push({ prompt: p, source: all.length > 1 ? `--prompt ${i + 1}` : '--prompt' });
    });
    if (o.promptTokenIds)
      sourced.push({
        prompt: { prompt_token_ids: o.promptTokenIds as number[] },
        source: '--prompt-token-ids',
      });
    if (o.promptsFile) sourced.push(...readPromptsFileLines(o.promptsFile as string));
    if (sourced.length === 0)
      throw new PromptInputError('give a prompt: --prompt, --prompt-token-ids or --prompts-file');
    const params: SamplingParamsInput = {
      maxTokens: o.maxTokens as number,
      ...(o.temperature !== undefined ? { temperature: o.temperature as number } : {}),
      ...(o.topP !== undefined ? { topP: o.topP as number } : {}),
      ...(o.topK !== undefined ? { topK: o.topK as number } : {}),
      ...(o.minP !== undefined ? { minP: o.minP as number } : {}),
      ...(o.samplingSeed !== undefined ? { seed: o.samplingSeed as number } : {}),
      ...(o.ignoreEos ? { ignoreEos: true } : {}),
      ...(o.logprobs !== undefined ? { logprobs: o.logprobs as number } : {}),
      ...(o.promptLogprobs !== undefined ? { promptLogprobs: o.promptLogprobs as number } : {}),
      ...(o.stop ? { stop: o.stop as string[] } : {}),
    };
    const logger = createLogger();
    const llm = new LLM({ engineConfig: config, logger });
    try {
      const outputs = await runPrompts(llm, sourced, params, o.chat === true);
      const prompts = sourced.map((p) => p.prompt);
      outputs.forEach((out, i) => {
        if (o.output === 'json') process.stdout.write(`${toJsonLine(out)}\n`);
        else process.stdout.write(textOutputBlock(out, i, prompts));
      });
      const engine = await llm.engine();
      const s = engine.stats();
      logger.info(
        `finished ${outputs.length} prompt(s): ${engine.counters.promptTokens} prompt tokens, ` +
          `${engine.counters.generationTokens} generated, ${engine.counters.numSteps} steps, ` +
          `${s.numPreemptions} preemptions, prefix cache hits ${s.prefixCacheHits}/${s.prefixCacheQueries} tokens`,
      );
    } finally {
      await llm.close();
    }
  });
  return cmd;
}
