// Named errors of the tokenizer package: loading tokenizer files, decoding ids and rendering chat templates.
// Each message says what was wrong and what is allowed, so the server can pass it on unchanged.

/** A tokenizer file (tokenizer.json, tokenizer_config.json, a chat template file) is missing or unreadable. */
export class TokenizerFileError extends Error {
  override readonly name = 'TokenizerFileError';
  /** The file that could not be read. */
  readonly path: string;
  constructor(path: string, message: string) {
    super(message);
    this.path = path;
  }
}

/** `decode` was given an id that the vocabulary does not contain. */
export class TokenIdOutOfRangeError extends Error {
  override readonly name = 'TokenIdOutOfRangeError';
  readonly tokenId: number;
  constructor(tokenId: number, vocabSize: number) {
    super(`token id ${tokenId} is not in the vocabulary: ids must be integers in [0, ${vocabSize - 1}]`);
    this.tokenId = tokenId;
  }
}

/** A chat was requested from a model whose tokenizer has no chat template and none was passed in. */
export class MissingChatTemplateError extends Error {
  override readonly name = 'MissingChatTemplateError';
  constructor(source: string) {
    super(
      `the tokenizer at ${source} has no chat template (no "chat_template" in tokenizer_config.json and no ` +
        'chat_template.jinja); pass one with --chat-template <file or template string>',
    );
  }
}

/** A chat template could not be parsed, or raised an error while rendering. */
export class ChatTemplateError extends Error {
  override readonly name = 'ChatTemplateError';
}
