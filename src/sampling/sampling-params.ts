// Sampling parameters of one request, as vLLM's SamplingParams: the typed, validated form the engine and the
// sampler use, the defaults (vLLM's, overridden by the model's generation_config.json), and the checks
// that reject bad values with a message naming the field and the allowed range.

/** Temperatures below this are greedy (vLLM's _SAMPLING_EPS). */
export const GREEDY_TEMPERATURE_EPS = 1e-5;
/** Default cap on `logprobs` / `prompt_logprobs` (vLLM's --max-logprobs). */
export const DEFAULT_MAX_LOGPROBS = 20;

/**
 * Bounds on the size of one request's sampling fields, so that no single request can cost the engine (and
 * so every other user) much: each stop string is matched against the output, each logit bias applied at
 * every step, each of the n completions is a sequence of its own. `duet serve` sets them from flags named
 * in the comments; the offline LLM API uses the defaults.
 */
export interface SamplingLimits {
  /** Most completions per prompt, `n` (--max-n). */
  readonly maxN: number;
  /** Most stop strings (--max-stop-strings). */
  readonly maxStopStrings: number;
  /** Longest stop string, in characters (UTF-16 code units) (--max-stop-string-len). */
  readonly maxStopStringLength: number;
  /** Most stop token ids (--max-stop-token-ids). */
  readonly maxStopTokenIds: number;
  /** Most logit_bias entries (--max-logit-bias). */
  readonly maxLogitBias: number;
}

/** The default limits: generous for real use (OpenAI itself allows 4 stop strings and n up to 128). */
export const DEFAULT_SAMPLING_LIMITS: SamplingLimits = {
  maxN: 128,
  maxStopStrings: 128,
  maxStopStringLength: 1024,
  maxStopTokenIds: 1024,
  maxLogitBias: 1024,
};

/** Validated sampling parameters of one request. Field meanings follow vLLM's SamplingParams. */
export interface SamplingParams {
  /** Completions to generate for the prompt (fork with {@link forkSamplingParams}). */
  readonly n: number;
  /** Softmax temperature; below {@link GREEDY_TEMPERATURE_EPS} sampling is greedy (argmax). */
  readonly temperature: number;
  /** Nucleus sampling: keep the most likely tokens whose cumulative probability reaches top_p; 1 = off. */
  readonly topP: number;
  /** Keep the top_k most likely tokens; 0 = off (an input of -1 also means off). */
  readonly topK: number;
  /** Keep tokens whose probability is at least min_p times the most likely one's; 0 = off. */
  readonly minP: number;
  /** Seed of this request's own random generator; null: seeded from the engine's generator. */
  readonly seed: number | null;
  /** Subtracted once from the logit of every token already generated (OpenAI), in [-2, 2]. */
  readonly presencePenalty: number;
  /** Subtracted per occurrence from the logit of every token already generated (OpenAI), in [-2, 2]. */
  readonly frequencyPenalty: number;
  /** Divides positive / multiplies negative logits of tokens in the prompt or output (HF/vLLM); 1 = off. */
  readonly repetitionPenalty: number;
  /** Strings that end generation; the output is cut before them (or after, see includeStopStrInOutput). */
  readonly stop: readonly string[];
  /** Token ids that end generation (stop_reason is the id). */
  readonly stopTokenIds: readonly number[];
  readonly includeStopStrInOutput: boolean;
  /** Keep generating after EOS. */
  readonly ignoreEos: boolean;
  /** No EOS / stop token / stop string can end generation before this many tokens. */
  readonly minTokens: number;
  /** Most tokens to generate; null: until the context (max_model_len) is full. */
  readonly maxTokens: number | null;
  /** Top log-probabilities to return per generated token (0: only the sampled one's); null: none. */
  readonly logprobs: number | null;
  /** Top log-probabilities to return per prompt token; null: none. */
  readonly promptLogprobs: number | null;
  readonly skipSpecialTokens: boolean;
  /** Accepted for compatibility; byte-level tokenizers ignore it. */
  readonly spacesBetweenSpecialTokens: boolean;
  /** Added to the logits of the given token ids before sampling, clamped to [-100, 100]; null: none. */
  readonly logitBias: ReadonlyMap<number, number> | null;
}

/** What a request may specify; anything left out takes the model's generation defaults, then vLLM's. */
export interface SamplingParamsInput {
  readonly n?: number;
  readonly temperature?: number;
  readonly topP?: number;
  readonly topK?: number;
  readonly minP?: number;
  readonly seed?: number | null;
  readonly presencePenalty?: number;
  readonly frequencyPenalty?: number;
  readonly repetitionPenalty?: number;
  readonly stop?: string | readonly string[] | null;
  readonly stopTokenIds?: readonly number[] | null;
  readonly includeStopStrInOutput?: boolean;
  readonly ignoreEos?: boolean;
  readonly minTokens?: number;
  /** undefined: 16 (vLLM's SamplingParams default) or the generation default; null: no limit. */
  readonly maxTokens?: number | null;
  readonly logprobs?: number | null;
  readonly promptLogprobs?: number | null;
  readonly skipSpecialTokens?: boolean;
  readonly spacesBetweenSpecialTokens?: boolean;
  /** Token id (number or decimal string, as OpenAI's JSON keys) → bias. */
  readonly logitBias?: Readonly<Record<string | number, number>> | null;
}

/**
 * Sampling defaults under the request's values: those a model sets in generation_config.json (vLLM's
 * --generation-config auto; engine/sampling-defaults.ts reads them from the loader's GenerationDefaults).
 */
export interface SamplingDefaults {
  readonly temperature?: number;
  readonly topP?: number;
  readonly topK?: number;
  readonly minP?: number;
  readonly repetitionPenalty?: number;
  readonly maxTokens?: number;
}

/** What validation needs to know about the model and the request. */
export interface SamplingParamsContext {
  /** Size of the model's vocabulary (token ids must be below it). */
  readonly vocabSize: number;
  /** The model's context length; with numPromptTokens, checks that prompt + max_tokens fit. */
  readonly maxModelLen?: number;
  readonly numPromptTokens?: number;
  /** Cap on logprobs and prompt_logprobs; default {@link DEFAULT_MAX_LOGPROBS}. */
  readonly maxLogprobs?: number;
  /** Size limits of the request's fields; default {@link DEFAULT_SAMPLING_LIMITS}. */
  readonly limits?: SamplingLimits;
}

/** A sampling parameter is out of range; `field` names it (snake_case, as in the OpenAI/vLLM API). */
export class SamplingParamsError extends Error {
  override readonly name = 'SamplingParamsError';
  readonly field: string;
  constructor(field: string, message: string) {
    super(message);
    this.field = field;
  }
}

/** vLLM's defaults (SamplingParams() with no arguments). */
const VLLM_DEFAULTS = {
  n: 1,
  temperature: 1,
  topP: 1,
  topK: 0,
  minP: 0,
  presencePenalty: 0,
  frequencyPenalty: 0,
  repetitionPenalty: 1,
  minTokens: 0,
  maxTokens: 16,
} as const;

/**
 * Fills defaults and validates: each field takes the request's value, else the model's generation default,
 * else vLLM's. Throws SamplingParamsError naming the field and what is allowed. Greedy requests
 * (temperature 0) have top_p, top_k and min_p switched off, as vLLM does.
 */
export function resolveSamplingParams(
  input: SamplingParamsInput,
  defaults: SamplingDefaults = {},
  context: SamplingParamsContext,
): SamplingParams {
  checkSamplingLimits(input, context.limits ?? DEFAULT_SAMPLING_LIMITS);
  const n = input.n ?? VLLM_DEFAULTS.n;

  const temperature = input.temperature ?? defaults.temperature ?? VLLM_DEFAULTS.temperature;
  checkFinite('temperature', temperature);
  if (temperature < 0) fail('temperature', `temperature must be non-negative, got ${temperature}.`);

  let topP = input.topP ?? defaults.topP ?? VLLM_DEFAULTS.topP;
  checkFinite('top_p', topP);
  if (!(topP > 0 && topP <= 1)) fail('top_p', `top_p must be in (0, 1], got ${topP}.`);

  let topK = input.topK ?? defaults.topK ?? VLLM_DEFAULTS.topK;
  checkInteger('top_k', topK);
  if (topK < -1) fail('top_k', `top_k must be 0 or -1 (disable), or at least 1, got ${topK}.`);
  if (topK === -1) topK = 0;

  let minP = input.minP ?? defaults.minP ?? VLLM_DEFAULTS.minP;
  checkFinite('min_p', minP);
  if (!(minP >= 0 && minP <= 1)) fail('min_p', `min_p must be in [0, 1], got ${minP}.`);

  const seed = input.seed ?? null;
  if (seed !== null) checkInteger('seed', seed);

  const presencePenalty = input.presencePenalty ?? VLLM_DEFAULTS.presencePenalty;
  checkFinite('presence_penalty', presencePenalty);
  if (!(presencePenalty >= -2 && presencePenalty <= 2)) {
    fail('presence_penalty', `presence_penalty must be in [-2, 2], got ${presencePenalty}.`);
  }
  const frequencyPenalty = input.frequencyPenalty ?? VLLM_DEFAULTS.frequencyPenalty;
  checkFinite('frequency_penalty', frequencyPenalty);
  if (!(frequencyPenalty >= -2 && frequencyPenalty <= 2)) {
    fail('frequency_penalty', `frequency_penalty must be in [-2, 2], got ${frequencyPenalty}.`);
  }
  const repetitionPenalty =
    input.repetitionPenalty ?? defaults.repetitionPenalty ?? VLLM_DEFAULTS.repetitionPenalty;
  checkFinite('repetition_penalty', repetitionPenalty);
  if (!(repetitionPenalty > 0)) {
    fail('repetition_penalty', `repetition_penalty must be greater than zero, got ${repetitionPenalty}.`);
  }

  const maxTokens =
    input.maxTokens === undefined ? (defaults.maxTokens ?? VLLM_DEFAULTS.maxTokens) : input.maxTokens;
  if (maxTokens !== null) {
    checkInteger('max_tokens', maxTokens);
    if (maxTokens < 1) fail('max_tokens', `max_tokens must be at least 1, got ${maxTokens}.`);
    const { maxModelLen, numPromptTokens } = context;
    if (
      maxModelLen !== undefined &&
      numPromptTokens !== undefined &&
      numPromptTokens + maxTokens > maxModelLen
    ) {
      fail(
        'max_tokens',
        `This model's maximum context length is ${maxModelLen} tokens. However, you requested ` +
          `${numPromptTokens + maxTokens} tokens (${numPromptTokens} in the prompt, ${maxTokens} in the completion); ` +
          `max_tokens must be at most ${maxModelLen - numPromptTokens}.`,
      );
    }
  }
  const minTokens = input.minTokens ?? VLLM_DEFAULTS.minTokens;
  checkInteger('min_tokens', minTokens);
  if (minTokens < 0) fail('min_tokens', `min_tokens must be greater than or equal to 0, got ${minTokens}.`);
  if (maxTokens !== null && minTokens > maxTokens) {
    fail('min_tokens', `min_tokens must be less than or equal to max_tokens=${maxTokens}, got ${minTokens}.`);
  }

  const maxLogprobs = context.maxLogprobs ?? DEFAULT_MAX_LOGPROBS;
  const logprobs = input.logprobs ?? null;
  if (logprobs !== null) checkLogprobs('logprobs', logprobs, maxLogprobs);
  const promptLogprobs = input.promptLogprobs ?? null;
  if (promptLogprobs !== null) checkLogprobs('prompt_logprobs', promptLogprobs, maxLogprobs);

  const stopInput = input.stop ?? [];
  const stop = typeof stopInput === 'string' ? [stopInput] : [...stopInput];
  for (const s of stop) {
    if (typeof s !== 'string')
      fail('stop', `stop must be a string or a list of strings, got ${JSON.stringify(s)}.`);
    if (s.length === 0) fail('stop', 'stop cannot contain an empty string.');
  }
  const stopTokenIds = [...(input.stopTokenIds ?? [])];
  for (const id of stopTokenIds) checkTokenId('stop_token_ids', id, context.vocabSize);

  let logitBias: Map<number, number> | null = null;
  if (input.logitBias != null) {
    logitBias = new Map();
    for (const [key, bias] of Object.entries(input.logitBias)) {
      const id = Number(key);
      checkTokenId('logit_bias', id, context.vocabSize, key);
      checkFinite('logit_bias', bias, `logit_bias[${key}]`);
      logitBias.set(id, Math.min(100, Math.max(-100, bias)));
    }
    if (logitBias.size === 0) logitBias = null;
  }

  if (temperature < GREEDY_TEMPERATURE_EPS) {
    topP = 1;
    topK = 0;
    minP = 0;
  }
  return {
    n,
    temperature,
    topP,
    topK,
    minP,
    seed,
    presencePenalty,
    frequencyPenalty,
    repetitionPenalty,
    stop,
    stopTokenIds,
    includeStopStrInOutput: input.includeStopStrInOutput ?? false,
    ignoreEos: input.ignoreEos ?? false,
    minTokens,
    maxTokens,
    logprobs,
    promptLogprobs,
    skipSpecialTokens: input.skipSpecialTokens ?? true,
    spacesBetweenSpecialTokens: input.spacesBetweenSpecialTokens ?? true,
    logitBias,
  };
}

/**
 * Checks the size of the request's fields against `limits` (and that n is an integer of at least 1) before
 * anything walks them; resolveSamplingParams calls it first, a server may call it before tokenizing.
 */
export function checkSamplingLimits(input: SamplingParamsInput, limits: SamplingLimits): void {
  const n = input.n ?? VLLM_DEFAULTS.n;
  checkInteger('n', n);
  if (n < 1) fail('n', `n must be at least 1, got ${n}.`);
  if (n > limits.maxN) fail('n', `n must be at most ${limits.maxN} (the limit on n, --max-n), got ${n}.`);
  const stop = input.stop;
  if (Array.isArray(stop) && stop.length > limits.maxStopStrings) {
    fail(
      'stop',
      `stop holds ${stop.length} strings; at most ${limits.maxStopStrings} are allowed (--max-stop-strings).`,
    );
  }
  for (const s of typeof stop === 'string' ? [stop] : (stop ?? [])) {
    if (typeof s === 'string' && s.length > limits.maxStopStringLength) {
      fail(
        'stop',
        `a stop string is ${s.length} characters long; at most ${limits.maxStopStringLength} are allowed ` +
          '(--max-stop-string-len).',
      );
    }
  }
  const numStopTokenIds = input.stopTokenIds?.length ?? 0;
  if (numStopTokenIds > limits.maxStopTokenIds) {
    fail(
      'stop_token_ids',
      `stop_token_ids holds ${numStopTokenIds} ids; at most ${limits.maxStopTokenIds} are allowed ` +
        '(--max-stop-token-ids).',
    );
  }
  const numLogitBias = input.logitBias != null ? Object.keys(input.logitBias).length : 0;
  if (numLogitBias > limits.maxLogitBias) {
    fail(
      'logit_bias',
      `logit_bias holds ${numLogitBias} entries; at most ${limits.maxLogitBias} are allowed (--max-logit-bias).`,
    );
  }
}

/** Whether the request samples greedily (argmax). */
export function isGreedy(params: Pick<SamplingParams, 'temperature'>): boolean {
  return params.temperature < GREEDY_TEMPERATURE_EPS;
}

/**
 * The parameters of completion `index` of an n > 1 request: n = 1 and, for a seeded request, seed + index
 * (as vLLM's parallel sampling), so that each completion has its own reproducible stream.
 */
export function forkSamplingParams(params: SamplingParams, index: number): SamplingParams {
  return { ...params, n: 1, seed: params.seed === null ? null : params.seed + index };
}

function fail(field: string, message: string): never {
  throw new SamplingParamsError(field, message);
}

function checkFinite(field: string, value: number, label: string = field): void {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    fail(field, `${label} must be a finite number, got ${String(value)}.`);
  }
}

function checkInteger(field: string, value: number): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    fail(field, `${field} must be an integer, got ${String(value)}.`);
  }
}

function checkLogprobs(field: string, value: number, max: number): void {
  checkInteger(field, value);
  if (value < 0) fail(field, `${field} must be non-negative, got ${value}.`);
  if (value > max) fail(field, `Requested ${field} of ${value}, which is greater than max allowed: ${max}.`);
}

function checkTokenId(field: string, id: number, vocabSize: number, shown: string | number = id): void {
  if (!Number.isSafeInteger(id) || id < 0 || id >= vocabSize) {
    fail(
      field,
      `${field} contains token id ${shown}, which is out of vocabulary: ids must be in [0, ${vocabSize - 1}].`,
    );
  }
}
