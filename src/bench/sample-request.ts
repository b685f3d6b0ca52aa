// One benchmark request as a dataset produces it: the prompt to send, its token count and how many
// tokens to ask for. The request functions turn it into an HTTP request.

/** A prompt of the benchmark dataset. */
export interface SampleRequest {
  /** The prompt text (sent as `prompt`, or as the user message for chat). */
  readonly prompt: string;
  /**
   * The prompt as token ids, when known. Sent instead of the text with --send-token-ids (completions only).
   * These are the ids the server itself would build from `prompt` (special tokens such as BOS included).
   */
  readonly promptTokenIds?: readonly number[];
  /** The prompt exists only as token ids (`prompt` is empty): it must be sent as ids, to completions. */
  readonly sendAsTokenIds?: boolean;
  /** Prompt tokens as the dataset counts them (for the random dataset: without the BOS the server adds). */
  readonly promptLen: number;
  /** Tokens to generate (`max_tokens` / `max_completion_tokens`). */
  readonly expectedOutputLen: number;
  /** Sent as the `x-request-id` header. */
  readonly requestId: string;
}
