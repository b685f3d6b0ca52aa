// Prompt texts of an exact token count. A string decoded from N random token ids rarely re-encodes to N
// tokens (byte-level BPE merges across the old token boundaries, broken UTF-8 becomes U+FFFD, ...), so:
//   1. vLLM's loop: decode the ids, re-encode, then truncate or extend with random ids and retry, up to
//      10 times, until the re-encoded count is exact;
//   2. if that never settles, keep the first k re-encoded tokens (k as large as works) and fill the rest
//      with "filler" words: vocabulary tokens that are a space and ASCII letters (" the") and re-encode to
//      themselves. Pre-tokenizers of GPT-2 style (DeepSeek's included) cut before every " word", so such
//      words never merge with each other; with k = 0 the prompt is all filler and is exact by design.
// Every accepted text is checked by encoding it, so a prompt is exact or an error says why.

import type { Tokenizer } from '../tokenizer/tokenizer.js';
import type { BenchRng } from './bench-rng.js';
import { PromptLengthError } from './errors.js';

/** The tokenizer methods the prompt builder uses. */
export type PromptTokenizer = Pick<
  Tokenizer,
  'source' | 'encode' | 'decode' | 'vocabSize' | 'hasTokenId' | 'isSpecialTokenId' | 'idToToken'
>;

/** A prompt text and its token ids (encoded without special tokens). */
export interface ExactPrompt {
  readonly text: string;
  /** `encode(text, {addSpecialTokens: false})`. */
  readonly tokenIds: readonly number[];
}

const EMPTY: ExactPrompt = { text: '', tokenIds: [] };
/** vLLM's retry count of the decode / re-encode loop. */
const MAX_RETRY = 10;
/** How many k (tokens kept before the filler) are tried below the re-encoded length before all-filler. */
const MAX_KEEP_STEPS = 8;
/** Filler words gathered at most (plenty of variety, bounded set-up time). */
const MAX_FILLERS = 4096;

/** Builds texts of exact token counts for one tokenizer. */
export class ExactLengthPromptBuilder {
  /** Ids a random prompt may use: every vocabulary id that is not a special token. */
  readonly allowedTokenIds: readonly number[];
  /** Ids of " word" tokens that re-encode to themselves, alone and in sequence; empty if none qualify. */
  readonly fillerTokenIds: readonly number[];

  constructor(
    private readonly tokenizer: PromptTokenizer,
    private readonly rng: BenchRng,
  ) {
    const allowed: number[] = [];
    for (let id = 0; id < tokenizer.vocabSize; id++) {
      if (tokenizer.hasTokenId(id) && !tokenizer.isSpecialTokenId(id)) allowed.push(id);
    }
    if (allowed.length === 0) {
      throw new PromptLengthError(`tokenizer ${tokenizer.source} has no non-special tokens to build prompts`);
    }
    this.allowedTokenIds = allowed;
    this.fillerTokenIds = findFillerTokens(tokenizer, rng);
  }

  /** A text of the given number of tokens from random ids (vLLM draws the shared prefix this way). */
  randomPrompt(numTokens: number): ExactPrompt {
    const ids: number[] = [];
    for (let i = 0; i < numTokens; i++) ids.push(this.randomAllowedId());
    return this.fromTokenIds(ids, numTokens);
  }

  /**
   * A shared prefix of `numTokens` tokens that stays intact when other text follows it: its own random
   * text when a probe shows that, else all filler words.
   */
  sharedPrefix(numTokens: number): ExactPrompt {
    if (numTokens === 0) return EMPTY;
    const prefix = this.randomPrompt(numTokens);
    if (this.fillerTokenIds.length === 0) return prefix;
    const probe = this.fillerText(8);
    if (this.fits(prefix.text + probe, prefix, 8) !== null) return prefix;
    const filler = this.fillerText(numTokens);
    const ids = this.fits(filler, EMPTY, numTokens);
    if (ids === null) throw this.failure(numTokens);
    return { text: filler, tokenIds: ids };
  }

  /**
   * A text that, appended to `prefix.text`, makes a prompt whose ids are `prefix.tokenIds` followed by
   * exactly `numTokens` more; `ids` seed the text (vLLM's consecutive vocabulary ids).
   */
  fromTokenIds(ids: readonly number[], numTokens: number, prefix: ExactPrompt = EMPTY): ExactPrompt {
    if (numTokens === 0) return { text: prefix.text, tokenIds: prefix.tokenIds };
    let seq = [...ids];
    let suffixIds: number[] = [];
    for (let attempt = 0; attempt <= MAX_RETRY; attempt++) {
      const text = this.tokenizer.decode(seq);
      const encoded = this.encode(prefix.text + text);
      const prefixKept = startsWith(encoded, prefix.tokenIds);
      if (prefixKept && encoded.length === prefix.tokenIds.length + numTokens) {
        return { text: prefix.text + text, tokenIds: encoded };
      }
      suffixIds = prefixKept ? encoded.slice(prefix.tokenIds.length) : this.encode(text);
      if (suffixIds.length < numTokens) {
        seq = [...suffixIds];
        while (seq.length < numTokens) seq.push(this.randomAllowedId());
      } else if (suffixIds.length > numTokens) {
        seq = suffixIds.slice(0, numTokens);
      } else {
        break; // the count is right but the prefix's tokens changed at the seam: the filler fixes that
      }
    }
    if (this.fillerTokenIds.length === 0) throw this.failure(numTokens);
    const start = Math.min(suffixIds.length, numTokens);
    for (let k = start; k >= 0 && k >= start - MAX_KEEP_STEPS; k--) {
      const text = this.tokenizer.decode(suffixIds.slice(0, k)) + this.fillerText(numTokens - k);
      const full = this.fits(prefix.text + text, prefix, numTokens);
      if (full !== null) return { text: prefix.text + text, tokenIds: full };
    }
    const text = this.fillerText(numTokens);
    const full = this.fits(prefix.text + text, prefix, numTokens);
    if (full !== null) return { text: prefix.text + text, tokenIds: full };
    throw this.failure(numTokens);
  }

  /** `m` random filler words, as text (" the cat sat"). */
  fillerText(m: number): string {
    const ids: number[] = [];
    for (let i = 0; i < m; i++)
      ids.push(this.fillerTokenIds[this.rng.integer(0, this.fillerTokenIds.length - 1)]!);
    return this.tokenizer.decode(ids);
  }

  private randomAllowedId(): number {
    return this.allowedTokenIds[this.rng.integer(0, this.allowedTokenIds.length - 1)]!;
  }

  /** The ids of `text` when they are `prefix.tokenIds` plus exactly `numTokens` more, else null. */
  private fits(text: string, prefix: ExactPrompt, numTokens: number): number[] | null {
    const ids = this.encode(text);
    return ids.length === prefix.tokenIds.length + numTokens && startsWith(ids, prefix.tokenIds) ? ids : null;
  }

  private encode(text: string): number[] {
    return this.tokenizer.encode(text, { addSpecialTokens: false });
  }

  private failure(numTokens: number): PromptLengthError {
    return new PromptLengthError(
      `cannot build a prompt of exactly ${numTokens} tokens with tokenizer ${this.tokenizer.source}: ` +
        'decoding random tokens never re-encoded to that count, and the vocabulary has no " word" tokens ' +
        'that re-encode to themselves to fill with (use --dataset-name jsonl with your own prompts instead)',
    );
  }
}

/**
 * The filler words of a tokenizer: ids whose vocabulary string is a space marker (Ġ or ▁) and ASCII
 * letters, that decode to " letters" and re-encode to themselves; then checked in sequence on a sample.
 */
function findFillerTokens(tokenizer: PromptTokenizer, rng: BenchRng): number[] {
  const shape = /^(Ġ|▁)[A-Za-z]+$/;
  const found: number[] = [];
  for (let id = 0; id < tokenizer.vocabSize && found.length < MAX_FILLERS; id++) {
    const piece = tokenizer.idToToken(id);
    if (piece === undefined || !shape.test(piece) || tokenizer.isSpecialTokenId(id)) continue;
    const text = tokenizer.decode([id]);
    if (!/^ [A-Za-z]+$/.test(text)) continue;
    const again = tokenizer.encode(text, { addSpecialTokens: false });
    if (again.length === 1 && again[0] === id) found.push(id);
  }
  if (found.length === 0) return [];
  const sample: number[] = [];
  for (let i = 0; i < 64; i++) sample.push(found[rng.integer(0, found.length - 1)]!);
  const again = tokenizer.encode(tokenizer.decode(sample), { addSpecialTokens: false });
  const same = again.length === sample.length && again.every((id, i) => id === sample[i]);
  return same ? found : [];
}

function startsWith(ids: readonly number[], prefix: readonly number[]): boolean {
  if (ids.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (ids[i] !== prefix[i]) return false;
  return true;
}
