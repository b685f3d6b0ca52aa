// Chat templates: turn a list of chat messages into the prompt string a model was trained on, by rendering the
// Jinja template from tokenizer_config.json (or one passed with --chat-template) the way Hugging Face
// transformers' apply_chat_template does: same variables, trim_blocks and lstrip_blocks on.

import { existsSync, readFileSync } from 'node:fs';
import { Template } from '@huggingface/jinja';
import { ChatTemplateError, TokenizerFileError } from './errors.js';

/** One part of a multi-part message content (OpenAI style); only `text` parts can be rendered. */
export interface ChatContentPart {
  readonly type: string;
  readonly text?: string;
  readonly [key: string]: unknown;
}

/**
 * One chat message as the template sees it. Keys keep their OpenAI names (`tool_calls`, `tool_call_id`,
 * `name`) because templates read them by those names; unknown keys are passed through unchanged.
 */
export interface ChatMessage {
  readonly role: string;
  /** A string, null (an assistant message with only tool calls), or text parts joined with '\n'. */
  readonly content?: string | null | readonly ChatContentPart[];
  readonly [key: string]: unknown;
}

/** What a caller controls when rendering a chat. */
export interface ChatTemplateOptions {
  /** Append the tokens that start an assistant turn (transformers' `add_generation_prompt`). Default false. */
  readonly addGenerationPrompt?: boolean;
  /** Tool (function) definitions, passed to the template as `tools`. */
  readonly tools?: readonly unknown[] | null;
  /** Retrieval documents, passed to the template as `documents`. */
  readonly documents?: readonly unknown[] | null;
  /** Extra template variables (vLLM's `chat_template_kwargs`); they override the defaults above. */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** The special-token strings transformers passes into every template (its `special_tokens_map`). */
export interface ChatTemplateSpecialTokens {
  readonly bos_token?: string;
  readonly eos_token?: string;
  readonly unk_token?: string;
  readonly pad_token?: string;
  readonly additional_special_tokens?: readonly string[];
}

/** A `chat_template` value of tokenizer_config.json: one template, or a list of named ones. */
export type ChatTemplateSource = string | readonly { readonly name: string; readonly template: string }[];

/** Characters whose presence marks a --chat-template value as a template rather than a file path (as vLLM). */
const JINJA_CHARS = /[{}\n]/;

/**
 * Resolves a --chat-template value: the contents of the file when `value` names one, else `value` itself when
 * it looks like a template (contains `{`, `}` or a newline). Throws TokenizerFileError otherwise.
 */
export function resolveChatTemplateArg(value: string): {
  readonly template: string;
  readonly origin: string;
} {
  if (existsSync(value)) {
    try {
      return { template: readFileSync(value, 'utf8'), origin: value };
    } catch (err) {
      throw new TokenizerFileError(
        value,
        `cannot read chat template file ${value}: ${(err as Error).message}`,
      );
    }
  }
  if (JINJA_CHARS.test(value)) return { template: value, origin: '--chat-template string' };
  throw new TokenizerFileError(
    value,
    `chat template ${JSON.stringify(value)} looks like a file path but no such file exists; ` +
      'pass an existing file or a Jinja template string',
  );
}

/** A parsed chat template (or a set of named ones), ready to render. */
export class ChatTemplate {
  /** Where the template came from, for error messages. */
  readonly origin: string;
  private readonly templates: Map<string, Template>;

  /** Parses `source`; throws ChatTemplateError naming `origin` when the Jinja does not parse. */
  constructor(source: ChatTemplateSource, origin: string) {
    this.origin = origin;
    this.templates = new Map();
    const named = typeof source === 'string' ? [{ name: 'default', template: source }] : source;
    for (const { name, template } of named) {
      try {
        this.templates.set(name, new Template(template));
      } catch (err) {
        throw new ChatTemplateError(
          `chat template ${name === 'default' ? '' : `'${name}' `}from ${origin} does not parse: ${(err as Error).message}`,
        );
      }
    }
  }

  /** The names of the templates held (`default` for a single template). */
  get names(): string[] {
    return [...this.templates.keys()];
  }

  /**
   * Renders `messages`. Variables, as transformers passes them: `messages`, `tools`, `documents`,
   * `add_generation_prompt`, the special-token strings, then `extra` (which may override any of them).
   * With named templates, `tool_use` is chosen when tools are given and it exists, else `default`.
   */
  render(
    messages: readonly ChatMessage[],
    specialTokens: ChatTemplateSpecialTokens,
    options: ChatTemplateOptions = {},
  ): string {
    const template = this.select(options.tools != null && options.tools.length > 0);
    const variables: Record<string, unknown> = {
      ...definedOnly(specialTokens as Record<string, unknown>),
      messages: messages.map(normaliseMessage),
      add_generation_prompt: options.addGenerationPrompt ?? false,
    };
    if (options.tools != null) variables.tools = options.tools;
    if (options.documents != null) variables.documents = options.documents;
    Object.assign(variables, options.extra ?? {});
    try {
      return template.render(variables);
    } catch (err) {
      throw new ChatTemplateError(
        `chat template from ${this.origin} failed to render: ${(err as Error).message}`,
      );
    }
  }

  private select(hasTools: boolean): Template {
    const wanted = hasTools && this.templates.has('tool_use') ? 'tool_use' : 'default';
    const template =
      this.templates.get(wanted) ?? (this.templates.size === 1 ? [...this.templates.values()][0] : undefined);
    if (template === undefined) {
      throw new ChatTemplateError(
        `chat template from ${this.origin} has no '${wanted}' template; it has: ${this.names.join(', ')}`,
      );
    }
    return template;
  }
}

/** Flattens text parts to one string (joined with '\n', as vLLM's "string" content format) and drops undefined keys. */
function normaliseMessage(message: ChatMessage, index: number): Record<string, unknown> {
  const out = definedOnly(message as Record<string, unknown>);
  const content = message.content;
  if (content === undefined) {
    out.content = null;
  } else if (Array.isArray(content)) {
    out.content = (content as readonly ChatContentPart[])
      .map((part, j) => {
        if (part.type !== 'text' || typeof part.text !== 'string') {
          throw new ChatTemplateError(
            `messages[${index}].content[${j}] has type '${part.type}': only 'text' parts are supported`,
          );
        }
        return part.text;
      })
      .join('\n');
  }
  return out;
}

function definedOnly(record: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(record)) if (value !== undefined) out[key] = value;
  return out;
}
