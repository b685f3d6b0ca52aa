// Serving overhead: the same random dataset (vLLM's, as `duet bench serve` builds it) once through the
// offline `LLM` API with maxNumSeqs = the concurrency, once through `duet serve` driven by
// `duet bench serve` at that concurrency and rate inf, on the same model. Each round runs both, in turns
// (offline first in odd rounds, served first in even ones), so that a neighbour's load falls on both
// alike. Prints per round both throughputs, their wall-clock ratio, the CPU-based ratio (offline CPU per
// request over served CPU per request, the server's and the client's: the throughput ratio of a run held
// back by CPU alone) and where the CPU went, thread by thread: the engine, the kernel pool, the HTTP main
// thread, the tokenizer thread, the Node runtime (GC, JIT, native threads such as OpenMP's), and the
// benchmark client, which runs as its own process on the same cores (bench/thread-cpu.ts; Linux); then
// the median of each ratio over the rounds, with the load average around every run.
//
//   npm run bench:serve-overhead -- [--num-prompts 600] [--input-len 128] [--output-len 32]
//                                   [--concurrency 32] [--model DIR] [--kv-cache-memory BYTES] [--rounds 3]

import { type ChildProcess, spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { embeddedModelDir } from '../src/models/model-loader.js';
import { parseBenchArgs, refuseBenchFlag } from './bench-args.js';
import { loadAverage1, perRoleSince, type ThreadCpu, threadCpu, threadRunqueueWait } from './thread-cpu.js';

const { values } = parseBenchArgs(import.meta.url, {
  options: {
    'num-prompts': { type: 'string', default: '600' },
    'input-len': { type: 'string', default: '128' },
    'output-len': { type: 'string', default: '32' },
    concurrency: { type: 'string', default: '32' },
    model: { type: 'string' },
    'kv-cache-memory': { type: 'string' },
    rounds: { type: 'string', default: '3' },
  },
});
const numPrompts = Number(values['num-prompts']);
const inputLen = Number(values['input-len']);
const outputLen = Number(values['output-len']);
const concurrency = Number(values.concurrency);
const rounds = Number(values.rounds);
for (const [flag, v] of [
  ['--num-prompts', numPrompts],
  ['--input-len', inputLen],
  ['--output-len', outputLen],
  ['--concurrency', concurrency],
  ['--rounds', rounds],
] as const) {
  if (!Number.isInteger(v) || v < 1)
    refuseBenchFlag(import.meta.url, `${flag} must be an integer >= 1, got ${v}`);
}
const BIN = fileURLToPath(new URL('../../bin/duet.js', import.meta.url));
const OFFLINE = fileURLToPath(new URL('./serve-overhead-offline.js', import.meta.url));
/** Engine flags both runs get: the model, and the KV cache size when given (the engine's default else). */
const modelArgs = [
  ...(values.model ? ['--model', values.model] : []),
  ...(values['kv-cache-memory'] ? ['--kv-cache-memory', values['kv-cache-memory']] : []),
];

/** One run's throughput and CPU split (seconds per role, 'client' for the benchmark client). */
interface RunResult {
  readonly wallS: number;
  readonly numRequests: number;
  readonly cpu: ThreadCpu;
  /** Seconds per role runnable but waiting for a core (the client's not read: it is another process). */
  readonly wait: ThreadCpu;
  /** The machine's 1-minute load average before and after the run. */
  readonly load: readonly [number, number];
}

/** Runs `node args` to the end; resolves with its stdout, rejects with its stderr on a failure. */
function runNode(args: readonly string[]): Promise<string> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`node ${args.join(' ')} exited ${code}:\n${stderr}`)),
    );
  });
}

async function runOffline(): Promise<RunResult> {
  const out = await runNode([
    OFFLINE,
    ...['--num-prompts', `${numPrompts}`, '--input-len', `${inputLen}`, '--output-len', `${outputLen}`],
    ...['--max-num-seqs', `${concurrency}`, ...modelArgs],
  ]);
  const r = JSON.parse(out.trim().split('\n').pop()!) as {
    wallS: number;
    numRequests: number;
    cpu: Record<string, number>;
    wait: Record<string, number>;
  };
  return {
    wallS: r.wallS,
    numRequests: r.numRequests,
    cpu: new Map(Object.entries(r.cpu)),
    wait: new Map(Object.entries(r.wait)),
    load: [0, 0],
  };
}

/** Runs `run`, noting the load average before and after it. */
async function withLoad(run: () => Promise<RunResult>): Promise<RunResult> {
  const before = loadAverage1();
  const r = await run();
  return { ...r, load: [before, loadAverage1()] };
}

/** Starts `duet serve` on a free port; resolves with its URL once the model is loaded. */
async function startServe(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--disable-log-stats', ...modelArgs], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  return new Promise((resolve, reject) => {
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      log += d;
      const url = /serving model .* at (http:\/\/\S+)\n/.exec(log);
      if (url) resolve({ child, url: url[1]! });
    });
    child.once('exit', (code) => reject(new Error(`duet serve exited (${code}) before serving:\n${log}`)));
  });
}

/** CPU seconds of a whole live process (all its threads), 0 when it is gone. */
function processCpu(pid: number): number {
  let total = 0;
  for (const s of threadCpu(pid).values()) total += s;
  return total;
}

async function runServed(): Promise<RunResult> {
  const { child: server, url } = await startServe();
  try {
    // Warm-up, as the offline run's one warm-up request.
    const warm = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt: 'warm up', max_tokens: outputLen, ignore_eos: true }),
    });
    if (!warm.ok) throw new Error(`the warm-up request failed: ${warm.status} ${await warm.text()}`);
    const client = spawn(
      process.execPath,
      [
        ...[BIN, 'bench', 'serve', '--base-url', url, '--tokenizer', values.model ?? embeddedModelDir()],
        ...['--num-prompts', `${numPrompts}`, '--random-input-len', `${inputLen}`],
        ...['--random-output-len', `${outputLen}`, '--max-concurrency', `${concurrency}`],
        ...['--request-rate', 'inf', '--disable-tqdm'],
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    // The window is the client's own benchmark run: from its "Starting main benchmark run" line to its
    // result table, so that its start-up and dataset building are left out, as the offline run's are.
    let stdout = '';
    let stderr = '';
    type Sample = { server: ThreadCpu; serverWait: ThreadCpu; client: number };
    let before: Sample | null = null;
    let after: Sample | null = null;
    const sample = (): Sample => ({
      server: threadCpu(server.pid!),
      serverWait: threadRunqueueWait(server.pid!),
      client: processCpu(client.pid!),
    });
    client.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    client.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      if (before === null && stdout.includes('Starting main benchmark run')) before = sample();
      if (after === null && stdout.includes('Serving Benchmark Result')) after = sample();
    });
    const code = await new Promise<number | null>((resolve) => client.once('exit', resolve));
    const number = (label: string) => Number(new RegExp(`${label}\\s+([\\d.]+)`).exec(stdout)?.[1]);
    const completed = number('Successful requests:');
    const failed = number('Failed requests:');
    if (code !== 0 || before === null || after === null || failed !== 0 || !(completed > 0)) {
      throw new Error(`duet bench serve failed (exit ${code}, ${failed} failed):\n${stdout}\n${stderr}`);
    }
    const b = before as Sample;
    const a = after as Sample;
    const cpu = perRoleSince(b.server, a.server);
    cpu.set('client', a.client - b.client);
    const wait = perRoleSince(b.serverWait, a.serverWait);
    return { wallS: number('Benchmark duration \\(s\\):'), numRequests: completed, cpu, wait, load: [0, 0] };
  } finally {
    server.kill('SIGINT');
    await new Promise((resolve) => server.once('exit', resolve));
  }
}

/** The split's rows: label, then the role in the offline run and in the served run. */
const ROWS: readonly (readonly [string, string | null, string | null])[] = [
  ['engine thread', 'main', 'duet-engine'],
  ['kernel pool threads', 'duet-kernels', 'duet-kernels'],
  ['HTTP main thread', null, 'main'],
  ['tokenizer thread', null, 'duet-tokenizer'],
  ['runtime (GC, JIT, OMP)', 'runtime', 'runtime'],
  ['bench client (process)', null, 'client'],
];

function sum(cpu: ThreadCpu): number {
  let t = 0;
  for (const s of cpu.values()) t += s;
  return t;
}

/** CPU seconds per request of a run, all roles (the client's included). */
function cpuPerRequest(r: RunResult): number {
  return sum(r.cpu) / r.numRequests;
}

/** The two ratios of a round: wall-clock throughput, and CPU per request (offline over served). */
interface RoundRatios {
  readonly wall: number;
  readonly cpu: number;
}

function report(offline: RunResult, served: RunResult): RoundRatios {
  const cores = availableParallelism();
  const num = (v: number, d = 2) => v.toFixed(d).padStart(10);
  const cell = (r: RunResult, role: string | null) =>
    role === null ? '-'.padStart(10) : num(r.cpu.get(role) ?? 0);
  const offRate = offline.numRequests / offline.wallS;
  const srvRate = served.numRequests / served.wallS;
  const ratios = { wall: srvRate / offRate, cpu: cpuPerRequest(offline) / cpuPerRequest(served) };
  const load = (r: RunResult) => `${r.load[0].toFixed(1)}-${r.load[1].toFixed(1)}`.padStart(10);
  console.log(`${''.padEnd(26)}${'offline'.padStart(10)}${'served'.padStart(10)}`);
  console.log(`${'load average (1 min)'.padEnd(26)}${load(offline)}${load(served)}`);
  console.log(`${'wall time (s)'.padEnd(26)}${num(offline.wallS)}${num(served.wallS)}`);
  console.log(`${'requests/s'.padEnd(26)}${num(offRate)}${num(srvRate)}`);
  console.log(`CPU seconds during the run (${cores} cores: at most ${cores} CPU s per wall s)`);
  for (const [label, off, srv] of ROWS)
    console.log(`  ${label.padEnd(24)}${cell(offline, off)}${cell(served, srv)}`);
  console.log(`  ${'total'.padEnd(24)}${num(sum(offline.cpu))}${num(sum(served.cpu))}`);
  console.log('seconds runnable but waiting for a core (Linux schedstat; the client not read)');
  for (const [label, off, srv] of ROWS.filter(([, , srv]) => srv !== 'client')) {
    const waited = (r: RunResult, role: string | null) =>
      role === null ? '-'.padStart(10) : num(r.wait.get(role) ?? 0);
    console.log(`  ${label.padEnd(24)}${waited(offline, off)}${waited(served, srv)}`);
  }
  const perReq = (r: RunResult) => num(1000 * cpuPerRequest(r), 1);
  console.log(`${'CPU ms per request'.padEnd(26)}${perReq(offline)}${perReq(served)}`);
  const clientShare = (served.cpu.get('client') ?? 0) / sum(served.cpu);
  console.log(`bench client's share of the served run's CPU: ${(100 * clientShare).toFixed(0)}%`);
  console.log(
    `served / offline: wall ${ratios.wall.toFixed(2)}, CPU-based ${ratios.cpu.toFixed(2)} ` +
      '(offline CPU per request / served CPU per request, server and client)',
  );
  return ratios;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

const modelName = values.model ?? 'the embedded model';
console.log(
  `serve-overhead: ${numPrompts} requests of ${inputLen} prompt + ${outputLen} output tokens, ` +
    `concurrency ${concurrency} (offline: maxNumSeqs ${concurrency}), ${modelName}, ` +
    `${availableParallelism()} cores, ${rounds} round(s), load average ${loadAverage1()} at start`,
);
const all: RoundRatios[] = [];
for (let round = 1; round <= rounds; round++) {
  // Turns: offline first in odd rounds, served first in even ones.
  let offline: RunResult;
  let served: RunResult;
  if (round % 2 === 1) {
    offline = await withLoad(runOffline);
    served = await withLoad(runServed);
  } else {
    served = await withLoad(runServed);
    offline = await withLoad(runOffline);
  }
  console.log(`\nround ${round} of ${rounds} (${round % 2 === 1 ? 'offline first' : 'served first'})`);
  all.push(report(offline, served));
}
const fmt = (xs: readonly number[]) => xs.map((x) => x.toFixed(2)).join(', ');
console.log(`\nserved / offline over ${rounds} round(s), load average ${loadAverage1()} at the end:`);
console.log(
  `  wall-clock: ${fmt(all.map((r) => r.wall))}; median ${median(all.map((r) => r.wall)).toFixed(2)}`,
);
console.log(
  `  CPU-based:  ${fmt(all.map((r) => r.cpu))}; median ${median(all.map((r) => r.cpu)).toFixed(2)}`,
);
