// Parallel prefill benchmark: prefill throughput of a dummy-weight DeepSeek (the V2-Lite config narrowed
// with --hf-overrides) for one rank in one process, and for two hosts x one rank (`-tp 2 --nnodes 2`,
// the head in testbed host 0, the headless node in host 1) at 10 Gbit/s and at 1 Gbit/s, side by side in
// one run; and data parallelism across the two hosts (`-dp 2 --enable-expert-parallel --nnodes 2`: one engine
// replica per host, the experts shared over the network) at the first link rate; for each, the share of
// the driver's step time spent waiting on communication (the driver's
// collectives timed by TimedCommunicator). Every rank gets one compute thread (--num-threads 1), so on a
// 2-core machine the two hosts have a core each and one rank has one. Configurations take turns over
// several rounds, so that load from other processes spreads over all of them alike; each one's fastest
// round (the least disturbed) is shown, with its median throughput beside it.
//
//   npm run bench:parallel -- [--prompts 64] [--input-len 128] [--batched-tokens 128] [--rounds 5]
//                             [--links 10gbit,1gbit] [--delay 100us] [--hf-overrides JSON]
//
// Where the testbed cannot be created (no root, no `ip netns`), the two-host rows run as two processes on
// loopback, unshaped, and the table says so.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { inHost, type TestbedHost, whyNoNetns, withTestbed } from '../scripts/testbed/testbed.js';
import { addEngineOptions, engineConfigFromOptions, normaliseFlagSpelling } from '../src/cli/engine-args.js';
import { LLM } from '../src/engine/llm.js';
import { enableWasmFeatures } from '../src/platforms/cpu/wasm-features.js';
import { parseBenchArgs } from './bench-args.js';

enableWasmFeatures();

const SELF = fileURLToPath(import.meta.url);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DUET = fileURLToPath(new URL('../../bin/duet.js', import.meta.url));

/** The default shape: DeepSeek-V2-Lite's architecture, 4 layers, narrowed so a step takes tens of ms. */
const DEFAULT_OVERRIDES = {
  num_hidden_layers: 4,
  first_k_dense_replace: 1,
  hidden_size: 512,
  intermediate_size: 1408,
  moe_intermediate_size: 176,
  n_routed_experts: 16,
  num_experts_per_tok: 4,
  n_shared_experts: 2,
  num_attention_heads: 8,
  num_key_value_heads: 8,
  kv_lora_rank: 128,
  qk_nope_head_dim: 32,
  qk_rope_head_dim: 16,
  v_head_dim: 32,
  vocab_size: 16000,
};

/** What the head measures and prints as one JSON line. */
interface HeadResult {
  readonly promptTokens: number;
  readonly seconds: number;
  readonly steps: number;
  readonly executeMs: number;
  readonly commWaitMs: number;
  /** CPU time of the head process (all its threads) over the timed run. */
  readonly cpuMs: number;
}

/** The head's job, handed over as one JSON argument. */
interface HeadJob {
  readonly flags: string[];
  readonly prompts: number;
  readonly inputLen: number;
}

/** Seeded random prompts of token ids in [100, vocab − 100). */
function randomPrompts(
  n: number,
  len: number,
  vocab: number,
  seed: number,
): { prompt_token_ids: number[] }[] {
  let s = seed >>> 0;
  const next = () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
  return Array.from({ length: n }, () => ({
    prompt_token_ids: Array.from({ length: len }, () => 100 + Math.floor(next() * (vocab - 200))),
  }));
}

/** Head role: loads the engine from duet flags, warms up, times a prefill-only batch, prints the result. */
async function runHead(job: HeadJob): Promise<void> {
  const cmd = addEngineOptions(new Command('bench-parallel-head'), 'offline').exitOverride();
  cmd.parse(normaliseFlagSpelling(job.flags), { from: 'user' });
  const llm = new LLM({ engineConfig: engineConfigFromOptions(cmd.opts()) });
  try {
    const engine = await llm.engine();
    const vocab = engine.loaded.config.vocabSize;
    const params = { temperature: 0, maxTokens: 1, ignoreEos: true };
    await llm.generate(randomPrompts(2, job.inputLen, vocab, 7), params, { useTqdm: false });
    const before = engine.stepTiming;
    const prompts = randomPrompts(job.prompts, job.inputLen, vocab, 11);
    const cpuBefore = process.cpuUsage();
    const started = performance.now();
    await llm.generate(prompts, params, { useTqdm: false });
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    const after = engine.stepTiming;
    const result: HeadResult = {
      promptTokens: job.prompts * job.inputLen,
      seconds,
      steps: after.steps - before.steps,
      executeMs: after.executeMs - before.executeMs,
      commWaitMs: after.commWaitMs - before.commWaitMs,
      cpuMs: (cpu.user + cpu.system) / 1000,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await llm.close();
  }
}

/** The cluster secret of this run's two-host servers, passed in the environment (kept out of `ps`). */
const CLUSTER_ENV = { ...process.env, DUET_CLUSTER_SECRET: randomBytes(16).toString('hex') };

/** Runs a command to its end; resolves with its stdout, rejects with its stderr on failure. */
function run(argv: readonly string[], label: string): { done: Promise<string>; kill: () => void } {
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: CLUSTER_ENV,
  });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => {
    out += s;
  });
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    err += s;
  });
  const done = new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) =>
      code === 0 ? resolve(out) : reject(new Error(`${label} failed (${signal ?? `exit ${code}`}):\n${err}`)),
    );
  });
  return { done, kill: () => child.kill('SIGKILL') };
}

function headArgv(prefix: readonly string[], job: HeadJob): string[] {
  return [...prefix, process.execPath, SELF, '--role', 'head', '--job', JSON.stringify(job)];
}

function parseResult(stdout: string): HeadResult {
  const line = stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as HeadResult;
}

/** Two hosts x one rank: the headless node in `b`, the head in `a`; returns the head's result. */
async function twoHosts(
  a: { prefix: readonly string[]; address: string },
  b: { prefix: readonly string[] },
  modelFlags: readonly string[],
  job: Omit<HeadJob, 'flags'>,
  port: number,
  /** How the two ranks split the model: -tp 2, or -dp 2 with expert parallelism. */
  parallel: readonly string[] = ['-tp', '2'],
): Promise<HeadResult> {
  const cluster = [
    ...modelFlags,
    ...parallel,
    '--nnodes',
    '2',
    '--master-addr',
    a.address,
    '--master-port',
    String(port),
    '--dist-timeout',
    '120',
  ];
  const node = run(
    [...b.prefix, process.execPath, DUET, 'serve', ...cluster, '--node-rank', '1', '--headless'],
    'node',
  );
  const head = run(headArgv(a.prefix, { ...job, flags: [...cluster, '--node-rank', '0'] }), 'head');
  try {
    const out = await head.done;
    // The head has its figures; a node that ends badly after that is reported, not fatal.
    await node.done.catch((e: Error) => {
      const last = e.message.trim().split('\n').pop();
      console.log(`warning: the headless node ended with an error after the head finished: ${last}`);
    });
    return parseResult(out);
  } finally {
    head.kill();
    node.kill();
  }
}

/** Results sorted fastest first. */
function byTime(xs: readonly HeadResult[]): HeadResult[] {
  return [...xs].sort((p, q) => p.seconds - q.seconds);
}

async function main(): Promise<void> {
  const { values } = parseBenchArgs(import.meta.url, {
    options: {
      role: { type: 'string' },
      job: { type: 'string' },
      prompts: { type: 'string', default: '64' },
      'input-len': { type: 'string', default: '128' },
      'batched-tokens': { type: 'string', default: '128' },
      rounds: { type: 'string', default: '5' },
      links: { type: 'string', default: '10gbit,1gbit' },
      delay: { type: 'string', default: '100us' },
      'hf-overrides': { type: 'string' },
    },
  });
  if (values.role === 'head') return runHead(JSON.parse(values.job!) as HeadJob);

  const overrides = values['hf-overrides'] ? JSON.parse(values['hf-overrides']) : DEFAULT_OVERRIDES;
  const job = { prompts: Number(values.prompts), inputLen: Number(values['input-len']) };
  const modelFlags = [
    '--model',
    'assets/configs/deepseek-v2-lite',
    '--load-format',
    'dummy',
    '--hf-overrides',
    JSON.stringify(overrides),
    '--max-model-len',
    String(job.inputLen + 16),
    '--max-num-batched-tokens',
    values['batched-tokens'],
    '--max-num-seqs',
    '256',
    '--block-size',
    '16',
    '--kv-cache-memory',
    '256MiB',
    '--no-enable-prefix-caching',
    '--num-threads',
    '1',
  ];
  const links = values.links.split(',').filter((l) => l !== '');
  const rounds = Number(values.rounds);
  const why = whyNoNetns();
  const linkName = (l: string) => (why ? 'loopback' : l);
  const dpFlags = ['-dp', '2', '--enable-expert-parallel'];
  const columns = [
    '1 rank (1 process)',
    ...links.map((l) => `2 hosts x 1 rank, ${linkName(l)}`),
    ...(links.length > 0 ? [`-dp 2 -ep, 2 hosts, ${linkName(links[0]!)}`] : []),
  ];
  const results: HeadResult[][] = columns.map(() => []);
  console.log(
    `parallel prefill: ${job.prompts} prompts x ${job.inputLen} tokens, max tokens 1, steps of ${values['batched-tokens']} tokens; ` +
      `DeepSeek-V2-Lite config with ${JSON.stringify(overrides)}, dummy weights, 1 compute thread per rank`,
  );
  if (why) console.log(`testbed unavailable (${why}): the two-host rows run on loopback, unshaped`);
  const load = () => loadavg()[0]!.toFixed(1);
  console.log(
    `load average (1 min) at the start: ${load()} (other processes share the cores: judge the noise)`,
  );
  let port = 29700;
  for (let round = 0; round < rounds; round++) {
    results[0]!.push(parseResult(await run(headArgv([], { ...job, flags: modelFlags }), '1 rank').done));
    const onTwoHosts = async (link: string, parallel: readonly string[]): Promise<HeadResult> => {
      if (why) {
        const local = { prefix: [], address: '127.0.0.1' };
        return twoHosts(local, local, modelFlags, job, port++, parallel);
      }
      return withTestbed({ hosts: 2, bandwidth: link, delay: values.delay }, (hosts: TestbedHost[]) =>
        twoHosts(
          { prefix: inHost(hosts[0]!), address: hosts[0]!.address },
          { prefix: inHost(hosts[1]!) },
          modelFlags,
          job,
          port++,
          parallel,
        ),
      );
    };
    for (const [i, link] of links.entries()) results[i + 1]!.push(await onTwoHosts(link, ['-tp', '2']));
    if (links.length > 0) results[links.length + 1]!.push(await onTwoHosts(links[0]!, dpFlags));
    console.log(
      `round ${round + 1}/${rounds}: ` +
        columns.map((c, i) => `${c} ${results[i]!.at(-1)!.seconds.toFixed(2)} s`).join(', '),
    );
  }

  const tps = (r: HeadResult) => r.promptTokens / r.seconds;
  const rows = columns.map((name, i) => {
    const sorted = byTime(results[i]!);
    return { name, best: sorted[0]!, median: sorted[Math.floor((sorted.length - 1) / 2)]! };
  });
  const base = rows[0]!.best;
  console.log(
    `\n${rounds} round(s); figures of each configuration's fastest round (the least disturbed), and its median ` +
      `throughput; load average (1 min) at the end: ${load()}`,
  );
  const header = [
    'configuration'.padEnd(30),
    'prefill tok/s'.padStart(13),
    'median'.padStart(7),
    'vs 1 rank'.padStart(9),
    'ms/step'.padStart(8),
    'comm wait/step'.padStart(14),
    'comm share'.padStart(10),
    'head CPU'.padStart(8),
  ];
  console.log(header.join(' '));
  for (const { name, best: r, median } of rows) {
    const cells = [
      name.padEnd(30),
      tps(r).toFixed(0).padStart(13),
      tps(median).toFixed(0).padStart(7),
      `${(tps(r) / tps(base)).toFixed(2)}x`.padStart(9),
      (r.executeMs / r.steps).toFixed(1).padStart(8),
      `${(r.commWaitMs / r.steps).toFixed(1)} ms`.padStart(14),
      `${((100 * r.commWaitMs) / r.executeMs).toFixed(1)}%`.padStart(10),
      `${((100 * r.cpuMs) / (r.seconds * 1000)).toFixed(0)}%`.padStart(8),
    ];
    console.log(cells.join(' '));
  }
  console.log(
    "\nms/step: the driver's time in the model forward per step (batch broadcast included); comm wait / share: the " +
      'part of it the driver spent blocked on collectives (transfers, latency and waiting for the slower rank); ' +
      'head CPU: CPU time of the head process (compute and communication threads) over wall time. With -dp 2 ' +
      "a step runs both replicas' batches (each up to the step token budget) at once.",
  );
}

await main();
