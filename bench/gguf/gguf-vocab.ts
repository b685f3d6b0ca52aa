// The tokenizer block of a GGUF file (`tokenizer.ggml.*`): llama.cpp refuses a model without one. Two
// kinds: a model's own byte-level BPE tokenizer taken from its Hugging Face `tokenizer.json` (every
// token, every merge, the special tokens marked CONTROL, GPT-2's pre-tokenizer regex), so that llama.cpp
// tokenizes text as Duet does; or, for dummy weights without a tokenizer, a placeholder vocabulary of
// `vocab_size` tokens (GPT-2's 256 byte tokens, then unused ones) that loads and is never used to
// tokenize (the benchmark feeds token ids).

import type { GgufValue } from './gguf-file.js';

/** llama.cpp's token types (llama_token_type). */
const TOKEN_TYPE = { NORMAL: 1, CONTROL: 3, UNUSED: 5 } as const;

/** A tokenizer.json that is not a byte-level BPE tokenizer a GGUF can carry. */
export class GgufVocabError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GgufVocabError';
  }
}

/** What the tokenizer block says besides the tokens. */
export interface GgufVocabOptions {
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  /** Whether llama.cpp adds BOS when it tokenizes a prompt itself (tokenizer_config's add_bos_token). */
  readonly addBos: boolean;
}

/** Whether byte b is printable in GPT-2's byte encoding (it then stands for itself). */
function isPrintableByte(b: number): boolean {
  return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
}

/** GPT-2's byte-level encoding of byte b: printable bytes map to themselves, the others to U+0100 onward. */
function byteToken(b: number): string {
  if (isPrintableByte(b)) return String.fromCharCode(b);
  let n = 0;
  for (let x = 0; x < b; x++) if (!isPrintableByte(x)) n++;
  return String.fromCharCode(256 + n);
}

function tokenizerBlock(
  tokens: readonly string[],
  types: readonly number[],
  merges: readonly string[],
  pre: string,
  o: GgufVocabOptions,
): Map<string, GgufValue> {
  const m = new Map<string, GgufValue>();
  m.set('tokenizer.ggml.model', { type: 'string', value: 'gpt2' });
  m.set('tokenizer.ggml.pre', { type: 'string', value: pre });
  m.set('tokenizer.ggml.tokens', { type: 'array', items: 'string', value: tokens });
  m.set('tokenizer.ggml.token_type', { type: 'array', items: 'i32', value: types });
  m.set('tokenizer.ggml.merges', { type: 'array', items: 'string', value: merges });
  if (o.bosTokenId !== null) m.set('tokenizer.ggml.bos_token_id', { type: 'u32', value: o.bosTokenId });
  if (o.eosTokenId !== null) m.set('tokenizer.ggml.eos_token_id', { type: 'u32', value: o.eosTokenId });
  m.set('tokenizer.ggml.add_bos_token', { type: 'bool', value: o.addBos });
  return m;
}

/**
 * A placeholder byte-level vocabulary of `vocabSize` tokens and no merges: BOS and EOS are CONTROL tokens,
 * ids below 256 GPT-2's byte tokens, the rest UNUSED. Enough for llama.cpp to load the model.
 */
export function placeholderVocab(o: GgufVocabOptions): Map<string, GgufValue> {
  const tokens: string[] = [];
  const types: number[] = [];
  const special = new Set([o.bosTokenId, o.eosTokenId]);
  for (let i = 0; i < o.vocabSize; i++) {
    if (special.has(i)) {
      tokens.push(`<|special_${i}|>`);
      types.push(TOKEN_TYPE.CONTROL);
    } else if (i < 256) {
      tokens.push(byteToken(i));
      types.push(TOKEN_TYPE.NORMAL);
    } else {
      tokens.push(`[PAD${i}]`);
      types.push(TOKEN_TYPE.UNUSED);
    }
  }
  return tokenizerBlock(tokens, types, [], 'default', { ...o, addBos: false });
}

/** A JSON object's field, or a GgufVocabError naming the path. */
function field(obj: unknown, key: string, path: string): unknown {
  if (typeof obj !== 'object' || obj === null || !(key in obj)) {
    throw new GgufVocabError(`tokenizer.json has no "${path}"`);
  }
  return (obj as Record<string, unknown>)[key];
}

/**
 * The tokenizer block of a byte-level BPE `tokenizer.json` (parsed): its vocabulary in id order (ids the
 * vocabulary lacks, up to `vocabSize`, become UNUSED placeholders), its added special tokens as CONTROL,
 * its merges, and llama.cpp's `gpt-2` pre-tokenizer (the regex of HF's ByteLevel with use_regex).
 * A GgufVocabError for another model type or pre-tokenizer, or ids outside [0, vocabSize).
 */
export function byteLevelBpeVocab(tokenizerJson: unknown, o: GgufVocabOptions): Map<string, GgufValue> {
  const model = field(tokenizerJson, 'model', 'model');
  const type = field(model, 'type', 'model.type');
  if (type !== 'BPE') throw new GgufVocabError(`tokenizer.json model.type is "${String(type)}"; only BPE`);
  const pre = field(tokenizerJson, 'pre_tokenizer', 'pre_tokenizer') as Record<string, unknown> | null;
  if (pre?.type !== 'ByteLevel' || pre.use_regex === false || pre.add_prefix_space === true) {
    throw new GgufVocabError(
      `tokenizer.json pre_tokenizer is ${JSON.stringify(pre)}; only ByteLevel with GPT-2's regex and no ` +
        'prefix space is written to GGUF',
    );
  }
  const tokens: (string | undefined)[] = new Array(o.vocabSize).fill(undefined);
  const types: number[] = new Array(o.vocabSize).fill(TOKEN_TYPE.NORMAL);
  const place = (content: string, id: number, what: string) => {
    if (!Number.isInteger(id) || id < 0 || id >= o.vocabSize) {
      throw new GgufVocabError(
        `tokenizer.json ${what} "${content}" has id ${id}, outside [0, ${o.vocabSize})`,
      );
    }
    tokens[id] = content;
  };
  const vocab = field(model, 'vocab', 'model.vocab');
  if (typeof vocab !== 'object' || vocab === null)
    throw new GgufVocabError('tokenizer.json model.vocab is not an object');
  for (const [content, id] of Object.entries(vocab)) place(content, id as number, 'token');
  const added = (tokenizerJson as { added_tokens?: unknown }).added_tokens ?? [];
  if (!Array.isArray(added)) throw new GgufVocabError('tokenizer.json added_tokens is not an array');
  for (const a of added as { id: number; content: string; special?: boolean }[]) {
    place(a.content, a.id, 'added token');
    if (a.special === true) types[a.id] = TOKEN_TYPE.CONTROL;
  }
  const filled = tokens.map((t, i) => {
    if (t !== undefined) return t;
    types[i] = TOKEN_TYPE.UNUSED;
    return `[PAD${i}]`;
  });
  // Merges are "a b" strings (older files) or [a, b] pairs (newer ones); GGUF stores "a b".
  const rawMerges = field(model, 'merges', 'model.merges');
  if (!Array.isArray(rawMerges)) throw new GgufVocabError('tokenizer.json model.merges is not an array');
  const merges = rawMerges.map((m, i) => {
    if (typeof m === 'string') return m;
    if (Array.isArray(m) && m.length === 2 && m.every((p) => typeof p === 'string')) return m.join(' ');
    throw new GgufVocabError(`tokenizer.json model.merges[${i}] is neither "a b" nor ["a", "b"]`);
  });
  return tokenizerBlock(filled, types, merges, 'gpt-2', o);
}
