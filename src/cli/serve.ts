// `duet serve [MODEL]`: the OpenAI-compatible HTTP server with vLLM's flags (`--flag_name` spellings too).
// Engine flags are shared with `duet generate`; the server's own are declared here. Flags that mean
// nothing on the CPU platform are accepted with a one-line notice; flags for features Duet lacks are
// errors, never silently ignored. Runs until SIGINT / SIGTERM, then closes the server and the engine.

import os from 'node:os';
import { Command, InvalidArgumentError, Option } from 'commander';
import { runHeadlessNode } from '../executor/multi-node.js';
import {
  DEFAULT_MAX_LOGPROBS,
  DEFAULT_SAMPLING_LIMITS,
  type SamplingLimits,
} from '../sampling/sampling-params.js';
import type { CorsPolicy } from '../server/cors.js';
import { DEFAULT_CORS_POLICY } from '../server/cors.js';
import { DEFAULT_HTTP_TIMEOUTS } from '../server/http-listener.js';
import {
  DEFAULT_MAX_CHOICES_PER_REQUEST,
  DEFAULT_STREAM_STALL_TIMEOUT_MS,
  startServer,
} from '../server/server.js';
import { createLogger, type Logger } from '../util/logger.js';
import { addEngineOptions } from './engine-args.js';
import { exitOnEngineDeath } from './exit-on-engine-death.js';
import { engineConfigUnderLauncher } from './launcher-options.js';
import { runHeadlessUntilStopped, serveUntilSignalled } from './serve-signals.js';

/** A server flag that cannot be used as given: says what is allowed. */
export class ServeOptionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ServeOptionError';
  }
}

function intIn(flag: string, min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${flag} takes an integer in [${min}, ${max}], got "${v}"`);
    }
    return n;
  };
}

/** Default --shutdown-timeout: drains within Kubernetes' default 30 s termination grace. */
const DEFAULT_SHUTDOWN_TIMEOUT_S = 20;

function secondsArg(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < 0 || n > 86_400) {
      throw new InvalidArgumentError(`${flag} takes a number of seconds in [0, 86400], got "${v}"`);
    }
    return n;
  };
}

/** vLLM's --allowed-origins, --allowed-methods, --allowed-headers: a JSON list of strings. */
function jsonListArg(flag: string, example: string) {
  return (v: string): string[] => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch {
      throw new InvalidArgumentError(`${flag} takes a JSON list such as '${example}', got "${v}"`);
    }
    if (!Array.isArray(parsed) || !parsed.every((o) => typeof o === 'string')) {
      throw new InvalidArgumentError(`${flag} takes a JSON list of strings such as '${example}', got "${v}"`);
    }
    return parsed;
  };
}

/** A timeout flag in seconds (fractions allowed, more than 0) → milliseconds. */
function timeoutArg(flag: string) {
  return (v: string): number => {
    const s = Number(v);
    if (!Number.isFinite(s) || s <= 0 || s > 86_400) {
      throw new InvalidArgumentError(`${flag} takes a number of seconds in (0, 86400], got "${v}"`);
    }
    return Math.round(s * 1000);
  };
}

/** The request-size limits: flag, options key, what it bounds, its default. */
const LIMIT_FLAGS: readonly { flag: string; key: keyof SamplingLimits; what: string }[] = [
  { flag: '--max-n', key: 'maxN', what: 'most completions per prompt (n)' },
  { flag: '--max-stop-strings', key: 'maxStopStrings', what: 'most stop strings per request' },
  { flag: '--max-stop-string-len', key: 'maxStopStringLength', what: 'longest stop string (characters)' },
  { flag: '--max-stop-token-ids', key: 'maxStopTokenIds', what: 'most stop_token_ids per request' },
  { flag: '--max-logit-bias', key: 'maxLogitBias', what: 'most logit_bias entries per request' },
];

/** vLLM flags with no meaning on the CPU platform: accepted, with this notice. */
const NO_CPU_MEANING: readonly { flag: string; key: string; takesValue: boolean; why: string }[] = [
  { flag: '--enforce-eager', key: 'enforceEager', takesValue: false, why: 'there are no CUDA graphs on CPU' },
  {
    flag: '--swap-space',
    key: 'swapSpace',
    takesValue: true,
    why: 'the KV cache already lives in host memory',
  },
  {
    flag: '--cpu-offload-gb',
    key: 'cpuOffloadGb',
    takesValue: true,
    why: 'the weights already live in host memory',
  },
  {
    flag: '--disable-custom-all-reduce',
    key: 'disableCustomAllReduce',
    takesValue: false,
    why: 'there is no GPU all-reduce',
  },
  {
    flag: '--max-seq-len-to-capture',
    key: 'maxSeqLenToCapture',
    takesValue: true,
    why: 'there are no CUDA graphs on CPU',
  },
  { flag: '--kv-cache-dtype', key: 'kvCacheDtype', takesValue: true, why: 'the KV cache is float32 on CPU' },
  {
    flag: '--uvicorn-log-level',
    key: 'uvicornLogLevel',
    takesValue: true,
    why: 'Duet serves with fastify; use DUET_LOG_LEVEL',
  },
  {
    flag: '--disable-uvicorn-access-log',
    key: 'disableUvicornAccessLog',
    takesValue: false,
    why: 'Duet logs no access lines',
  },
  {
    flag: '--disable-fastapi-docs',
    key: 'disableFastapiDocs',
    takesValue: false,
    why: 'Duet serves no API docs pages',
  },
  {
    flag: '--disable-frontend-multiprocessing',
    key: 'disableFrontendMultiprocessing',
    takesValue: false,
    why: 'the engine always runs in its own worker thread',
  },
];

/** vLLM flags for features Duet does not have: refused with this reason. */
const UNSUPPORTED: readonly { flag: string; key: string; takesValue: boolean; what: string }[] = [
  {
    flag: '--enable-auto-tool-choice',
    key: 'enableAutoToolChoice',
    takesValue: false,
    what: 'tool-call parsing',
  },
  { flag: '--tool-call-parser', key: 'toolCallParser', takesValue: true, what: 'tool-call parsing' },
  { flag: '--reasoning-parser', key: 'reasoningParser', takesValue: true, what: 'reasoning parsing' },
  { flag: '--ssl-keyfile', key: 'sslKeyfile', takesValue: true, what: 'TLS (put a TLS proxy in front)' },
  { flag: '--ssl-certfile', key: 'sslCertfile', takesValue: true, what: 'TLS (put a TLS proxy in front)' },
];

/** The server's own flags (the engine's come from addEngineOptions). */
function addServerOptions(cmd: Command): Command {
  cmd
    .option('--host <host>', 'interface to listen on; 0.0.0.0 serves every interface', '127.0.0.1')
    .option('--port <n>', 'TCP port (0: any free port)', intIn('--port', 0, 65535), 8000)
    .option('--uds <path>', 'listen on this Unix domain socket instead of host:port')
    .addOption(
      new Option(
        '--api-key <key>',
        'require "Authorization: Bearer <key>" on every route but /health, /ping, /version, /live, /ready',
      ).env('VLLM_API_KEY'),
    )
    .option('--enable-log-requests', 'log each request with its prompt and parameters')
    .option('--disable-log-requests', 'do not log requests (the default; kept for older vLLM command lines)')
    .option('--disable-log-stats', 'no periodic engine stats line')
    .option(
      '--max-log-len <n>',
      'longest prompt text or id list that request logging prints',
      intIn('--max-log-len', 0, 2 ** 31),
    )
    .option(
      '--max-logprobs <n>',
      'most log-probs a request may ask for (logprobs, top_logprobs, prompt_logprobs)',
      intIn('--max-logprobs', 0, 1 << 20),
      DEFAULT_MAX_LOGPROBS,
    )
    .option('--response-role <role>', 'role of the generated chat message', 'assistant')
    .option('--return-tokens-as-token-ids', 'show log-prob tokens as "token_id:<id>"')
    .option(
      '--allowed-origins <json>',
      'CORS: origins allowed besides loopback ones, a JSON list (["*"]: any); default: loopback only',
      jsonListArg('--allowed-origins', '["https://app.example.com"]'),
    )
    .option(
      '--allowed-methods <json>',
      `CORS: methods allowed, a JSON list (default: ${JSON.stringify(DEFAULT_CORS_POLICY.allowedMethods)})`,
      jsonListArg('--allowed-methods', '["GET","POST","OPTIONS"]'),
    )
    .option(
      '--allowed-headers <json>',
      `CORS: request headers allowed, a JSON list (default: ${JSON.stringify(DEFAULT_CORS_POLICY.allowedHeaders)})`,
      jsonListArg('--allowed-headers', '["authorization","content-type"]'),
    )
    .option('--allow-credentials', 'CORS: allow credentials (cookies, HTTP auth) on cross-origin requests')
    .option(
      '--max-choices-per-request <n>',
      'most completions (prompts × n) in one request',
      intIn('--max-choices-per-request', 1, 1 << 20),
      DEFAULT_MAX_CHOICES_PER_REQUEST,
    )
    .option(
      '--http-request-timeout <s>',
      `seconds a client has to send its whole request (default: ${DEFAULT_HTTP_TIMEOUTS.requestTimeoutMs / 1000})`,
      timeoutArg('--http-request-timeout'),
    )
    .option(
      '--http-keep-alive-timeout <s>',
      `seconds an idle keep-alive connection stays open (default: ${DEFAULT_HTTP_TIMEOUTS.keepAliveTimeoutMs / 1000})`,
      timeoutArg('--http-keep-alive-timeout'),
    )
    .option(
      '--stream-stall-timeout <s>',
      'seconds a streaming client may read nothing before its stream is closed and its request aborted ' +
        `(default: ${DEFAULT_STREAM_STALL_TIMEOUT_MS / 1000})`,
      timeoutArg('--stream-stall-timeout'),
    )
    .option(
      '--shutdown-timeout <seconds>',
      'on SIGTERM, how long open requests may run to their end before they are aborted',
      secondsArg('--shutdown-timeout'),
      DEFAULT_SHUTDOWN_TIMEOUT_S,
    );
  for (const f of LIMIT_FLAGS) {
    cmd.option(`${f.flag} <n>`, f.what, intIn(f.flag, 1, 1 << 24), DEFAULT_SAMPLING_LIMITS[f.key]);
  }
  for (const f of NO_CPU_MEANING) {
    cmd.option(
      f.takesValue ? `${f.flag} <value>` : f.flag,
      `accepted for compatibility; no effect (${f.why})`,
    );
  }
  for (const f of UNSUPPORTED) {
    cmd.option(f.takesValue ? `${f.flag} <value>` : f.flag, `not supported: ${f.what}`);
  }
  return cmd;
}

/** Refuses unsupported flags and prints one notice per flag without meaning here. */
function checkCompatibilityFlags(o: Record<string, unknown>, logger: Logger): void {
  for (const f of UNSUPPORTED) {
    if (o[f.key] !== undefined)
      throw new ServeOptionError(`${f.flag} is not supported: Duet has no ${f.what}`);
  }
  for (const f of NO_CPU_MEANING) {
    if (o[f.key] !== undefined) logger.info(`notice: ${f.flag} has no effect on the CPU platform (${f.why})`);
  }
  if (o.disableLogRequests !== undefined && o.enableLogRequests !== undefined) {
    throw new ServeOptionError(
      '--enable-log-requests and --disable-log-requests contradict each other; give one',
    );
  }
}

/** The server's access and resource bounds from the flags: CORS, request-size limits, timeouts. */
function hardeningOptions(o: Record<string, unknown>) {
  const cors: CorsPolicy = {
    allowedOrigins: (o.allowedOrigins as string[] | undefined) ?? DEFAULT_CORS_POLICY.allowedOrigins,
    allowedMethods: ((o.allowedMethods as string[] | undefined) ?? DEFAULT_CORS_POLICY.allowedMethods).map(
      (m) => m.toUpperCase(),
    ),
    allowedHeaders: ((o.allowedHeaders as string[] | undefined) ?? DEFAULT_CORS_POLICY.allowedHeaders).map(
      (h) => h.toLowerCase(),
    ),
    allowCredentials: o.allowCredentials === true,
  };
  // Commander stores --max-stop-string-len as maxStopStringLen.
  const attribute = (flag: string) => flag.slice(2).replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
  const samplingLimits = Object.fromEntries(
    LIMIT_FLAGS.map((f) => [f.key, o[attribute(f.flag)] as number]),
  ) as unknown as SamplingLimits;
  return {
    cors,
    samplingLimits,
    maxChoicesPerRequest: o.maxChoicesPerRequest as number,
    httpTimeouts: {
      ...(o.httpRequestTimeout !== undefined ? { requestTimeoutMs: o.httpRequestTimeout as number } : {}),
      ...(o.httpKeepAliveTimeout !== undefined
        ? { keepAliveTimeoutMs: o.httpKeepAliveTimeout as number }
        : {}),
    },
    ...(o.streamStallTimeout !== undefined ? { streamStallTimeoutMs: o.streamStallTimeout as number } : {}),
  };
}

export function serveCommand(): Command {
  const cmd = new Command('serve')
    .description('serve a model over an OpenAI-compatible HTTP API (vLLM flags); default: the embedded model')
    .argument('[model]', 'model folder (same as --model)')
    .allowExcessArguments(false);
  addEngineOptions(cmd);
  addServerOptions(cmd);
  cmd.action(async (positional: string | undefined, o: Record<string, unknown>) => {
    if (positional !== undefined) {
      if (o.model !== undefined && o.model !== positional) {
        throw new ServeOptionError(
          `the model is given twice, as "${positional}" and --model "${String(o.model)}"; give it once`,
        );
      }
      o.model = positional;
    }
    const logger = createLogger();
    checkCompatibilityFlags(o, logger);
    if (o.uds !== undefined && (o.host !== '127.0.0.1' || o.port !== 8000)) {
      logger.info('notice: --uds is given, so --host and --port are not used');
    }
    // Under mpirun, srun, torchrun or a LeaderWorkerSet the rank flags may come from the environment.
    const isGiven = (key: string) => cmd.getOptionValueSource(key) === 'cli';
    const engineConfig = engineConfigUnderLauncher(
      o,
      isGiven,
      process.env,
      os.availableParallelism(),
      logger,
    );
    if (engineConfig.parallel.headless) {
      // A headless node runs only its tensor-parallel ranks for the head node; no API server.
      const running = runHeadlessNode(engineConfig, logger);
      await runHeadlessUntilStopped(running, (o.shutdownTimeout as number) * 1000, logger);
      return;
    }
    logger.info(`duet serve: model ${engineConfig.model.model ?? '(embedded default)'}`);
    if (o.uds === undefined && o.host === '127.0.0.1') {
      logger.info('host 127.0.0.1: only this machine can connect; pass --host 0.0.0.0 to serve the network');
    }
    const server = await startServer({
      engineConfig,
      host: o.host as string,
      port: o.port as number,
      uds: (o.uds as string | undefined) ?? null,
      apiKey: (o.apiKey as string | undefined) || null,
      enableLogRequests: o.enableLogRequests === true,
      disableLogStats: o.disableLogStats === true,
      maxLogLen: (o.maxLogLen as number | undefined) ?? null,
      maxLogprobs: o.maxLogprobs as number,
      responseRole: o.responseRole as string,
      returnTokensAsTokenIds: o.returnTokensAsTokenIds === true,
      ...hardeningOptions(o),
      logger,
    });
    exitOnEngineDeath(server, logger);
    await serveUntilSignalled(server, (o.shutdownTimeout as number) * 1000, logger);
  });
  return cmd;
}
