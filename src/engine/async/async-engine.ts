// The engine client of the HTTP process: runs `LLMEngine` in a worker thread (engine-thread.ts) so that
// the engine's compute never blocks the event loop serving HTTP, and speaks to it with the typed messages
// of protocol.ts. Each request's outputs come back as an async iterable; a dead worker fails every
// in-flight request and every later call with `EngineDeadError`, never hangs them.
//
//   const engine = await AsyncEngine.start(config, { logger });
//   for await (const out of engine.generate(ids, params, 'req-1')) process.stdout.write(out.textDelta);
//   await engine.close();

import { SHARE_ENV, Worker } from 'node:worker_threads';
import type { EngineConfig } from '../../config/engine-config.js';
import type { SamplingParams } from '../../sampling/sampling-params.js';
import { type Logger, silentLogger } from '../../util/logger.js';
import { RequestRejectedError } from '../llm-engine.js';
import { OutputStream } from './output-stream.js';
import type {
  EngineInfo,
  EngineOutput,
  EngineStatsSnapshot,
  EngineWorkerData,
  FromWorkerMessage,
  ToWorkerMessage,
} from './protocol.js';

/** How long a worker that reported a fatal error may take to exit before it is terminated. */
const FATAL_EXIT_GRACE_MS = 5_000;

/**
 * The engine thread's young generation (MiB; V8's `resourceLimits.maxYoungGenerationSizeMb`). The engine
 * thread makes little JavaScript garbage but many ArrayBuffers (each step's activations: about 1.5 MB a
 * step on the embedded model), which V8 frees only at a collection and counts, once allocated, against
 * the old generation's limit. With V8's default young generation (16 MiB semi-spaces) a young collection
 * came only every hundred or so steps, so the buffers reached that limit first and started a full
 * mark-compact every ~10 steps: 51 – 63 over 600 requests of bench:serve-overhead, against 3 for the same
 * engine on the offline API's main thread, whose larger JavaScript garbage (tokenization) keeps its young
 * collections frequent. With 2 MiB, young collections (cheap: little survives a step) free the buffers
 * first: 2 mark-compacts a run instead of 51 – 63, so almost no concurrent marking on V8's helper threads,
 * on the cores the engine needs (docs/bench.md, "Serving overhead").
 */
export const ENGINE_YOUNG_GENERATION_MB = 2;

/** The engine worker has stopped (crashed, killed or shut down): says why. Maps to HTTP 500/503. */
export class EngineDeadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineDeadError';
  }
}

/** The engine could not be built; `message` is the worker's own error (bad model folder, flags...). */
export class EngineStartError extends Error {
  constructor(
    message: string,
    /** Name of the error the worker hit, e.g. EngineConfigError. */
    readonly causeName: string,
  ) {
    super(message);
    this.name = 'EngineStartError';
  }
}

/** The engine refused a request for a reason of its own (not the input): maps to HTTP 500. */
export class EngineRequestError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EngineRequestError';
  }
}

export interface AsyncEngineOptions {
  /** Receives the worker's progress lines and the client's own notices. Default: silent. */
  readonly logger?: Logger;
  /** The worker script (default: the compiled engine-thread.js beside this file). */
  readonly workerUrl?: URL;
}

/** Options of one request streamed by `AsyncEngine.generate`. */
export interface RequestStreamOptions {
  /** Aborting it cancels the request; the stream then ends with a finishReason 'abort' output. */
  readonly signal?: AbortSignal;
  /** Called for every output as it arrives (also after the consumer has stopped reading). */
  readonly onOutput?: (output: EngineOutput) => void;
}

/**
 * Where a submitted request's outputs go, as they arrive: an OutputStream (generate), or a consumer that
 * handles them at once (the server merges a request's choices into one queue without a stream per choice).
 */
export interface OutputSink {
  /** Each output in order; the last has `finished` true. */
  push(output: EngineOutput): void;
  /** The request failed (refused input, an engine fault, a dead engine); nothing follows. */
  fail(error: Error): void;
}

/** Whether the engine can serve, and if not why. */
export interface EngineHealth {
  readonly alive: boolean;
  /** Why the engine is dead; null while alive. */
  readonly reason: string | null;
}

interface LiveRequest {
  readonly sink: OutputSink;
  readonly detach: () => void;
}

export class AsyncEngine {
  private readonly requests = new Map<string, LiveRequest>();
  private readonly statsQueries = new Map<
    number,
    { resolve(s: EngineStatsSnapshot): void; reject(e: Error): void }
  >();
  private nextQueryId = 0;
  private deathReason: string | null = null;
  private readonly deathListeners: ((reason: string) => void)[] = [];
  private readonly exited: Promise<void>;
  private closing = false;

  private constructor(
    private readonly worker: Worker,
    /** Facts about the loaded model and engine. */
    readonly info: EngineInfo,
    private readonly logger: Logger,
    exited: Promise<void>,
    private readonly fatal: { value: string | null },
    exitCode: { value: number | null },
  ) {
    this.exited = exited;
    void exited.then(() => this.markDead(fatal.value ?? `the engine worker exited (code ${exitCode.value})`));
  }

  /** Starts the engine worker and resolves once the model is loaded (rejects with EngineStartError). */
  static async start(config: EngineConfig, options: AsyncEngineOptions = {}): Promise<AsyncEngine> {
    const logger = options.logger ?? silentLogger;
    const data: EngineWorkerData = { config };
    // SHARE_ENV: the engine thread's process.env is the process's real environment, not a copy, so what a
    // platform sets there before loading native code reaches that code. The oneDNN platform loads libgomp
    // with OMP_WAIT_POLICY=passive this way; in a copy libgomp never saw it, its threads spun at every
    // product, and on 2 cores `duet serve` ran the engine 5x slower than the offline LLM API.
    const worker = new Worker(options.workerUrl ?? new URL('./engine-thread.js', import.meta.url), {
      workerData: data,
      env: SHARE_ENV,
      resourceLimits: { maxYoungGenerationSizeMb: ENGINE_YOUNG_GENERATION_MB },
    });
    const fatal: { value: string | null } = { value: null };
    const exitCode: { value: number | null } = { value: null };
    const exited = new Promise<void>((resolve) => {
      worker.once('exit', (code) => {
        exitCode.value = code;
        resolve();
      });
    });
    worker.on('error', (e) => {
      fatal.value ??= `the engine worker crashed: ${e.message}`;
      logger.error(fatal.value);
    });
    // One listener for the worker's whole life: before `ready` it handles start-up, after it the client.
    let client: AsyncEngine | null = null;
    const early: FromWorkerMessage[] = [];
    const info = await new Promise<EngineInfo>((resolve, reject) => {
      let started = false;
      worker.on('message', (m: FromWorkerMessage) => {
        if (client) client.onMessage(m);
        else if (started) early.push(m);
        else if (m.type === 'log') logger[m.level](m.message);
        else if (m.type === 'ready') {
          started = true;
          resolve(m.info);
        } else if (m.type === 'startFailed') {
          void worker.terminate();
          reject(new EngineStartError(m.message, m.errorName));
        }
      });
      void exited.then(() =>
        reject(
          new EngineStartError(
            fatal.value ?? `the engine worker exited with code ${exitCode.value} while loading`,
            'EngineDeadError',
          ),
        ),
      );
    });
    const engine = new AsyncEngine(worker, info, logger, exited, fatal, exitCode);
    client = engine;
    for (const m of early) engine.onMessage(m);
    return engine;
  }

  /**
   * Submits one request (params resolved and validated, n = 1; fan out n > 1 with forkSamplingParams) and
   * returns its outputs. The iterable throws RequestRejectedError when the engine refuses the input,
   * EngineRequestError for an engine-side refusal, EngineDeadError when the worker dies. Breaking out of
   * the loop early aborts the request.
   */
  generate(
    promptTokenIds: readonly number[],
    params: SamplingParams,
    requestId: string,
    options: RequestStreamOptions = {},
  ): AsyncIterable<EngineOutput> {
    const stream = new OutputStream(() => this.abort(requestId));
    const onOutput = options.onOutput;
    const sink: OutputSink = onOutput
      ? {
          push: (out) => {
            try {
              onOutput(out);
            } finally {
              stream.push(out);
            }
          },
          fail: (e) => stream.fail(e),
        }
      : stream;
    this.submit(promptTokenIds, params, requestId, sink, options.signal);
    return stream;
  }

  /**
   * Submits one request as generate() does, handing its outputs to `sink` as they arrive instead of
   * queueing them in a stream (the sink's failure carries the errors generate's iterable throws). Aborting
   * `signal` cancels the request; its last output then has finishReason 'abort'.
   */
  submit(
    promptTokenIds: readonly number[],
    params: SamplingParams,
    requestId: string,
    sink: OutputSink,
    signal?: AbortSignal,
  ): void {
    if (this.requests.has(requestId)) throw new RangeError(`request id ${requestId} is already in flight`);
    if (this.deathReason !== null) {
      sink.fail(new EngineDeadError(this.deathReason));
      return;
    }
    const onAbort = () => this.abort(requestId);
    const detach = () => signal?.removeEventListener('abort', onAbort);
    this.requests.set(requestId, { sink, detach });
    this.post({ type: 'add', requestId, promptTokenIds: [...promptTokenIds], params });
    if (signal) {
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  }

  /** Cancels requests; their KV blocks return at once. Unknown or finished ids are ignored. */
  abort(requestIds: string | readonly string[]): void {
    const ids = (typeof requestIds === 'string' ? [requestIds] : requestIds).filter((id) =>
      this.requests.has(id),
    );
    if (ids.length > 0 && this.deathReason === null) this.post({ type: 'abort', requestIds: ids });
  }

  /** A snapshot of the engine's gauges and counters, taken after every earlier abort was applied. */
  stats(): Promise<EngineStatsSnapshot> {
    if (this.deathReason !== null) return Promise.reject(new EngineDeadError(this.deathReason));
    const queryId = this.nextQueryId++;
    return new Promise((resolve, reject) => {
      this.statsQueries.set(queryId, { resolve, reject });
      this.post({ type: 'stats', queryId });
    });
  }

  /**
   * Calls `listener` once if the engine dies (a crash, a lost rank, a failed model step; not close()),
   * after every in-flight request has been failed. `duet serve` exits on it so that a supervisor restarts
   * the server.
   */
  onDeath(listener: (reason: string) => void): void {
    const reason = this.deathReason;
    if (reason === null) this.deathListeners.push(listener);
    else if (!this.closing) queueMicrotask(() => listener(reason));
  }

  health(): EngineHealth {
    return { alive: this.deathReason === null, reason: this.deathReason };
  }

  /** Requests submitted and not yet finished. */
  get numInFlight(): number {
    return this.requests.size;
  }

  /** Aborts everything, lets the worker release its kernels and exit (terminates it after `timeoutMs`). */
  async close(timeoutMs = 10_000): Promise<void> {
    if (!this.closing) {
      this.closing = true;
      const alive = this.deathReason === null;
      if (alive) this.post({ type: 'shutdown' });
      const timer = setTimeout(() => void this.worker.terminate(), alive ? timeoutMs : 0);
      await this.exited;
      clearTimeout(timer);
      this.markDead('the engine was shut down');
    }
    return this.exited;
  }

  /**
   * Fault injection: ends the engine thread at once, as a crash would (requests in flight fail with
   * EngineDeadError). `shutdown` is the graceful stop; this is for drills and the engine-death tests.
   */
  async crash(): Promise<void> {
    await this.worker.terminate();
    await this.exited;
  }

  private post(message: ToWorkerMessage): void {
    this.worker.postMessage(message);
  }

  private onMessage(m: FromWorkerMessage): void {
    switch (m.type) {
      case 'log':
        this.logger[m.level](m.message);
        return;
      case 'outputs':
        for (const out of m.outputs) this.deliver(out);
        return;
      case 'rejected': {
        const live = this.requests.get(m.requestId);
        if (!live) return;
        this.requests.delete(m.requestId);
        live.detach();
        live.sink.fail(
          m.isInvalidInput ? new RequestRejectedError(m.message, m.param) : new EngineRequestError(m.message),
        );
        return;
      }
      case 'stats': {
        const q = this.statsQueries.get(m.queryId);
        this.statsQueries.delete(m.queryId);
        q?.resolve(m.stats);
        return;
      }
      case 'fatal': {
        // Fail everything now; the worker exits once its engine is closed (or is ended after a grace time).
        this.fatal.value = m.message;
        this.markDead(m.message);
        const timer = setTimeout(() => void this.worker.terminate(), FATAL_EXIT_GRACE_MS);
        timer.unref();
        return;
      }
      case 'ready':
      case 'startFailed':
        return;
    }
  }

  private deliver(out: EngineOutput): void {
    const live = this.requests.get(out.requestId);
    if (!live) return;
    if (out.finished) {
      this.requests.delete(out.requestId);
      live.detach();
    }
    live.sink.push(out);
  }

  private markDead(reason: string): void {
    if (this.deathReason !== null) return;
    this.deathReason = reason;
    if (!this.closing) this.logger.error(`the engine is dead: ${reason}`);
    const err = new EngineDeadError(reason);
    for (const live of this.requests.values()) {
      live.detach();
      live.sink.fail(err);
    }
    this.requests.clear();
    for (const q of this.statsQueries.values()) q.reject(err);
    this.statsQueries.clear();
    const listeners = this.deathListeners.splice(0);
    if (!this.closing) for (const l of listeners) l(reason);
  }
}
