// The scheduler's settings: one readonly, documented interface, validated once with clear messages.

import { SchedulerConfigError } from './errors.js';

/** Settings of the scheduler and its KV cache. Descriptions double as CLI help. */
export interface SchedulerConfig {
  /** Most requests running at once (--max-num-seqs). */
  readonly maxNumSeqs: number;
  /** Most tokens computed in one step over all requests (--max-num-batched-tokens). */
  readonly maxNumBatchedTokens: number;
  /** Model context length: prompt + max_tokens may not exceed it (--max-model-len). */
  readonly maxModelLen: number;
  /** Tokens per KV cache block, 1..256 (--block-size). */
  readonly blockSize: number;
  /** KV cache blocks available (derived from the KV cache memory). */
  readonly numBlocks: number;
  /** Split prompts longer than the step's token budget over several steps (default true). */
  readonly enableChunkedPrefill: boolean;
  /** Reuse the KV of previously computed full blocks with the same token prefix (default true). */
  readonly enablePrefixCaching: boolean;
}

/** Config as given by callers: the two feature switches may be left out. */
export type SchedulerConfigInput = Omit<SchedulerConfig, 'enableChunkedPrefill' | 'enablePrefixCaching'> &
  Partial<Pick<SchedulerConfig, 'enableChunkedPrefill' | 'enablePrefixCaching'>>;

function requireInteger(name: string, value: number, min: number, max = Number.MAX_SAFE_INTEGER): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in ${min}..${max}`;
    throw new SchedulerConfigError(`${name} must be an integer ${range}, got ${value}`);
  }
}

/** Fills defaults and checks every setting; throws SchedulerConfigError naming the bad one. */
export function resolveSchedulerConfig(input: SchedulerConfigInput): SchedulerConfig {
  const config: SchedulerConfig = {
    maxNumSeqs: input.maxNumSeqs,
    maxNumBatchedTokens: input.maxNumBatchedTokens,
    maxModelLen: input.maxModelLen,
    blockSize: input.blockSize,
    numBlocks: input.numBlocks,
    enableChunkedPrefill: input.enableChunkedPrefill ?? true,
    enablePrefixCaching: input.enablePrefixCaching ?? true,
  };
  requireInteger('maxNumSeqs', config.maxNumSeqs, 1);
  requireInteger('maxNumBatchedTokens', config.maxNumBatchedTokens, 1);
  requireInteger('maxModelLen', config.maxModelLen, 1);
  requireInteger('blockSize', config.blockSize, 1, 256);
  requireInteger('numBlocks', config.numBlocks, 1);
  if (!config.enableChunkedPrefill && config.maxNumBatchedTokens < config.maxModelLen) {
    throw new SchedulerConfigError(
      `without chunked prefill a whole prompt must fit in one step: maxNumBatchedTokens ` +
        `(${config.maxNumBatchedTokens}) must be >= maxModelLen (${config.maxModelLen}); ` +
        'raise it, lower maxModelLen, or enable chunked prefill',
    );
  }
  return Object.freeze(config);
}
