// The engine flags shared by `duet generate` and `duet serve`, with vLLM's names and defaults, declared
// once for commander (help text included) and turned into a validated `EngineConfig`.

import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  BLOCK_SIZE_LIMITS,
  DEFAULT_ENGINE_CONFIG,
  DEFAULT_MAX_NUM_BATCHED_TOKENS,
  type EngineConfig,
  EngineConfigError,
  QUANTIZATION_METHODS,
} from '../config/engine-config.js';
import { buildEngineConfig, type EngineOptions, moeCommFrom } from '../config/engine-options.js';
import { jsonObjectArg } from './json-object-arg.js';

function intArg(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new InvalidArgumentError(`${flag} takes an integer, got "${v}"`);
    return n;
  };
}

function floatArg(flag: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isFinite(n)) throw new InvalidArgumentError(`${flag} takes a number, got "${v}"`);
    return n;
  };
}

/** Parses a byte size: a plain number, or with a K/M/G/T suffix (powers of 1024, `GiB` spelt or not). */
export function parseBytes(v: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$/i.exec(v);
  if (!m) throw new InvalidArgumentError(`expected a byte size such as 2147483648 or 2GiB, got "${v}"`);
  const scale = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }[
    m[2]!.toLowerCase() as '' | 'k' | 'm' | 'g' | 't'
  ];
  return Math.round(Number(m[1]) * scale);
}

function boolArg(flag: string) {
  return (v: string): boolean => {
    const t = v.toLowerCase();
    if (t === 'true' || t === '1') return true;
    if (t === 'false' || t === '0') return false;
    throw new InvalidArgumentError(`${flag} takes true or false, got "${v}"`);
  };
}

/** `text (default: value)`, for flags whose default is applied after parsing rather than by commander. */
function withDefault(text: string, value: string | number | boolean): string {
  return `${text} (default: ${value})`;
}

const onOff = (v: boolean) => (v ? 'on' : 'off');

/**
 * Adds the engine flags to a command; every default shown in --help is read from DEFAULT_ENGINE_CONFIG
 * (or the engine's own default where the config leaves it to the engine). `offline` leaves out the flags
 * that only a server uses (--served-model-name, --headless).
 */
export function addEngineOptions(cmd: Command, scope: 'serve' | 'offline' = 'serve'): Command {
  const d = DEFAULT_ENGINE_CONFIG;
  const serve = scope === 'serve';
  const extraDefaults = [
    `dbo_auto_off_min_gain ${d.dbo.autoOffMinGain}`,
    `dbo_auto_off_max_loss ${d.dbo.autoOffMaxLoss}`,
    `dbo_auto_off_min_comm_share ${d.dbo.autoOffMinCommShare}`,
    `dbo_auto_off_probe_interval ${d.dbo.autoOffProbeInterval}`,
    `dbo_order ${d.dbo.order}`,
  ].join(', ');
  cmd
    .option(
      '--model <dir>',
      'Hugging Face model folder (config.json, safetensors, tokenizer); default: the embedded model',
    )
    .option('--tokenizer <dir>', 'tokenizer folder (default: the model folder)')
    .addOption(
      new Option(
        '--dtype <dtype>',
        'weight precision; bfloat16 also rounds activations into matmuls to bf16 where the platform can (onednn)',
      )
        .choices(['auto', 'float32', 'bfloat16'])
        .default(d.model.dtype),
    )
    .addOption(
      new Option(
        '--load-format <format>',
        'weights: safetensors, or dummy (seeded random weights of the real shapes)',
      )
        .choices(['auto', 'safetensors', 'dummy'])
        .default(d.model.loadFormat),
    )
    .addOption(
      new Option(
        '--quantization <method>',
        'w8a8: int8 weights (per output channel) and int8 activations (per token), quantized while loading',
      ).choices([...QUANTIZATION_METHODS]),
    )
    .option('--seed <n>', 'seed of dummy weights and unseeded sampling', intArg('--seed'), d.model.seed)
    .option(
      '--weight-cache-dir <dir>',
      'keep prepared weights here and map them on the next load (onednn; also DUET_WEIGHT_CACHE_DIR; default: off)',
    )
    .option(
      '--hf-overrides <json>',
      'JSON merged into config.json, e.g. \'{"num_hidden_layers": 4}\'',
      jsonObjectArg('--hf-overrides', '{"num_hidden_layers": 4}'),
    )
    .option(
      '--max-model-len <n>',
      "longest sequence, prompt plus output (default: the model's)",
      intArg('--max-model-len'),
    )
    .option(
      '--generation-config <src>',
      '"auto" (generation_config.json), "vllm" (ignore it) or a folder',
      d.model.generationConfig,
    )
    .option(
      '--chat-template <file-or-template>',
      "chat template (a file or inline Jinja) replacing the tokenizer's",
    );
  if (serve) cmd.option('--served-model-name <name>', 'model name in the API (default: the model path)');
  const bs = BLOCK_SIZE_LIMITS;
  cmd
    .option(
      '--block-size <n>',
      `tokens per KV cache block (${bs.min}..${bs.max}; ${bs.recommendedMin}..${bs.max} recommended)`,
      intArg('--block-size'),
      d.cache.blockSize,
    )
    .option(
      '--gpu-memory-utilization <f>',
      'fraction of memory left after the weights that the KV cache may use',
      floatArg('--gpu-memory-utilization'),
      d.cache.gpuMemoryUtilization,
    )
    .option(
      '--kv-cache-memory <bytes>',
      'KV cache size in bytes (e.g. 2GiB); overrides --gpu-memory-utilization',
      parseBytes,
    )
    .option(
      '--num-gpu-blocks-override <n>',
      'exact number of KV cache blocks',
      intArg('--num-gpu-blocks-override'),
    )
    .option(
      '--enable-prefix-caching',
      withDefault('reuse KV blocks of shared prompt prefixes', onOff(d.cache.enablePrefixCaching)),
    )
    .option('--no-enable-prefix-caching', 'disable prefix caching')
    .option(
      '--enable-chunked-prefill',
      withDefault('split long prompts over several steps', onOff(d.scheduler.enableChunkedPrefill)),
    )
    .option('--no-enable-chunked-prefill', 'disable chunked prefill')
    .option(
      '--max-num-seqs <n>',
      'most sequences in one step',
      intArg('--max-num-seqs'),
      d.scheduler.maxNumSeqs,
    )
    .option(
      '--max-num-batched-tokens <n>',
      withDefault(
        'token budget of one step',
        `${DEFAULT_MAX_NUM_BATCHED_TOKENS}; without chunked prefill at least --max-model-len`,
      ),
      intArg('--max-num-batched-tokens'),
    )
    .option(
      '--tensor-parallel-size <n>',
      'tensor-parallel ranks (also -tp)',
      intArg('--tensor-parallel-size'),
      d.parallel.tensorParallelSize,
    )
    .option(
      '--data-parallel-size <n>',
      'data-parallel replicas (also -dp)',
      intArg('--data-parallel-size'),
      d.parallel.dataParallelSize,
    )
    .option(
      '--enable-expert-parallel',
      withDefault('split experts across ranks', onOff(d.parallel.enableExpertParallel)),
    )
    .addOption(new Option('--distributed-executor-backend <backend>', 'how ranks run').choices(['uni', 'mp']))
    .option(
      '--num-threads <n>',
      'compute threads of the CPU kernels (default: every core)',
      intArg('--num-threads'),
    )
    .option(
      '--nnodes <n>',
      'hosts the tensor-parallel ranks spread over',
      intArg('--nnodes'),
      d.parallel.nnodes,
    )
    .option(
      '--node-rank <n>',
      "this host's index; 0 is the head that serves",
      intArg('--node-rank'),
      d.parallel.nodeRank,
    )
    .option('--master-addr <ip>', "the head node's address (rendezvous)", d.parallel.masterAddr)
    .option(
      '--master-port <port>',
      "the head node's rendezvous port",
      intArg('--master-port'),
      d.parallel.masterPort,
    );
  if (serve) cmd.option('--headless', "run only this node's ranks, no API server (every node but the head)");
  return cmd
    .option('--cluster-secret <secret>', 'secret a node must know to join (also DUET_CLUSTER_SECRET)')
    .option(
      '--allow-insecure-cluster',
      'allow --nnodes > 1 on a non-loopback --master-addr without a cluster secret (also DUET_ALLOW_INSECURE_CLUSTER=1)',
    )
    .option(
      '--dist-timeout <seconds>',
      'a peer rank silent this long is declared dead',
      floatArg('--dist-timeout'),
      d.parallel.distTimeoutMs / 1000,
    )
    .option(
      '--enable-dbo',
      withDefault(
        'dual-batch overlap (also VLLM_ASCEND_ENABLE_DBO=1, VLLM_ENABLE_DBO=1, DUET_ENABLE_DBO=1)',
        onOff(d.dbo.enabled),
      ),
    )
    .option(
      '--dbo-prefill-token-threshold <n>',
      withDefault('DBO: steps with a prefill and fewer tokens run as one batch', d.dbo.prefillTokenThreshold),
      intArg('--dbo-prefill-token-threshold'),
    )
    .option(
      '--dbo-decode-token-threshold <n>',
      withDefault(
        'DBO: decode-only steps split only at or above this many tokens',
        d.dbo.decodeTokenThreshold,
      ),
      intArg('--dbo-decode-token-threshold'),
    )
    .option(
      '--dbo-auto-off <bool>',
      withDefault(
        'DBO: time one-batch and split steps and stop splitting where it does not pay',
        d.dbo.autoOff,
      ),
      boolArg('--dbo-auto-off'),
    )
    .option('--trace-dir <dir>', 'write a Chrome / Perfetto trace per rank (also DUET_TRACE_DIR)')
    .option(
      '--additional-config <json>',
      [
        'JSON handed to the platform: moe_comm ("allgather" | "alltoall";',
        `default ${moeCommFrom({}, true)} with expert parallelism, else ${moeCommFrom({}, false)}),`,
        'dbo_prefill_token_threshold, dbo_decode_token_threshold, dbo_auto_off (as the flags),',
        `and the DBO off-switch's tuning: ${extraDefaults}`,
      ].join(' '),
      jsonObjectArg('--additional-config', '{"moe_comm": "alltoall"}'),
    )
    .option(
      '--device <name>',
      'platform to run on (`duet env` lists them; default: the best available, cpu last)',
    )
    .option('--compilation-config <json>', 'accepted for compatibility; no effect on the CPU platform')
    .option('--trust-remote-code', 'accepted for compatibility; Duet runs only its own model code');
}

/** Builds and validates the engine config from parsed commander options (the one builder's input). */
export function engineConfigFromOptions(o: Record<string, unknown>): EngineConfig {
  return buildEngineConfig(o as EngineOptions);
}

/** vLLM's multi-letter short flags, which commander cannot declare. */
const SHORT_ALIASES: Readonly<Record<string, string>> = {
  '-tp': '--tensor-parallel-size',
  '-dp': '--data-parallel-size',
};

/**
 * Rewrites `--flag_name` spellings to `--flag-name` (vLLM accepts both) and `-tp`/`-dp` (also `-tp=2`)
 * to their long forms, leaving values untouched.
 */
export function normaliseFlagSpelling(argv: readonly string[]): string[] {
  return argv.map((a) => {
    const short = /^(-tp|-dp)(=.*)?$/.exec(a);
    if (short) return SHORT_ALIASES[short[1]!]! + (short[2] ?? '');
    if (!a.startsWith('--')) return a;
    const eq = a.indexOf('=');
    const name = eq === -1 ? a : a.slice(0, eq);
    return name.replace(/_/g, '-') + (eq === -1 ? '' : a.slice(eq));
  });
}

export { EngineConfigError };
