// Messages between the HTTP thread (PromptEncoder) and its tokenizer worker thread.

/** Encode `text`; answered by one EncodeReply with the same id. */
export interface EncodeRequest {
  readonly id: number;
  readonly text: string;
  readonly addSpecialTokens: boolean;
}

/** The token ids of an EncodeRequest, or why encoding failed. */
export type EncodeReply =
  | { readonly id: number; readonly ids: Int32Array }
  | { readonly id: number; readonly error: string };
