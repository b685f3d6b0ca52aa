// Named errors of the scheduling core. Request errors carry the numbers the server needs to word its reply
// (HTTP 400); contract errors mean a caller broke the schedule/update protocol (a bug, HTTP 500).

/** A scheduler setting is out of range. */
export class SchedulerConfigError extends Error {
  override readonly name = 'SchedulerConfigError';
}

/** A request is malformed: empty prompt, bad max_tokens, bad token id, reused id. */
export class InvalidRequestError extends Error {
  override readonly name = 'InvalidRequestError';
}

/** prompt + max_tokens exceeds the model's context length (wording as vLLM/OpenAI chat). */
export class ContextLengthExceededError extends Error {
  override readonly name = 'ContextLengthExceededError';
  readonly maxModelLen: number;
  readonly numPromptTokens: number;
  readonly maxTokens: number;

  constructor(maxModelLen: number, numPromptTokens: number, maxTokens: number) {
    super(
      `This model's maximum context length is ${maxModelLen} tokens. However, you requested ` +
        `${numPromptTokens + maxTokens} tokens (${numPromptTokens} in the messages, ${maxTokens} in the ` +
        'completion). Please reduce the length of the messages or completion.',
    );
    this.maxModelLen = maxModelLen;
    this.numPromptTokens = numPromptTokens;
    this.maxTokens = maxTokens;
  }
}

/** A request would need more KV blocks than the whole cache has, so it could never finish. */
export class KVCacheCapacityError extends Error {
  override readonly name = 'KVCacheCapacityError';
  readonly numBlocksNeeded: number;
  readonly numBlocks: number;

  constructor(
    requestId: string,
    numTokens: number,
    blockSize: number,
    numBlocksNeeded: number,
    numBlocks: number,
  ) {
    super(
      `Request ${requestId} needs up to ${numTokens} tokens of KV cache (${numBlocksNeeded} blocks of ` +
        `${blockSize} tokens) but the whole cache holds ${numBlocks} blocks (${numBlocks * blockSize} tokens). ` +
        'Reduce the prompt or max_tokens, or give the KV cache more memory.',
    );
    this.numBlocksNeeded = numBlocksNeeded;
    this.numBlocks = numBlocks;
  }
}

/** The schedule → run → updateFromOutput protocol was broken by the caller. */
export class SchedulerContractError extends Error {
  override readonly name = 'SchedulerContractError';
}
