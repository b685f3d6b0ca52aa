// Starts the OpenAI-compatible server: binds the HTTP socket first (a port in use fails at once; requests
// get 503 while loading), then the engine worker (loading logged as it goes), the HTTP thread's tokenizer
// and prompt encoder, the metrics registry and the fastify app, on host:port or a Unix socket. The
// returned DuetServer knows its URL (port 0 picks a free port) and closes everything in order.
//
//   const server = await startServer({ engineConfig, port: 0, logger });
//   console.log(server.url); ... await server.close();

import type { FastifyInstance } from 'fastify';
import type { EngineConfig } from '../config/engine-config.js';
import { AsyncEngine } from '../engine/async/async-engine.js';
import { loadModelTokenizer } from '../models/model-loader.js';
import { DEFAULT_MAX_LOGPROBS, DEFAULT_SAMPLING_LIMITS } from '../sampling/sampling-params.js';
import { type Logger, silentLogger } from '../util/logger.js';
import { duetVersion } from '../util/version.js';
import { OPEN_ROUTES } from './api-key.js';
import { buildApp } from './app.js';
import { DEFAULT_CORS_POLICY } from './cors.js';
import {
  DEFAULT_HTTP_TIMEOUTS,
  HttpListener,
  type HttpTimeouts,
  isLoopbackHost,
  type ListenAddress,
} from './http-listener.js';
import { ServerLifecycle } from './lifecycle.js';
import { ServerMetrics } from './metrics.js';
import { registerProbeRoutes } from './routes/probes.js';
import type { ServingContext, ServingOptions } from './serving-context.js';
import { DEFAULT_LOG_STATS_INTERVAL_S, startStatsLogger } from './stats-logger.js';
import { PromptEncoder } from './tokenize/prompt-encoder.js';

/** Default of --max-choices-per-request: prompts × n in one request. */
export const DEFAULT_MAX_CHOICES_PER_REQUEST = 256;
/** Default of --stream-stall-timeout: a stream whose client reads nothing this long is closed (ms). */
export const DEFAULT_STREAM_STALL_TIMEOUT_MS = 30_000;

/** The name the embedded default model is served under when no --served-model-name is given. */
export const EMBEDDED_MODEL_NAME = 'duet-default';

export interface ServerOptions extends Partial<Omit<ServingOptions, 'servedModelNames'>> {
  readonly engineConfig: EngineConfig;
  /** Interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every interface). */
  readonly host?: string;
  /** TCP port (default 8000; 0: any free port). */
  readonly port?: number;
  /** Listen on this Unix domain socket instead of host:port. */
  readonly uds?: string | null;
  /** Names served (default: the --model path as given, or "duet-default" for the embedded model). */
  readonly servedModelNames?: readonly string[] | null;
  /** No periodic stats line (--disable-log-stats). */
  readonly disableLogStats?: boolean;
  readonly logStatsIntervalS?: number;
  /** The HTTP socket's timeouts (default {@link DEFAULT_HTTP_TIMEOUTS}). */
  readonly httpTimeouts?: Partial<HttpTimeouts>;
  readonly logger?: Logger;
  /** The engine worker script (tests); default: the compiled one. */
  readonly workerUrl?: URL;
}

/** Longest a close waits for the endings of the requests the engine's stop cut short to be written. */
const ENDINGS_FLUSH_MS = 5_000;

/** A running server. */
export class DuetServer {
  private closed: Promise<boolean> | null = null;

  constructor(
    readonly app: FastifyInstance,
    readonly ctx: ServingContext,
    private readonly listener: HttpListener,
    private readonly stopStats: () => void,
    private readonly lifecycle: ServerLifecycle,
    private readonly logger: Logger,
  ) {}

  /** http://host:port, or unix:<path> with --uds. */
  get url(): string {
    return this.listener.url;
  }

  get engine(): AsyncEngine {
    return this.ctx.engine;
  }

  get metrics(): ServerMetrics {
    return this.ctx.metrics;
  }

  /**
   * Shuts down in the order of lifecycle.ts: refuses new requests, waits up to `graceMs` for the open
   * ones, stops the engine (what still runs is aborted: finish_reason "abort"), then closes the
   * listener and the connections. Resolves true when every open request finished within the grace.
   */
  close(graceMs = 0): Promise<boolean> {
    this.closed ??= (async () => {
      this.lifecycle.startDraining();
      const drained = await this.lifecycle.waitIdle(graceMs);
      if (!drained) {
        this.logger.warn(
          `${this.lifecycle.numOpen} request(s) still open; ending them (finish_reason "abort")`,
        );
      }
      this.stopStats();
      await this.ctx.engine.close();
      await this.lifecycle.waitIdle(ENDINGS_FLUSH_MS);
      await this.listener.close();
      await this.app.close();
      await this.ctx.encoder.close();
      return drained;
    })();
    return this.closed;
  }

  /** Cuts a close's grace period short: open requests are ended now (a second signal). */
  endGrace(): void {
    this.lifecycle.endGrace();
  }
}

/** The address to listen on from the options (default 127.0.0.1:8000). */
function listenAddress(options: ServerOptions): ListenAddress {
  if (options.uds) return { path: options.uds };
  return { host: options.host ?? '127.0.0.1', port: options.port ?? 8000 };
}

/** A loud warning when the server is reachable from other machines and anyone there may use it. */
function warnIfExposed(address: ListenAddress, apiKey: string | null, logger: Logger): void {
  if ('path' in address || isLoopbackHost(address.host) || apiKey !== null) return;
  logger.warn(
    `WARNING: --host ${address.host} serves every machine that can reach this one, and there is no --api-key: ` +
      'anyone there can use the model. Set --api-key (or VLLM_API_KEY), or keep --host 127.0.0.1.',
  );
}

/**
 * Binds the HTTP socket (failing at once with a ListenError when it cannot), loads the engine while the
 * socket answers 503, then serves; resolves once requests are served.
 */
export async function startServer(options: ServerOptions): Promise<DuetServer> {
  const logger = options.logger ?? silentLogger;
  const config = options.engineConfig;
  const address = listenAddress(options);
  const listener = await HttpListener.open(address, { ...DEFAULT_HTTP_TIMEOUTS, ...options.httpTimeouts });
  warnIfExposed(address, options.apiKey ?? null, logger);
  logger.info(`listening at ${listener.url}; answering 503 until the model is loaded`);
  const engineStarting = AsyncEngine.start(config, {
    logger,
    ...(options.workerUrl ? { workerUrl: options.workerUrl } : {}),
  });
  // Surface a load failure through the await below, not as an unhandled rejection meanwhile.
  engineStarting.catch(() => {});
  let engine: AsyncEngine | null = null;
  let encoder: PromptEncoder | null = null;
  try {
    const tokenizer = loadModelTokenizer(config.model);
    engine = await engineStarting;
    const info = engine.info;
    encoder = new PromptEncoder(tokenizer, config.model, info.maxModelLen);
    const names =
      options.servedModelNames && options.servedModelNames.length > 0
        ? options.servedModelNames
        : config.model.servedModelName !== null
          ? [config.model.servedModelName]
          : [config.model.model ?? EMBEDDED_MODEL_NAME];
    const served = engine;
    const metrics = new ServerMetrics({
      modelName: names[0]!,
      maxModelLen: info.maxModelLen,
      readStats: () => (served.health().alive ? served.stats().catch(() => null) : Promise.resolve(null)),
    });
    const ctx: ServingContext = {
      engine,
      info,
      tokenizer,
      encoder,
      metrics,
      logger,
      version: duetVersion(),
      startedAt: Math.floor(Date.now() / 1000),
      options: {
        servedModelNames: names,
        apiKey: options.apiKey ?? null,
        enableLogRequests: options.enableLogRequests ?? false,
        maxLogLen: options.maxLogLen ?? null,
        maxLogprobs: options.maxLogprobs ?? DEFAULT_MAX_LOGPROBS,
        responseRole: options.responseRole ?? 'assistant',
        returnTokensAsTokenIds: options.returnTokensAsTokenIds ?? false,
        cors: options.cors ?? DEFAULT_CORS_POLICY,
        samplingLimits: options.samplingLimits ?? DEFAULT_SAMPLING_LIMITS,
        maxChoicesPerRequest: options.maxChoicesPerRequest ?? DEFAULT_MAX_CHOICES_PER_REQUEST,
        streamStallTimeoutMs: options.streamStallTimeoutMs ?? DEFAULT_STREAM_STALL_TIMEOUT_MS,
      },
    };
    const app = buildApp(ctx, listener);
    const lifecycle = new ServerLifecycle();
    lifecycle.install(app);
    registerProbeRoutes(app, ctx, lifecycle);
    await app.ready();
    const stopStats = options.disableLogStats
      ? () => {}
      : startStatsLogger(engine, logger, options.logStatsIntervalS ?? DEFAULT_LOG_STATS_INTERVAL_S);
    if (info.isDummy) logger.warn('serving random (dummy) weights: the completions are meaningless text');
    if (ctx.options.apiKey !== null) {
      logger.info(
        `an API key is required on every route but ${[...OPEN_ROUTES].join(', ')} (Authorization: Bearer)`,
      );
    }
    logger.info(
      `serving model "${names.join('", "')}" (max_model_len ${info.maxModelLen}) at ${listener.url}`,
    );
    return new DuetServer(app, ctx, listener, stopStats, lifecycle, logger);
  } catch (e) {
    await listener.close();
    await encoder?.close();
    if (engine) await engine.close();
    else await engineStarting.then((started) => started.close()).catch(() => {});
    throw e;
  }
}
