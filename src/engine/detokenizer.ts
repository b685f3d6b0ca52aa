// Incremental detokenization: turns the token ids of one request, fed one at a time, into text deltas that
// never split a UTF-8 character. As vLLM's incremental detokenizer, it decodes only a small window of recent
// tokens: a prefix (already emitted, decoded again for context) and the unread tail, and emits the tail's
// text except a final U+FFFD, which is what an incomplete UTF-8 sequence at the end decodes to.

import type { Tokenizer } from '../tokenizer/tokenizer.js';

/** Prompt tokens decoded before the first generated token, for context (vLLM's initial offset). */
const INITIAL_PREFIX_TOKENS = 5;
/**
 * Unread tokens after which a final U+FFFD is taken as final (a real replacement character or invalid
 * bytes) rather than as an incomplete character; bounds the window, so each token costs O(1) decoding.
 * Byte-level vocabularies can chain a few tokens that each end inside a character, never this many.
 */
const MAX_PENDING_TOKENS = 16;
const REPLACEMENT_CHAR = '\uFFFD';

/** Options of an {@link IncrementalDetokenizer}. */
export interface DetokenizerOptions {
  /** Leave out special tokens (EOS, BOS...), as vLLM's `skip_special_tokens`. Default true. */
  readonly skipSpecialTokens?: boolean;
  /** The request's prompt ids; its last few give the first generated tokens their context. */
  readonly promptTokenIds?: readonly number[];
}

/**
 * Per-request incremental detokenizer. Ids outside the tokenizer's vocabulary (the padding rows of the
 * model's logits) decode to nothing, as the Hugging Face tokenizers library does, rather than throwing.
 */
export class IncrementalDetokenizer {
  private readonly tokenizer: Tokenizer;
  private readonly skipSpecialTokens: boolean;
  /** Visible ids of the current window: [0, readOffset) is context already emitted, the rest is unread. */
  private window: number[];
  private readOffset: number;
  /** Text of window[0, readOffset), cached because it only changes when the window slides. */
  private prefixText: string;
  /** Characters of the unread tokens' text already emitted (all but a final U+FFFD). */
  private numPendingCharsEmitted = 0;
  private text = '';
  private numTokensSeen = 0;

  constructor(tokenizer: Tokenizer, options: DetokenizerOptions = {}) {
    this.tokenizer = tokenizer;
    this.skipSpecialTokens = options.skipSpecialTokens ?? true;
    const prompt = (options.promptTokenIds ?? []).filter((id) => this.isVisible(id));
    this.window = prompt.slice(Math.max(prompt.length - INITIAL_PREFIX_TOKENS, 0));
    this.readOffset = this.window.length;
    this.prefixText = this.decode(this.window);
  }

  /** All text emitted so far (the concatenation of every delta returned). */
  get outputText(): string {
    return this.text;
  }

  /** Number of ids fed so far, skipped ones included. */
  get numTokens(): number {
    return this.numTokensSeen;
  }

  /** Feeds one generated id; returns the new text ('' while it only adds to an incomplete character). */
  push(tokenId: number): string {
    this.numTokensSeen++;
    if (!this.isVisible(tokenId)) return '';
    this.window.push(tokenId);
    const numPending = this.window.length - this.readOffset;
    const fullText = this.decode(this.window);
    const pendingText = fullText.startsWith(this.prefixText)
      ? fullText.slice(this.prefixText.length)
      : this.decode(this.window.slice(this.readOffset));
    const isIncomplete = pendingText.endsWith(REPLACEMENT_CHAR) && numPending < MAX_PENDING_TOKENS;
    const stableEnd = isIncomplete ? pendingText.length - 1 : pendingText.length;
    const delta =
      stableEnd > this.numPendingCharsEmitted
        ? pendingText.slice(this.numPendingCharsEmitted, stableEnd)
        : '';
    this.numPendingCharsEmitted = Math.max(this.numPendingCharsEmitted, stableEnd);
    if (!isIncomplete) this.slide(pendingText.endsWith(REPLACEMENT_CHAR));
    this.text += delta;
    return delta;
  }

  /** Feeds several ids; returns the concatenated delta. */
  pushMany(tokenIds: readonly number[]): string {
    let delta = '';
    for (const id of tokenIds) delta += this.push(id);
    return delta;
  }

  /**
   * Emits what is held back: an incomplete character at the end of the output, as U+FFFD. vLLM drops such
   * bytes; call this when a request ends to show them instead.
   */
  flush(): string {
    if (this.readOffset === this.window.length) return '';
    const pendingText = this.decode(this.window.slice(this.readOffset));
    const delta = pendingText.slice(this.numPendingCharsEmitted);
    this.slide(true);
    this.text += delta;
    return delta;
  }

  /** Makes the unread tokens the new context; after broken bytes, starts with no context instead. */
  private slide(broken: boolean): void {
    this.window = broken ? [] : this.window.slice(this.readOffset);
    this.readOffset = this.window.length;
    this.prefixText = this.decode(this.window);
    this.numPendingCharsEmitted = 0;
  }

  private isVisible(id: number): boolean {
    return this.tokenizer.hasTokenId(id) && !(this.skipSpecialTokens && this.tokenizer.isSpecialTokenId(id));
  }

  private decode(ids: readonly number[]): string {
    return ids.length === 0 ? '' : this.tokenizer.decode(ids, { cleanUpTokenizationSpaces: false });
  }
}
