// Starts the OpenAI-compatible server: the engine worker (loading logged as it goes), the HTTP thread's
// tokenizer, the metrics registry and the fastify app, listening on host:port or a Unix socket. The
// returned DuetServer knows its URL (port 0 picks a free port) and closes everything in order.
//
//   const server = await startServer({ engineConfig, port: 0, logger });
//   console.log(server.url); ... await server.close();

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { EngineConfig } from '../config/engine-config.js';
import { AsyncEngine } from '../engine/async/async-engine.js';
import { loadModelTokenizer } from '../models/model-loader.js';
import { type Logger, silentLogger } from '../util/logger.js';
import { DEFAULT_MAX_LOGPROBS } from '../worker/sampling-params.js';
import { buildApp } from './app.js';
import { ServerLifecycle } from './lifecycle.js';
import { ServerMetrics } from './metrics.js';
import { registerProbeRoutes } from './routes/probes.js';
import type { ServingContext, ServingOptions } from './serving-context.js';
import { DEFAULT_LOG_STATS_INTERVAL_S, startStatsLogger } from './stats-logger.js';

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
  readonly logger?: Logger;
  /** The engine worker script (tests); default: the compiled one. */
  readonly workerUrl?: URL;
}

/** Longest a close waits for the endings of the requests the engine's stop cut short to be written. */
const ENDINGS_FLUSH_MS = 5_000;

/** Duet's version from package.json. */
export function duetVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}

/** A running server. */
export class DuetServer {
  private closed: Promise<boolean> | null = null;

  constructor(
    readonly app: FastifyInstance,
    readonly ctx: ServingContext,
    /** http://host:port, or unix:<path> with --uds. */
    readonly url: string,
    private readonly stopStats: () => void,
    private readonly lifecycle: ServerLifecycle,
    private readonly logger: Logger,
  ) {}

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
      await this.app.close();
      return drained;
    })();
    return this.closed;
  }

  /** Cuts a close's grace period short: open requests are ended now (a second signal). */
  endGrace(): void {
    this.lifecycle.endGrace();
  }
}

function formatUrl(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** Loads the engine and starts listening; resolves once requests are served. */
export async function startServer(options: ServerOptions): Promise<DuetServer> {
  const logger = options.logger ?? silentLogger;
  const config = options.engineConfig;
  const engineStarting = AsyncEngine.start(config, {
    logger,
    ...(options.workerUrl ? { workerUrl: options.workerUrl } : {}),
  });
  // Surface a load failure through the await below, not as an unhandled rejection meanwhile.
  engineStarting.catch(() => {});
  let engine: AsyncEngine | null = null;
  try {
    const tokenizer = loadModelTokenizer(config.model);
    engine = await engineStarting;
    const info = engine.info;
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
        allowedOrigins: options.allowedOrigins ?? ['*'],
      },
    };
    const app = buildApp(ctx);
    const lifecycle = new ServerLifecycle();
    lifecycle.install(app);
    registerProbeRoutes(app, ctx, lifecycle);
    let url: string;
    if (options.uds) {
      const path = resolve(options.uds);
      await app.listen({ path });
      url = `unix:${path}`;
    } else {
      const host = options.host ?? '127.0.0.1';
      await app.listen({ host, port: options.port ?? 8000 });
      const address = app.server.address();
      const port = typeof address === 'object' && address !== null ? address.port : (options.port ?? 8000);
      url = formatUrl(host, port);
    }
    const stopStats = options.disableLogStats
      ? () => {}
      : startStatsLogger(engine, logger, options.logStatsIntervalS ?? DEFAULT_LOG_STATS_INTERVAL_S);
    if (info.isDummy) logger.warn('serving random (dummy) weights: the completions are meaningless text');
    if (ctx.options.apiKey !== null)
      logger.info('an API key is required on /v1 routes (Authorization: Bearer)');
    logger.info(`serving model "${names.join('", "')}" (max_model_len ${info.maxModelLen}) at ${url}`);
    return new DuetServer(app, ctx, url, stopStats, lifecycle, logger);
  } catch (e) {
    if (engine) await engine.close();
    else await engineStarting.then((started) => started.close()).catch(() => {});
    throw e;
  }
}
