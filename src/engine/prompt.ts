// The two forms of a prompt: as a caller gives it to the offline API (`PromptInput`, vLLM's shapes) and
// encoded, ready for the engine (`EncodedPrompt`), as the offline API and the server both submit it.

/** A prompt as given to `LLM.generate`: text (tokenized with the model's special tokens) or token ids. */
export type PromptInput =
  | string
  | { readonly prompt: string }
  | { readonly prompt_token_ids: readonly number[] };

/** One prompt to run: its text (null when given as token ids) and its token ids. */
export interface EncodedPrompt {
  readonly text: string | null;
  readonly tokenIds: readonly number[];
}
