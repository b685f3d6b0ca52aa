// POST /tokenize and POST /detokenize (vLLM's): a text prompt or chat messages to token ids (with their
// strings when asked), and token ids back to text, using the served model's tokenizer. Texts too long for
// the context are refused before encoding, long ones are encoded off the HTTP thread (PromptEncoder).

import type { FastifyInstance } from 'fastify';
import type { ChatMessage } from '../../tokenizer/chat-template.js';
import { BadRequestError } from '../errors.js';
import { tokenTextOf } from '../logprobs-format.js';
import { detokenizeRequestSchema, parseBody, tokenizeRequestSchema } from '../openai/requests.js';
import { renderChat } from '../prompts.js';
import type { ServingContext } from '../serving-context.js';
import { checkModel } from './common.js';

export function registerTokenize(app: FastifyInstance, ctx: ServingContext): void {
  app.post('/tokenize', async (request) => {
    const body = parseBody(tokenizeRequestSchema, request.body);
    checkModel(ctx, body.model);
    let tokens: number[];
    if (body.messages !== undefined) {
      const continueFinal = body.continue_final_message === true;
      const text = renderChat(
        ctx.tokenizer,
        body.messages as ChatMessage[],
        {
          addGenerationPrompt: body.add_generation_prompt ?? !continueFinal,
          continueFinalMessage: continueFinal,
          tools: body.tools ?? null,
          documents: null,
          chatTemplateKwargs: body.chat_template_kwargs ?? null,
        },
        ctx.encoder,
      );
      tokens = await ctx.encoder.encode(text, body.add_special_tokens ?? false, 'messages');
    } else if (body.prompt !== undefined) {
      tokens = await ctx.encoder.encode(body.prompt, body.add_special_tokens ?? true, 'prompt');
    } else {
      throw new BadRequestError('give either prompt (a string) or messages (a chat)', 'prompt');
    }
    const tokenText = tokenTextOf(ctx.tokenizer, false);
    return {
      count: tokens.length,
      max_model_len: ctx.info.maxModelLen,
      tokens,
      token_strs: body.return_token_strs ? tokens.map(tokenText) : null,
    };
  });

  app.post('/detokenize', async (request) => {
    const body = parseBody(detokenizeRequestSchema, request.body);
    checkModel(ctx, body.model);
    const max = ctx.info.maxModelLen;
    if (body.tokens.length > max) {
      throw new BadRequestError(
        `tokens holds ${body.tokens.length} ids; at most ${max} (the model's maximum context length) are allowed`,
        'tokens',
      );
    }
    return { prompt: ctx.tokenizer.decode(body.tokens) };
  });
}
