// The flags of the DBO benchmark (bench/dbo.ts), parsed and validated in one place: a bad value is an error
// that names the flag, what it got and what it allows, before any server starts.
//
// Two phases: `prefill` (the default; random prompts of --input-len tokens with one output token, figures
// per step of --input-len tokens) and `decode` (for each count in --decode-seqs, that many sequences
// generating --output-len tokens at once; figures per decode step of the full batch).

import { parseArgs } from 'node:util';

/** A flag with a value it does not allow. */
export class DboBenchArgError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DboBenchArgError';
  }
}

export type DboBenchPhase = 'prefill' | 'decode';

/** The benchmark's settings, validated. */
export interface DboBenchArgs {
  readonly phase: DboBenchPhase;
  /** `auto` (calibrate) or a tc rate such as `800mbit`. */
  readonly bandwidth: string;
  readonly targetCommShare: number;
  /** Prompt length: prefill 512 by default; decode 32 (64 sequences' prompts then fit one step's 2048-token budget). */
  readonly inputLen: number;
  /** Tokens each sequence generates (decode phase; the prefill phase generates 1). */
  readonly outputLen: number;
  /** Decode phase: the batch sizes measured, one comparison each (e.g. [32, 64]). */
  readonly decodeSeqs: readonly number[];
  readonly numPrompts: number;
  readonly maxConcurrency: number;
  readonly requestRate: string;
  readonly numWarmups: number;
  readonly rounds: number;
  readonly moeComm: 'allgather' | 'alltoall';
  readonly model: string | undefined;
  readonly loadFormat: string | undefined;
  readonly hfOverrides: string | undefined;
  readonly out: string | undefined;
  readonly skipLocal: boolean;
  readonly skipUnlimited: boolean;
  readonly maxForeignCores: number;
  readonly attempts: number;
  readonly dboAutoOff: 'true' | 'false';
  /** `--dbo-decode-token-threshold` for the DBO-on servers; null: the server's default (32). */
  readonly dboDecodeTokenThreshold: number | null;
  /** Seconds each run waits for the machine to be quiet. */
  readonly quietWait: number;
}

export const DBO_BENCH_USAGE = `usage: npm run bench:dbo -- [--phase prefill|decode] [--bandwidth auto|800mbit] [--target-comm-share 0.4]
    [--input-len N (prefill 512, decode 32)] [--num-prompts 16] [--max-concurrency 2] [--request-rate 12]
    [--decode-seqs 32,64] [--output-len 64] [--dbo-decode-token-threshold N]   (decode phase)
    [--num-warmups N (prefill 16, decode 2)] [--rounds 2] [--moe-comm allgather|alltoall] [--model DIR] [--load-format auto|dummy]
    [--hf-overrides JSON] [--out DIR] [--skip-local] [--skip-unlimited] [--max-foreign-cores 0.25]
    [--attempts 4] [--dbo-auto-off true|false] [--quiet-wait 120]`;

const OPTIONS = {
  phase: { type: 'string', default: 'prefill' },
  bandwidth: { type: 'string', default: 'auto' },
  'target-comm-share': { type: 'string', default: '0.4' },
  'input-len': { type: 'string' },
  'output-len': { type: 'string', default: '64' },
  'decode-seqs': { type: 'string', default: '32,64' },
  'num-prompts': { type: 'string', default: '16' },
  'max-concurrency': { type: 'string', default: '2' },
  'request-rate': { type: 'string', default: '12' },
  'num-warmups': { type: 'string' },
  rounds: { type: 'string', default: '2' },
  'moe-comm': { type: 'string', default: 'allgather' },
  model: { type: 'string' },
  'load-format': { type: 'string' },
  'hf-overrides': { type: 'string' },
  out: { type: 'string' },
  'skip-local': { type: 'boolean', default: false },
  'skip-unlimited': { type: 'boolean', default: false },
  'max-foreign-cores': { type: 'string', default: '0.25' },
  attempts: { type: 'string', default: '4' },
  'dbo-auto-off': { type: 'string', default: 'true' },
  'dbo-decode-token-threshold': { type: 'string' },
  'quiet-wait': { type: 'string', default: '120' },
} as const;

/** An integer flag in [min, max]. */
function intFlag(flag: string, text: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = /^\d+$/.test(text.trim()) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
    throw new DboBenchArgError(`--${flag} must be an integer ${range}, got ${JSON.stringify(text)}`);
  }
  return n;
}

/** A number flag in (0, max] (or [0, max] with `zeroOk`). */
function numberFlag(flag: string, text: string, max: number, zeroOk = false): number {
  const n = text.trim() === '' ? Number.NaN : Number(text);
  if (!(n > 0 || (zeroOk && n === 0)) || n > max) {
    throw new DboBenchArgError(
      `--${flag} must be a number ${zeroOk ? '>= 0' : '> 0'} and <= ${max}, got ${JSON.stringify(text)}`,
    );
  }
  return n;
}

/** `32,64`: distinct batch sizes of at least 2 sequences (a micro-batch is never empty). */
export function parseDecodeSeqs(text: string): number[] {
  const parts = text.split(',').map((s) => s.trim());
  const seqs = parts.map((s) => {
    const n = /^\d+$/.test(s) ? Number(s) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < 2 || n > 1024) {
      throw new DboBenchArgError(
        `--decode-seqs must be a comma-separated list of integers from 2 to 1024 (e.g. 32,64), got ${JSON.stringify(text)}`,
      );
    }
    return n;
  });
  if (new Set(seqs).size !== seqs.length) {
    throw new DboBenchArgError(`--decode-seqs lists a batch size twice: ${JSON.stringify(text)}`);
  }
  return seqs;
}

/** Parses and validates the benchmark's flags (`argv` without node and the script). */
export function parseDboBenchArgs(argv: readonly string[]): DboBenchArgs {
  let values: ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];
  try {
    values = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (e) {
    throw new DboBenchArgError((e as Error).message);
  }
  const phase = values.phase;
  if (phase !== 'prefill' && phase !== 'decode') {
    throw new DboBenchArgError(`--phase must be prefill or decode, got ${JSON.stringify(phase)}`);
  }
  const moeComm = values['moe-comm'];
  if (moeComm !== 'allgather' && moeComm !== 'alltoall') {
    throw new DboBenchArgError(`--moe-comm must be allgather or alltoall, got ${JSON.stringify(moeComm)}`);
  }
  const autoOff = values['dbo-auto-off'];
  if (autoOff !== 'true' && autoOff !== 'false') {
    throw new DboBenchArgError(`--dbo-auto-off must be true or false, got ${JSON.stringify(autoOff)}`);
  }
  const bandwidth = values.bandwidth;
  if (bandwidth !== 'auto' && !/^\d+(?:\.\d+)?(k|m|g)bit$/i.test(bandwidth)) {
    throw new DboBenchArgError(
      `--bandwidth must be auto or a tc rate such as 400mbit or 1gbit, got ${JSON.stringify(bandwidth)}`,
    );
  }
  const rate = values['request-rate'];
  if (rate !== 'inf' && !(Number(rate) > 0)) {
    throw new DboBenchArgError(`--request-rate must be inf or a number > 0, got ${JSON.stringify(rate)}`);
  }
  const given = (flag: string) => argv.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`));
  if (phase === 'prefill') {
    const decodeOnly = ['decode-seqs', 'output-len', 'dbo-decode-token-threshold'].filter(given);
    if (decodeOnly.length > 0) {
      throw new DboBenchArgError(
        `${decodeOnly.map((f) => `--${f}`).join(' and ')} need --phase decode (the prefill phase generates one token)`,
      );
    }
  } else {
    const prefillOnly = ['num-prompts', 'max-concurrency', 'request-rate'].filter(given);
    if (prefillOnly.length > 0) {
      throw new DboBenchArgError(
        `${prefillOnly.map((f) => `--${f}`).join(', ')}: not for --phase decode, where each --decode-seqs count ` +
          'is the number of prompts and the concurrency, all sent at once',
      );
    }
  }
  return {
    phase,
    bandwidth,
    targetCommShare: numberFlag('target-comm-share', values['target-comm-share'], 0.95),
    inputLen: intFlag('input-len', values['input-len'] ?? (phase === 'decode' ? '32' : '512'), 1),
    outputLen: intFlag('output-len', values['output-len'], 2, 4096),
    decodeSeqs: parseDecodeSeqs(values['decode-seqs']),
    numPrompts: intFlag('num-prompts', values['num-prompts'], 1),
    maxConcurrency: intFlag('max-concurrency', values['max-concurrency'], 1),
    requestRate: rate,
    // A fresh server's first prefill steps run slower (JIT, the allocator, oneDNN primitives; docs/dbo.md)
    // and DBO's off-switch measures over its first ~20 eligible steps: the prefill phase measures the
    // servers after those.
    numWarmups: intFlag('num-warmups', values['num-warmups'] ?? (phase === 'decode' ? '2' : '16'), 0),
    rounds: intFlag('rounds', values.rounds, 1),
    moeComm,
    model: values.model,
    loadFormat: values['load-format'],
    hfOverrides: values['hf-overrides'],
    out: values.out,
    skipLocal: values['skip-local'],
    skipUnlimited: values['skip-unlimited'],
    maxForeignCores: numberFlag('max-foreign-cores', values['max-foreign-cores'], 1e6, true),
    attempts: intFlag('attempts', values.attempts, 1),
    dboAutoOff: autoOff,
    dboDecodeTokenThreshold:
      values['dbo-decode-token-threshold'] === undefined
        ? null
        : intFlag('dbo-decode-token-threshold', values['dbo-decode-token-threshold'], 2),
    quietWait: numberFlag('quiet-wait', values['quiet-wait'], 1e6, true),
  };
}
