// `duet eval perplexity`: the perplexity of a model on a text file, over sliding windows, from the log-
// probabilities the engine reports for prompt tokens (prompt_logprobs: the log-probability of the actual
// next token, computed from the raw logits), with a progress bar and the throughput.
//
// Windows (`perplexityWindows`): the text's tokens (BOS first, as the tokenizer adds it) are cut into
// windows of `context` tokens whose starts are `stride` apart (stride < context, so windows overlap by
// context - stride tokens). Each window is one request starting at position 0. A window scores only the
// tokens after the previous window's end (the first window scores all its tokens but the first), so every
// token but the first is scored exactly once, and each scored token beyond the first window sees at least
// context - stride earlier tokens. Perplexity = exp(mean negative log-likelihood of the scored tokens).

import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { createProgress } from '../bench/progress.js';
import { LLM } from '../engine/llm.js';
import { createLogger } from '../util/logger.js';
import { addEngineOptions, engineConfigFromOptions } from './engine-args.js';
import { intArg } from './int-arg.js';

/** An input `duet eval perplexity` cannot score: says what is wrong and what is allowed. */
export class PerplexityInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PerplexityInputError';
  }
}

/** One window: tokens [begin, end) go to the model; tokens [firstScored, end) are scored. */
export interface PerplexityWindow {
  readonly begin: number;
  readonly end: number;
  readonly firstScored: number;
}

/** The windows over `numTokens` tokens (see the file header); needs numTokens >= 2, 1 <= stride < context. */
export function perplexityWindows(numTokens: number, context: number, stride: number): PerplexityWindow[] {
  if (numTokens < 2) throw new PerplexityInputError(`perplexity needs at least 2 tokens, got ${numTokens}`);
  checkWindowShape(context, stride);
  const windows: PerplexityWindow[] = [];
  let prevEnd = 1;
  for (let begin = 0; prevEnd < numTokens; begin += stride) {
    const end = Math.min(begin + context, numTokens);
    windows.push({ begin, end, firstScored: prevEnd });
    prevEnd = end;
  }
  return windows;
}

/** Throws a PerplexityInputError unless context >= 2 and 1 <= stride < context (integers). */
export function checkWindowShape(context: number, stride: number): void {
  if (!Number.isInteger(context) || context < 2)
    throw new PerplexityInputError(`--context must be an integer >= 2, got ${context}`);
  if (!Number.isInteger(stride) || stride < 1 || stride >= context) {
    throw new PerplexityInputError(
      `--stride must be an integer in [1, ${context - 1}] (less than --context ${context}), got ${stride}`,
    );
  }
}

/** What `evaluatePerplexity` measured. */
export interface PerplexityResult {
  readonly perplexity: number;
  /** Mean negative log-likelihood (nats) of the scored tokens. */
  readonly meanNll: number;
  readonly numScoredTokens: number;
  /** Tokens run through the model (overlapping context counted in every window it is in). */
  readonly numProcessedTokens: number;
  readonly numWindows: number;
  readonly context: number;
  readonly stride: number;
  readonly seconds: number;
}

/** Windows sent to the engine at once: enough to batch, few enough to keep the progress bar moving. */
const WINDOWS_PER_SUBMIT = 8;

/** Scores `ids` with `llm` in sliding windows; `onWindows(n)` is told as windows finish. */
export async function evaluatePerplexity(
  llm: LLM,
  ids: readonly number[],
  context: number,
  stride: number,
  onWindows: (numFinished: number) => void = () => {},
): Promise<PerplexityResult> {
  const windows = perplexityWindows(ids.length, context, stride);
  const started = performance.now();
  let nll = 0;
  let numScored = 0;
  let numProcessed = 0;
  for (let i = 0; i < windows.length; i += WINDOWS_PER_SUBMIT) {
    const batch = windows.slice(i, i + WINDOWS_PER_SUBMIT);
    const outputs = await llm.generate(
      batch.map((w) => ({ prompt_token_ids: ids.slice(w.begin, w.end) })),
      { maxTokens: 1, temperature: 0, promptLogprobs: 0 },
      { useTqdm: false },
    );
    batch.forEach((w, j) => {
      const logprobs = outputs[j]!.prompt_logprobs;
      if (logprobs === null) throw new Error('the engine returned no prompt log-probabilities');
      for (let t = w.firstScored; t < w.end; t++) {
        const lp = logprobs[t - w.begin];
        if (!lp || lp.token_id !== ids[t]) {
          throw new Error(`the engine returned no log-probability for token ${t} of the text`);
        }
        nll -= lp.logprob;
        numScored++;
      }
      numProcessed += w.end - w.begin;
    });
    onWindows(batch.length);
  }
  const meanNll = nll / numScored;
  return {
    perplexity: Math.exp(meanNll),
    meanNll,
    numScoredTokens: numScored,
    numProcessedTokens: numProcessed,
    numWindows: windows.length,
    context,
    stride,
    seconds: (performance.now() - started) / 1000,
  };
}

/** Reads the text to score: an unreadable or empty file is a PerplexityInputError. */
export function readEvalText(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new PerplexityInputError(`cannot read --file ${path}: ${(e as Error).message}`);
  }
  if (text.length === 0) throw new PerplexityInputError(`--file ${path} is empty: give a text to score`);
  return text;
}

/** --context when none is given: 512 tokens (llama.cpp's default), or less when the model allows less. */
const DEFAULT_CONTEXT = 512;

function perplexityCommand(): Command {
  const cmd = new Command('perplexity')
    .description('perplexity of the model on a text file, over sliding windows (engine flags apply)')
    .requiredOption('--file <text>', 'the text file to score (UTF-8)')
    .option(
      '--context <n>',
      `tokens per window (default: ${DEFAULT_CONTEXT}, at most --max-model-len - 1)`,
      intArg('--context', 2),
    )
    .option(
      '--stride <n>',
      'tokens between window starts, < --context (default: context / 2)',
      intArg('--stride', 1),
    )
    .addOption(new Option('--output <format>', 'output format').choices(['text', 'json']).default('text'))
    .option('--no-progress', 'no progress bar');
  addEngineOptions(cmd);
  cmd.action(async (o: Record<string, unknown>) => {
    const text = readEvalText(o.file as string);
    // Both given: a bad pair is refused before the model loads.
    if (o.context !== undefined && o.stride !== undefined)
      checkWindowShape(o.context as number, o.stride as number);
    const config = engineConfigFromOptions(o);
    const logger = createLogger();
    const llm = new LLM({ engineConfig: config, logger });
    try {
      const engine = await llm.engine();
      const maxContext = engine.maxModelLen - 1;
      const context = (o.context as number | undefined) ?? Math.min(DEFAULT_CONTEXT, maxContext);
      if (context > maxContext) {
        throw new PerplexityInputError(
          `--context ${context} is too long: the engine allows prompts of at most ${maxContext} tokens ` +
            `(--max-model-len ${engine.maxModelLen} - 1)`,
        );
      }
      const stride = (o.stride as number | undefined) ?? Math.max(1, Math.floor(context / 2));
      const ids = engine.tokenizer.encode(text);
      if (ids.length < 2) {
        throw new PerplexityInputError(
          `--file ${o.file as string} is ${ids.length} token(s) long; perplexity needs at least 2 tokens`,
        );
      }
      const windows = perplexityWindows(ids.length, context, stride);
      const progress = createProgress(windows.length, o.progress !== false);
      let result: PerplexityResult;
      try {
        result = await evaluatePerplexity(llm, ids, context, stride, (n) => {
          for (let i = 0; i < n; i++) progress.increment();
        });
      } finally {
        progress.stop();
      }
      if (o.output === 'json') {
        process.stdout.write(`${JSON.stringify(result)}\n`);
      } else {
        const perSecond = (n: number) => (n / result.seconds).toFixed(1);
        process.stdout.write(
          `perplexity ${result.perplexity.toFixed(4)} over ${result.numScoredTokens} tokens ` +
            `(context ${context}, stride ${stride}, ${result.numWindows} windows)\n` +
            `${perSecond(result.numProcessedTokens)} tokens/s through the model, ` +
            `${perSecond(result.numScoredTokens)} scored tokens/s (${result.seconds.toFixed(1)} s)\n`,
        );
      }
    } finally {
      await llm.close();
    }
  });
  return cmd;
}

/** `duet eval`: quality measurements of a model. */
export function evalCommand(): Command {
  // Subcommands added with addCommand do not inherit exitOverride: set it so errors reach main().
  return new Command('eval')
    .description('measure model quality (perplexity)')
    .addCommand(perplexityCommand().exitOverride());
}
