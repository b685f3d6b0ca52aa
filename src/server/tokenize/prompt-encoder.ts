// Prompt text to token ids for the HTTP thread, without ever stalling it:
//  1. Text that cannot fit the context is refused before tokenizing, by a bound on characters per token.
//     Byte-level BPE (DeepSeek's tokenizers) turns text into tokens that each stand for a contiguous run of
//     the text's UTF-8 bytes (or, for an added token, its literal content), and a character is at least one
//     byte and at most as many UTF-16 code units as bytes. So one token covers at most L characters (JS
//     string length), L being the longest vocabulary entry in byte-level form, and a text of more than
//     L × max_model_len characters has more than max_model_len tokens. (DeepSeek-V3: L = 128.) The bound
//     never refuses a text that fits; it stops the 1.6 MB prompt that used to freeze the server for 15 s.
//  2. Short texts are encoded inline (cheaper than a thread hop); longer ones on a tokenizer worker thread,
//     so /health and every other request keep being answered while they are encoded.

import { Worker } from 'node:worker_threads';
import type { ModelSettings } from '../../config/engine-config.js';
import type { Tokenizer } from '../../tokenizer/tokenizer.js';
import { BadRequestError, InternalServerError } from '../errors.js';
import type { EncodeReply, EncodeRequest } from './protocol.js';

/** Texts up to this many characters are encoded on the HTTP thread (well under a millisecond). */
export const DEFAULT_INLINE_MAX_CHARS = 4096;

/** The most characters (UTF-16 code units) one token of `tokenizer` can stand for (see the header). */
export function maxCharsPerToken(tokenizer: Tokenizer): number {
  let longest = 1;
  for (let id = 0; id < tokenizer.vocabSize; id++) {
    const piece = tokenizer.idToToken(id);
    if (piece !== undefined && piece.length > longest) longest = piece.length;
  }
  return longest;
}

export interface PromptEncoderOptions {
  /** Texts longer than this go to the worker thread; default {@link DEFAULT_INLINE_MAX_CHARS}. */
  readonly inlineMaxChars?: number;
  /** The worker script (tests); default: the compiled one beside this file. */
  readonly workerUrl?: URL;
}

interface Pending {
  readonly resolve: (ids: number[]) => void;
  readonly reject: (e: Error) => void;
}

/** Encodes prompt texts for the routes; see the file header. Close it with the server. */
export class PromptEncoder {
  /** Longest text that could still fit the context: maxCharsPerToken × maxModelLen. */
  readonly maxPromptChars: number;
  private readonly inlineMaxChars: number;
  private worker: Worker | null = null;
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;

  constructor(
    private readonly tokenizer: Tokenizer,
    private readonly modelSettings: ModelSettings,
    readonly maxModelLen: number,
    private readonly options: PromptEncoderOptions = {},
  ) {
    this.maxPromptChars = maxCharsPerToken(tokenizer) * maxModelLen;
    this.inlineMaxChars = options.inlineMaxChars ?? DEFAULT_INLINE_MAX_CHARS;
  }

  /** Refuses a text (or the sum of a chat's texts) too long to fit the context; `param` names the field. */
  checkLength(numChars: number, param: string, where: string = param): void {
    if (numChars <= this.maxPromptChars) return;
    throw new BadRequestError(
      `${where} is ${numChars} characters long, more than this model's maximum context length of ` +
        `${this.maxModelLen} tokens can hold: a token covers at most ${this.maxPromptChars / this.maxModelLen} ` +
        `characters, so at most ${this.maxPromptChars} characters can fit. Please reduce the length of the input.`,
      param,
    );
  }

  /** Token ids of `text` (checked with checkLength first). */
  async encode(
    text: string,
    addSpecialTokens: boolean,
    param: string,
    where: string = param,
  ): Promise<number[]> {
    this.checkLength(text.length, param, where);
    if (text.length <= this.inlineMaxChars) return this.tokenizer.encode(text, { addSpecialTokens });
    return this.encodeOnWorker(text, addSpecialTokens);
  }

  /** Stops the worker thread; pending encodes fail. */
  async close(): Promise<void> {
    this.closed = true;
    const worker = this.worker;
    this.worker = null;
    this.failPending('the server is shutting down');
    if (worker !== null) await worker.terminate();
  }

  private encodeOnWorker(text: string, addSpecialTokens: boolean): Promise<number[]> {
    if (this.closed) return Promise.reject(new InternalServerError('the tokenizer is closed'));
    const worker = this.startedWorker();
    const id = this.nextId++;
    return new Promise<number[]>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const request: EncodeRequest = { id, text, addSpecialTokens };
      worker.postMessage(request);
    });
  }

  private startedWorker(): Worker {
    if (this.worker !== null) return this.worker;
    const worker = new Worker(this.options.workerUrl ?? new URL('./tokenizer-worker.js', import.meta.url), {
      workerData: this.modelSettings,
    });
    worker.unref();
    worker.on('message', (m: EncodeReply) => {
      const p = this.pending.get(m.id);
      if (p === undefined) return;
      this.pending.delete(m.id);
      if ('error' in m) p.reject(new InternalServerError(`tokenization failed: ${m.error}`));
      else p.resolve(Array.from(m.ids));
    });
    const onGone = (why: string) => {
      if (this.worker !== worker) return;
      this.worker = null;
      this.failPending(why);
    };
    worker.on('error', (e) => onGone(`the tokenizer thread failed: ${e.message}`));
    worker.on('exit', (code) => onGone(`the tokenizer thread exited (code ${code})`));
    this.worker = worker;
    return worker;
  }

  private failPending(why: string): void {
    for (const p of this.pending.values()) p.reject(new InternalServerError(why));
    this.pending.clear();
  }
}
