// The offline API, after vLLM's `LLM` class: load a model once, then `generate` or `chat` over many prompts
// at once; the prompts are batched by the engine (continuous batching) and the outputs come back in input
// order, with vLLM's field names.
//
//   const llm = new LLM({ model: 'path/to/DeepSeek-V2-Lite', hfOverrides: { num_hidden_layers: 4 } });
//   const outputs = await llm.generate(['Hello'], { temperature: 0, maxTokens: 16 });
//   await llm.close();

import { SingleBar } from 'cli-progress';
import type { EngineConfig } from '../config/engine-config.js';
import { buildEngineConfig, type EngineOptions } from '../config/engine-options.js';
import type { FinishReason } from '../core/request.js';
import type { TokenLogprobs } from '../sampling/logprobs.js';
import {
  forkSamplingParams,
  resolveSamplingParams,
  SamplingParamsError,
  type SamplingParamsInput,
} from '../sampling/sampling-params.js';
import type { ChatMessage, ChatTemplateOptions } from '../tokenizer/chat-template.js';
import type { Logger } from '../util/logger.js';
import { createEngine } from './create-engine.js';
import type { LLMEngine } from './llm-engine.js';
import type { EncodedPrompt, PromptInput } from './prompt.js';
import type { EngineRequestState } from './request-state.js';
import { samplingDefaultsFrom } from './sampling-defaults.js';

/** One candidate token's log-probability. */
export interface TopLogprob {
  readonly id: number;
  readonly logprob: number;
}

/** Log-probabilities at one position: the chosen (sampled or prompt) token's, and the top-K. */
export interface PositionLogprobs {
  readonly token_id: number;
  readonly logprob: number;
  /** 1 = the most likely token. */
  readonly rank: number;
  /** The K most likely tokens, highest first. */
  readonly top_logprobs: readonly TopLogprob[];
}

export interface CompletionOutput {
  readonly index: number;
  readonly text: string;
  readonly token_ids: readonly number[];
  /** Sum of the sampled tokens' log-probs; null unless logprobs were asked. */
  readonly cumulative_logprob: number | null;
  readonly logprobs: readonly PositionLogprobs[] | null;
  readonly finish_reason: FinishReason | null;
  /** The stop string or stop token id that ended the output; null for EOS or length. */
  readonly stop_reason: string | number | null;
}

export interface RequestOutput {
  readonly request_id: string;
  /** The prompt text, or null when given as token ids. */
  readonly prompt: string | null;
  readonly prompt_token_ids: readonly number[];
  /** Per prompt token (the first is null) when prompt_logprobs were asked. */
  readonly prompt_logprobs: readonly (PositionLogprobs | null)[] | null;
  readonly outputs: readonly CompletionOutput[];
  readonly finished: boolean;
}

/**
 * Options of `new LLM`: the model and any engine setting, named as `duet serve`'s flags in camelCase
 * (config/engine-options.ts; the server-only ones left out), each defaulting as the flag does.
 */
export interface LLMOptions extends Omit<EngineOptions, 'servedModelName' | 'headless'> {
  /** Progress messages while loading (default: none). */
  readonly logger?: Logger;
  /** A full engine config instead of the fields above. */
  readonly engineConfig?: EngineConfig;
}

export interface GenerateOptions {
  /** Show a progress bar on stderr (only when stderr is a terminal). Default true. */
  readonly useTqdm?: boolean;
}

/** Converts the engine's log-probs to the API shape. */
export function toPositionLogprobs(lp: TokenLogprobs): PositionLogprobs {
  return {
    token_id: lp.tokenId,
    logprob: lp.logprob,
    rank: lp.rank,
    top_logprobs: lp.topTokenIds.map((id, i) => ({ id, logprob: lp.topLogprobs[i]! })),
  };
}

/** The engine config of `new LLM(o)`: `o.engineConfig`, else the one builder's over `o`. */
export function engineConfigFromLLMOptions(o: LLMOptions): EngineConfig {
  if (o.engineConfig) return o.engineConfig;
  const { logger: _logger, engineConfig: _engineConfig, ...settings } = o;
  return buildEngineConfig(settings);
}

/** A prompt the engine cannot take as given (too long, or sampling parameters that do not fit it). */
export class PromptRejectedError extends Error {
  constructor(
    /** The prompt's index in the call's list. */
    readonly promptIndex: number,
    /** What is wrong, without the prompt's position. */
    readonly reason: string,
    /** The request field at fault (snake_case): 'prompt', or a sampling parameter. */
    readonly field: string,
  ) {
    super(`prompt ${promptIndex + 1}: ${reason}`);
    this.name = 'PromptRejectedError';
  }
}

export class LLM {
  private readonly ready: Promise<LLMEngine>;
  /** Calls run one after another: one engine loop at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: LLMOptions = {}) {
    const config = engineConfigFromLLMOptions(options);
    this.ready = createEngine(config, options.logger ? { logger: options.logger } : {});
    // Surface load errors through the first call, not as an unhandled rejection.
    this.ready.catch(() => {});
  }

  /** Resolves once the model is loaded (rejects with the load error). */
  async engine(): Promise<LLMEngine> {
    return this.ready;
  }

  /** Generates completions for each prompt; outputs are in input order. */
  generate(
    prompts: PromptInput | readonly PromptInput[],
    samplingParams: SamplingParamsInput | readonly SamplingParamsInput[] = {},
    options: GenerateOptions = {},
  ): Promise<RequestOutput[]> {
    const list = Array.isArray(prompts) ? (prompts as readonly PromptInput[]) : [prompts as PromptInput];
    return this.serialise(async () => {
      const engine = await this.ready;
      const encoded = list.map((p) => {
        if (typeof p === 'string') return { text: p, tokenIds: engine.tokenizer.encode(p) };
        if ('prompt_token_ids' in p) return { text: null, tokenIds: [...p.prompt_token_ids] };
        return { text: p.prompt, tokenIds: engine.tokenizer.encode(p.prompt) };
      });
      return this.run(engine, encoded, samplingParams, options);
    });
  }

  /** Renders each conversation with the model's chat template and generates the assistant's reply. */
  chat(
    messages: readonly ChatMessage[] | readonly (readonly ChatMessage[])[],
    samplingParams: SamplingParamsInput | readonly SamplingParamsInput[] = {},
    options: GenerateOptions & ChatTemplateOptions = {},
  ): Promise<RequestOutput[]> {
    const conversations = (
      messages.length > 0 && Array.isArray(messages[0]) ? messages : [messages]
    ) as readonly (readonly ChatMessage[])[];
    return this.serialise(async () => {
      const engine = await this.ready;
      const encoded = conversations.map((conv) => {
        const prompt = engine.tokenizer.applyChatTemplate(conv, { addGenerationPrompt: true, ...options });
        return { text: prompt, tokenIds: engine.tokenizer.encode(prompt, { addSpecialTokens: false }) };
      });
      return this.run(engine, encoded, samplingParams, options);
    });
  }

  /** Releases threads and memory. */
  async close(): Promise<void> {
    await this.queue.catch(() => {});
    const engine = await this.ready.catch(() => null);
    await engine?.close();
  }

  private serialise<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  private async run(
    engine: LLMEngine,
    prompts: readonly EncodedPrompt[],
    samplingParams: SamplingParamsInput | readonly SamplingParamsInput[],
    options: GenerateOptions,
  ): Promise<RequestOutput[]> {
    const defaults = samplingDefaultsFrom(engine.loaded.generationDefaults);
    const perPrompt = Array.isArray(samplingParams)
      ? (samplingParams as readonly SamplingParamsInput[])
      : prompts.map(() => samplingParams as SamplingParamsInput);
    if (perPrompt.length !== prompts.length) {
      throw new RangeError(`got ${perPrompt.length} sampling parameter sets for ${prompts.length} prompts`);
    }
    // Validate everything before submitting anything; an error names the prompt at fault.
    const resolved = prompts.map((p, i) => {
      const limit = engine.maxModelLen;
      if (p.tokenIds.length >= limit) {
        throw new PromptRejectedError(
          i,
          `the prompt has ${p.tokenIds.length} tokens, but this model's maximum context length is ${limit} ` +
            `tokens (prompt and output together, --max-model-len), so a prompt may have at most ` +
            `${limit - 1}: it is ${p.tokenIds.length - limit + 1} token(s) too long`,
          'prompt',
        );
      }
      try {
        return resolveSamplingParams(perPrompt[i]!, defaults, {
          vocabSize: engine.loaded.config.vocabSize,
          maxModelLen: limit,
          numPromptTokens: p.tokenIds.length,
        });
      } catch (e) {
        if (e instanceof SamplingParamsError) throw new PromptRejectedError(i, e.message, e.field);
        throw e;
      }
    });
    const finals = new Map<string, EngineRequestState>();
    const ids: string[][] = [];
    const submitted: string[] = [];
    try {
      prompts.forEach((p, i) => {
        const params = resolved[i]!;
        const sub: string[] = [];
        for (let j = 0; j < params.n; j++) {
          const id = engine.addRequest(p.tokenIds, forkSamplingParams(params, j));
          sub.push(id);
          submitted.push(id);
        }
        ids.push(sub);
      });
    } catch (e) {
      for (const id of submitted) engine.abort(id);
      throw e;
    }

    const total = submitted.length;
    const bar =
      (options.useTqdm ?? true) && process.stderr.isTTY && total > 1
        ? new SingleBar({
            format: 'Processed prompts {bar} {value}/{total} | {eta}s left',
            stream: process.stderr,
          })
        : null;
    bar?.start(total, 0);
    try {
      while (finals.size < total) {
        const updates = await engine.step();
        for (const u of updates) if (u.finished) finals.set(u.requestId, u.state);
        bar?.update(finals.size);
      }
    } finally {
      bar?.stop();
      for (const id of submitted) if (!finals.has(id)) engine.abort(id);
    }

    return prompts.map((p, i) => {
      const states = ids[i]!.map((id) => finals.get(id)!);
      const first = states[0]!;
      const errors = states.filter((s) => s.finishReason === 'error');
      if (errors.length > 0) throw new Error(errors[0]!.error ?? 'request failed');
      return {
        request_id: ids[i]!.join(','),
        prompt: p.text,
        prompt_token_ids: p.tokenIds,
        prompt_logprobs: first.promptLogprobs?.map((lp) => (lp ? toPositionLogprobs(lp) : null)) ?? null,
        outputs: states.map((s, index) => ({
          index,
          text: s.stopChecker.outputText,
          token_ids: s.outputTokenIds,
          cumulative_logprob: s.logprobs ? s.cumulativeLogprob : null,
          logprobs: s.logprobs?.map(toPositionLogprobs) ?? null,
          finish_reason: s.finishReason,
          stop_reason: s.stopReason,
        })),
        finished: true,
      };
    });
  }
}
