// The benchmark run itself, as vLLM's `benchmark()`: requests leave on the arrival schedule, wait for a
// --max-concurrency slot if there is a limit, and stream; the duration runs from the first send to the
// last response. Warm-up requests (--num-warmups) go first and are not measured.

import { arrivalSchedule } from './arrivals.js';
import type { Backend } from './backends.js';
import { BenchRng } from './bench-rng.js';
import type { Progress } from './progress.js';
import {
  monotonicSeconds,
  type RequestFuncInput,
  type RequestFuncOutput,
  type RequestOptions,
} from './request-func.js';
import type { SampleRequest } from './sample-request.js';

/** What a run needs. */
export interface BenchmarkRunOptions {
  readonly backend: Backend;
  readonly apiUrl: string;
  /** The `model` field of each request. */
  readonly model: string;
  readonly requests: readonly SampleRequest[];
  /** Requests per second; Infinity sends all at once. */
  readonly requestRate: number;
  readonly burstiness: number;
  /** At most this many requests in flight; null for no limit. */
  readonly maxConcurrency: number | null;
  readonly ignoreEos: boolean;
  readonly logprobs?: number;
  readonly extraBody?: Readonly<Record<string, unknown>>;
  readonly headers?: Readonly<Record<string, string>>;
  /** Send prompts as token ids where the dataset has them (completions only). */
  readonly sendTokenIds: boolean;
  /** Seed of the arrival times (--seed). */
  readonly seed: number;
  readonly numWarmups?: number;
  readonly progress?: Progress;
  readonly request?: RequestOptions;
}

/** The measured requests, in dataset order, and the run's duration in seconds. */
export interface BenchmarkRunResult {
  readonly outputs: RequestFuncOutput[];
  readonly durationS: number;
}

/** A counting semaphore for --max-concurrency. */
class Slots {
  private free: number;
  private readonly waiting: (() => void)[] = [];
  constructor(n: number) {
    this.free = n;
  }
  async acquire(): Promise<void> {
    if (this.free > 0) {
      this.free--;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next !== undefined) next();
    else this.free++;
  }
}

/** The request function input of one dataset request. */
export function requestInput(o: BenchmarkRunOptions, r: SampleRequest): RequestFuncInput {
  const asIds = (o.sendTokenIds || r.sendAsTokenIds === true) && r.promptTokenIds !== undefined;
  return {
    apiUrl: o.apiUrl,
    model: o.model,
    prompt: r.prompt,
    ...(asIds ? { promptTokenIds: r.promptTokenIds } : {}),
    promptLen: r.promptLen,
    outputLen: r.expectedOutputLen,
    ignoreEos: o.ignoreEos,
    ...(o.logprobs !== undefined ? { logprobs: o.logprobs } : {}),
    ...(o.extraBody !== undefined ? { extraBody: o.extraBody } : {}),
    ...(o.headers !== undefined ? { headers: o.headers } : {}),
    requestId: r.requestId,
  };
}

/** Runs the benchmark. Never throws for a failed request: failures are in the outputs. */
export async function runBenchmark(o: BenchmarkRunOptions): Promise<BenchmarkRunResult> {
  const send = o.backend.requestFunc;
  const now = o.request?.now ?? monotonicSeconds;
  const slots = o.maxConcurrency !== null ? new Slots(o.maxConcurrency) : null;
  const limited = async (input: RequestFuncInput, arrival: number): Promise<RequestFuncOutput> => {
    if (slots !== null) await slots.acquire();
    try {
      const out = await send(input, o.request);
      out.clientQueueTime = out.startTime - arrival;
      return out;
    } finally {
      slots?.release();
    }
  };

  const numWarmups = o.numWarmups ?? 0;
  if (numWarmups > 0 && o.requests[0] !== undefined) {
    const warm = requestInput(o, o.requests[0]);
    await Promise.all(Array.from({ length: numWarmups }, () => limited(warm, now())));
  }

  const schedule = arrivalSchedule(o.requests.length, o.requestRate, o.burstiness, new BenchRng(o.seed, 1));
  const start = now();
  const tasks: Promise<RequestFuncOutput>[] = [];
  for (let i = 0; i < o.requests.length; i++) {
    const wait = start + schedule[i]! - now();
    if (schedule[i]! > 0 && wait > 0) await sleep(wait);
    const task = limited(requestInput(o, o.requests[i]!), now());
    tasks.push(task.finally(() => o.progress?.increment()));
  }
  const outputs = await Promise.all(tasks);
  const durationS = now() - start;
  o.progress?.stop();
  return { outputs, durationS };
}

function sleep(seconds: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, seconds * 1000));
}
