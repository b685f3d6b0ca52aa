// The options of `duet bench serve`, with vLLM's names (camelCased) and defaults, as one plain object that
// both the command line and programmatic callers (tests) fill in.

/** The options of a serving benchmark run. */
export interface BenchServeArgs {
  /** --backend: openai (completions), vllm (same), openai-chat. */
  readonly backend: string;
  /** --label: prefix of the result file name (default: the backend). */
  readonly label: string | null;
  /** --base-url: server URL, e.g. http://10.0.0.2:8006 (instead of --host / --port). */
  readonly baseUrl: string | null;
  readonly host: string;
  readonly port: number;
  /** --endpoint (default: /v1/completions, or /v1/chat/completions for openai-chat). */
  readonly endpoint: string | null;
  /** --header KEY=VALUE pairs added to every request. */
  readonly header: readonly string[] | null;
  /** --api-key (default: the OPENAI_API_KEY environment variable). */
  readonly apiKey: string | null;
  /** --model (default: the first model of GET /v1/models). */
  readonly model: string | null;
  /** --served-model-name: the name sent in requests when it differs from --model. */
  readonly servedModelName: string | null;
  /** --tokenizer: folder with tokenizer.json. */
  readonly tokenizer: string | null;
  /** --dataset-name: random or jsonl. */
  readonly datasetName: string;
  readonly datasetPath: string | null;
  readonly numPrompts: number;
  /** --input-len / --output-len: general lengths that override --random-input-len / --random-output-len. */
  readonly inputLen: number | null;
  readonly outputLen: number | null;
  readonly randomInputLen: number;
  readonly randomOutputLen: number;
  readonly randomRangeRatio: number;
  readonly randomPrefixLen: number;
  /** --request-rate in requests/s; Infinity sends everything at once. */
  readonly requestRate: number;
  readonly burstiness: number;
  readonly maxConcurrency: number | null;
  /** --percentile-metrics, comma-separated (default ttft,tpot,itl). */
  readonly percentileMetrics: string | null;
  /** --metric-percentiles, comma-separated (default 99). */
  readonly metricPercentiles: string;
  /** --goodput KEY:VALUE pairs (ms). */
  readonly goodput: readonly string[] | null;
  readonly ignoreEos: boolean;
  readonly seed: number;
  readonly saveResult: boolean;
  readonly saveDetailed: boolean;
  readonly appendResult: boolean;
  readonly resultDir: string | null;
  readonly resultFilename: string | null;
  /** --metadata KEY=VALUE pairs recorded in the result. */
  readonly metadata: readonly string[] | null;
  readonly disableTqdm: boolean;
  readonly numWarmups: number;
  /** --ready-check-timeout-sec: retry the first request until it succeeds, up to this long (0: skip). */
  readonly readyCheckTimeoutSec: number;
  /** --request-id-prefix (default: bench-<8 random hex>-). */
  readonly requestIdPrefix: string | null;
  readonly logprobs: number | null;
  readonly temperature: number | null;
  readonly topP: number | null;
  readonly topK: number | null;
  readonly minP: number | null;
  readonly frequencyPenalty: number | null;
  readonly presencePenalty: number | null;
  readonly repetitionPenalty: number | null;
  /** --extra-body: JSON object merged into every request body. */
  readonly extraBody: Readonly<Record<string, unknown>> | null;
  /** Duet's --send-token-ids: send the random prompts as token ids (completions only). */
  readonly sendTokenIds: boolean;
}

/** vLLM's defaults. */
export const DEFAULT_BENCH_SERVE_ARGS: BenchServeArgs = {
  backend: 'openai',
  label: null,
  baseUrl: null,
  host: '127.0.0.1',
  port: 8000,
  endpoint: null,
  header: null,
  apiKey: null,
  model: null,
  servedModelName: null,
  tokenizer: null,
  datasetName: 'random',
  datasetPath: null,
  numPrompts: 1000,
  inputLen: null,
  outputLen: null,
  randomInputLen: 1024,
  randomOutputLen: 128,
  randomRangeRatio: 0,
  randomPrefixLen: 0,
  requestRate: Number.POSITIVE_INFINITY,
  burstiness: 1,
  maxConcurrency: null,
  percentileMetrics: null,
  metricPercentiles: '99',
  goodput: null,
  ignoreEos: false,
  seed: 0,
  saveResult: false,
  saveDetailed: false,
  appendResult: false,
  resultDir: null,
  resultFilename: null,
  metadata: null,
  disableTqdm: false,
  numWarmups: 0,
  readyCheckTimeoutSec: 0,
  requestIdPrefix: null,
  logprobs: null,
  temperature: null,
  topP: null,
  topK: null,
  minP: null,
  frequencyPenalty: null,
  presencePenalty: null,
  repetitionPenalty: null,
  extraBody: null,
  sendTokenIds: false,
};

/** Defaults with some options replaced. */
export function benchServeArgs(overrides: Partial<BenchServeArgs> = {}): BenchServeArgs {
  return { ...DEFAULT_BENCH_SERVE_ARGS, ...overrides };
}
