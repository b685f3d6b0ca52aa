// vLLM's random dataset: synthetic prompts built from the tokenizer. Per request, the input length is drawn
// uniformly from the integers [floor(L·(1−r)), ceil(L·(1+r))] where L = --random-input-len minus the
// special tokens the server adds (BOS), and the output length from [max(1, floor(O·(1−r))),
// max(1, ceil(O·(1+r)))] (r = --random-range-ratio). Each prompt is a shared prefix of --random-prefix-len
// random tokens followed by consecutive vocabulary ids starting at a random offset, turned into a text
// that re-encodes to exactly prefix + input tokens (see exact-length-prompt.ts). So with r = 0 the server
// sees exactly --random-input-len prompt tokens (prefix excluded) once it adds its BOS.

import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { BenchRng } from './bench-rng.js';
import { BenchArgumentError } from './errors.js';
import { ExactLengthPromptBuilder, type ExactPrompt } from './exact-length-prompt.js';
import type { SampleRequest } from './sample-request.js';

/** The random dataset's options (vLLM's --random-* flags). */
export interface RandomDatasetOptions {
  readonly numPrompts: number;
  /** --random-input-len: prompt tokens as the server counts them, special tokens included (1024). */
  readonly inputLen: number;
  /** --random-output-len (128). */
  readonly outputLen: number;
  /** --random-range-ratio in [0, 1) (0). */
  readonly rangeRatio: number;
  /** --random-prefix-len: tokens shared by every prompt, on top of the input length (0). */
  readonly prefixLen: number;
  /** --seed. */
  readonly seed: number;
  /** Prefix of each request's id (x-request-id). */
  readonly requestIdPrefix?: string;
  /** Also give each request its token ids, special tokens included (for --send-token-ids). */
  readonly includeTokenIds?: boolean;
}

/** The inclusive ranges the input and output lengths are drawn from. */
export interface LengthRanges {
  readonly inputLow: number;
  readonly inputHigh: number;
  readonly outputLow: number;
  readonly outputHigh: number;
}

/** How many special tokens the tokenizer adds to an encoded text (1 for DeepSeek's BOS). */
export function numSpecialTokensToAdd(tokenizer: Pick<Tokenizer, 'encode'>): number {
  return tokenizer.encode('').length - tokenizer.encode('', { addSpecialTokens: false }).length;
}

/** vLLM's sampling ranges of the input and output lengths; throws when they allow an empty prompt. */
export function randomLengthRanges(
  options: Pick<RandomDatasetOptions, 'inputLen' | 'outputLen' | 'rangeRatio' | 'prefixLen'>,
  numSpecialTokens: number,
): LengthRanges {
  const { inputLen, outputLen, rangeRatio: r, prefixLen } = options;
  if (!(r >= 0 && r < 1)) throw new BenchArgumentError(`--random-range-ratio must be in [0, 1), got ${r}`);
  for (const [flag, v] of [
    ['--random-input-len', inputLen],
    ['--random-output-len', outputLen],
    ['--random-prefix-len', prefixLen],
  ] as const) {
    if (!Number.isInteger(v) || v < 0)
      throw new BenchArgumentError(`${flag} must be an integer >= 0, got ${v}`);
  }
  const realInputLen = Math.max(0, inputLen - numSpecialTokens);
  const ranges: LengthRanges = {
    inputLow: Math.floor(realInputLen * (1 - r)),
    inputHigh: Math.ceil(realInputLen * (1 + r)),
    outputLow: Math.max(1, Math.floor(outputLen * (1 - r))),
    outputHigh: Math.max(1, Math.ceil(outputLen * (1 + r))),
  };
  if (prefixLen + ranges.inputLow < 1) {
    throw new BenchArgumentError(
      `--random-input-len ${inputLen} is too small: with ${numSpecialTokens} special token(s) added by the ` +
        `tokenizer and --random-range-ratio ${r}, a prompt could have ${prefixLen + ranges.inputLow} tokens; ` +
        'raise --random-input-len or --random-prefix-len, or lower --random-range-ratio',
    );
  }
  return ranges;
}

/** Builds vLLM's random dataset. Deterministic for a seed and tokenizer. */
export function sampleRandomDataset(tokenizer: Tokenizer, options: RandomDatasetOptions): SampleRequest[] {
  if (!Number.isInteger(options.numPrompts) || options.numPrompts < 1) {
    throw new BenchArgumentError(`--num-prompts must be an integer >= 1, got ${options.numPrompts}`);
  }
  const numSpecial = numSpecialTokensToAdd(tokenizer);
  const ranges = randomLengthRanges(options, numSpecial);
  const rng = new BenchRng(options.seed, 0);
  const inputLens: number[] = [];
  const outputLens: number[] = [];
  const offsets: number[] = [];
  for (let i = 0; i < options.numPrompts; i++) inputLens.push(rng.integer(ranges.inputLow, ranges.inputHigh));
  for (let i = 0; i < options.numPrompts; i++)
    outputLens.push(rng.integer(ranges.outputLow, ranges.outputHigh));
  for (let i = 0; i < options.numPrompts; i++) offsets.push(rng.integer(0, tokenizer.vocabSize - 1));

  const builder = new ExactLengthPromptBuilder(tokenizer, rng);
  const allowed = builder.allowedTokenIds;
  const prefix: ExactPrompt = builder.sharedPrefix(options.prefixLen);
  const requests: SampleRequest[] = [];
  for (let i = 0; i < options.numPrompts; i++) {
    const inputLen = inputLens[i]!;
    const seed: number[] = [];
    for (let j = 0; j < inputLen; j++) seed.push(allowed[(offsets[i]! + i + j) % allowed.length]!);
    const prompt = builder.fromTokenIds(seed, inputLen, prefix);
    requests.push({
      prompt: prompt.text,
      ...(options.includeTokenIds === true ? { promptTokenIds: tokenizer.encode(prompt.text) } : {}),
      promptLen: prompt.tokenIds.length,
      expectedOutputLen: outputLens[i]!,
      requestId: `${options.requestIdPrefix ?? ''}${i}`,
    });
  }
  return requests;
}
