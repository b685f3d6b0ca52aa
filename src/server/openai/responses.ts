// Response bodies of the OpenAI-compatible API, in vLLM's shapes (OpenAI's field names kept as they are).

/** Token counts of a request: the prompt once per prompt, the completion summed over choices. */
export interface UsageInfo {
  readonly prompt_tokens: number;
  readonly total_tokens: number;
  readonly completion_tokens: number;
  readonly prompt_tokens_details: null;
}

/** vLLM's prompt log-probs: per prompt position (the first is null) token id → its log-prob entry. */
export type PromptLogprobs = (Record<
  string,
  {
    readonly logprob: number;
    readonly rank: number;
    readonly decoded_token: string;
  }
> | null)[];

/** OpenAI's legacy completions log-probs (one entry per token of `text`). */
export interface CompletionLogprobs {
  readonly tokens: string[];
  readonly token_logprobs: (number | null)[];
  readonly top_logprobs: (Record<string, number> | null)[];
  /** Character offset of each token in the choice's text. */
  readonly text_offset: number[];
}

export interface CompletionChoice {
  readonly index: number;
  readonly text: string;
  readonly logprobs: CompletionLogprobs | null;
  readonly finish_reason: string | null;
  /** The stop string or stop token id that ended the choice; null for EOS, length or still running. */
  readonly stop_reason: string | number | null;
  readonly prompt_logprobs?: PromptLogprobs | null;
}

export interface CompletionResponse {
  readonly id: string;
  readonly object: 'text_completion';
  readonly created: number;
  readonly model: string;
  readonly choices: CompletionChoice[];
  readonly usage: UsageInfo | null;
  readonly system_fingerprint?: null;
}

/** One candidate of chat log-probs. */
export interface ChatTopLogprob {
  readonly token: string;
  readonly logprob: number;
  /** UTF-8 bytes of `token`. */
  readonly bytes: number[];
}

export interface ChatTokenLogprob extends ChatTopLogprob {
  readonly top_logprobs: ChatTopLogprob[];
}

export interface ChatLogprobs {
  readonly content: ChatTokenLogprob[];
}

export interface ChatMessageOut {
  readonly role: string;
  readonly content: string;
  readonly reasoning_content: null;
  readonly tool_calls: never[];
}

export interface ChatChoice {
  readonly index: number;
  readonly message: ChatMessageOut;
  readonly logprobs: ChatLogprobs | null;
  readonly finish_reason: string | null;
  readonly stop_reason: string | number | null;
}

export interface ChatCompletionResponse {
  readonly id: string;
  readonly object: 'chat.completion';
  readonly created: number;
  readonly model: string;
  readonly choices: ChatChoice[];
  readonly usage: UsageInfo;
  readonly prompt_logprobs: PromptLogprobs | null;
  readonly system_fingerprint?: null;
}

export interface ChatDelta {
  readonly role?: string;
  readonly content?: string;
}

export interface ChatChunkChoice {
  readonly index: number;
  readonly delta: ChatDelta;
  readonly logprobs: ChatLogprobs | null;
  readonly finish_reason: string | null;
  readonly stop_reason?: string | number | null;
}

export interface ChatCompletionChunk {
  readonly id: string;
  readonly object: 'chat.completion.chunk';
  readonly created: number;
  readonly model: string;
  readonly choices: ChatChunkChoice[];
  /** Present (null until the last chunk) when stream_options.include_usage is set. */
  usage?: UsageInfo | null;
  prompt_logprobs?: PromptLogprobs | null;
}

export interface CompletionChunk {
  readonly id: string;
  readonly object: 'text_completion';
  readonly created: number;
  readonly model: string;
  readonly choices: CompletionChoice[];
  usage?: UsageInfo | null;
}

export interface ModelCard {
  readonly id: string;
  readonly object: 'model';
  readonly created: number;
  readonly owned_by: string;
  /** The model folder. */
  readonly root: string;
  readonly parent: null;
  readonly max_model_len: number;
}

export interface ModelList {
  readonly object: 'list';
  readonly data: ModelCard[];
}
