// Dual-batch overlap gain benchmark (issue 6, acceptance 3). The seed's serving benchmark shape (random
// input, output 1, fixed concurrency, a request rate; prefill QPS and mean / P90 TTFT) scaled to this
// machine, run against `duet serve` on two testbed hosts (network namespaces) joined by a bandwidth-limited
// link, with DBO off and on side by side in one run. Every server is started with --trace-dir; the traces
// give, per step, the wall time and the compute and communication spans, from which it reports
//
//   T_off, T_on   mean step time without / with DBO (normalised to a step of --input-len tokens)
//   T_compute     the busiest rank's compute per step without DBO
//   T_comm        T_off − T_compute: communication (and waiting on the peer) not hidden without DBO
//   efficiency    (T_off − T_on) / (T_off − max(T_compute, T_comm))   (1 = all of it hidden)
//   against the CPU floor: the same with max(floor, T_compute, T_comm), the floor being all the servers'
//                 CPU per step over this machine's cores (both "hosts" share them)
//   planner       bench/dbo-plan.ts's T_off and T_on predicted from the first DBO-off run's trace and CPU
//
// The link rate is calibrated first (unless --bandwidth is given) so that communication is about
// --target-comm-share of a step without DBO. Then, where communication is (nearly) negligible — two ranks
// in one process over shared memory, and one rank (DBO's off-switch) — it checks that DBO is not slower.
// It writes a summary (text and JSON), the bench-serve results, the logs and traces, and a picture of one
// step with and without DBO (SVG, and PNG when ImageMagick's `convert` is installed) to --out.
//
// `--phase decode` measures decode steps instead (issue 14, item 5): for each count N of --decode-seqs, N
// random prompts of --input-len tokens sent at once, each generating --output-len tokens (EOS ignored), on
// the two testbed hosts, DBO off and on alternating. Figures come from the decode-only steps of the full
// batch (N tokens): decode step time, T_compute, T_comm, efficiency and the CPU floor per such step; output
// tok/s and TPOT from bench serve's results; the planner's prediction for the same decode step. The link is
// calibrated (unless --bandwidth is given) on the first count's decode steps.
//
//   npm run bench:dbo -- [--bandwidth auto|400mbit] [--target-comm-share 0.4] [--input-len 512]
//       [--num-prompts 16] [--max-concurrency 2] [--request-rate 12] [--rounds 2] [--moe-comm allgather|alltoall]
//       [--model DIR (default: assets/configs/deepseek-v3-toy, dummy weights)] [--load-format auto|dummy] [--hf-overrides JSON] [--out DIR] [--skip-local]
//       [--dbo-auto-off true|false]   (DBO's automatic off-switch in the DBO-on runs; default true)
//       [--quiet-wait SECONDS]        (how long each run waits for other work to calm down; default 120)
//   npm run bench:dbo -- --phase decode [--decode-seqs 32,64] [--output-len 64] [--input-len 32]
//       [--moe-comm alltoall] [--dbo-decode-token-threshold N] [--bandwidth ...] [--rounds 2] ...
//
// Needs root and iproute2 for the testbed (it says why when it cannot make one, and runs the local part).

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inHost, type TestbedHost, whyNoNetns, withTestbed } from '../scripts/testbed/testbed.js';
import { DBO_BENCH_USAGE, DboBenchArgError, type DboBenchArgs, parseDboBenchArgs } from './dbo-args.js';
import {
  type PlanModelSizes,
  type PlanStep,
  planSteps,
  predictSteps,
  TESTBED_BUSY_COMM_CPU,
  TESTBED_COMM_CPU,
  TESTBED_SPLIT_COST,
  testbedLink,
} from './dbo-plan.js';
import {
  combineRanks,
  fullDecodeSteps,
  medianStep,
  type RankStep,
  readTraceDir,
  type StepKind,
  type StepTiming,
  totalSteps,
} from './dbo-trace.js';
import { panelTitle, renderStepsSvg } from './dbo-trace-svg.js';

const DUET = fileURLToPath(new URL('../../bin/duet.js', import.meta.url));

let args: DboBenchArgs;
if (process.argv.includes('--help') || process.argv.includes('-h')) {
  console.log(DBO_BENCH_USAGE);
  process.exit(0);
}
try {
  args = parseDboBenchArgs(process.argv.slice(2));
} catch (e) {
  if (!(e instanceof DboBenchArgError)) throw e;
  console.error(`bench:dbo: ${e.message}\n${DBO_BENCH_USAGE}`);
  process.exit(2);
}
const { inputLen, numWarmups, rounds, maxForeignCores, moeComm, phase } = args;
const targetShare = args.targetCommShare;
const maxAttempts = args.attempts;
/** Decode phase: figures per decode step of the full batch, not per --input-len tokens. */
const decodePhase = phase === 'decode';
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
const outDir = resolve(args.out ?? join(os.tmpdir(), `duet-dbo-${stamp}`));
mkdirSync(outDir, { recursive: true });

const report: string[] = [];
function say(line = ''): void {
  console.log(line);
  report.push(line);
}

// ---------------------------------------------------------------------------------------------------------
// Processes

/** The cluster secret of this run's two-host servers, passed in the environment (kept out of `ps`). */
const CLUSTER_ENV = { ...process.env, DUET_CLUSTER_SECRET: randomBytes(16).toString('hex') };

/** Starts `cmd` with stdout and stderr going to `logPath`. */
function startLogged(cmd: readonly string[], logPath: string): ChildProcess {
  const fd = openSync(logPath, 'w');
  const child = spawn(cmd[0]!, cmd.slice(1), { stdio: ['ignore', fd, fd], env: CLUSTER_ENV });
  closeSync(fd);
  return child;
}

function exited(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((res) => {
    const timer = setTimeout(() => res(false), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      res(true);
    });
  });
}

/** Stops a child we started: SIGTERM, then SIGKILL after `graceMs`. */
async function stop(child: ChildProcess, graceMs = 20_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (!(await exited(child, graceMs))) {
    child.kill('SIGKILL');
    await exited(child, 5_000);
  }
}

async function waitForLine(child: ChildProcess, logPath: string, text: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const log = existsSync(logPath) ? readFileSync(logPath, 'utf8') : '';
    if (log.includes(text)) return;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`server exited before it was ready; see ${logPath}:\n${log.slice(-2000)}`);
    }
    if (Date.now() > deadline) throw new Error(`server not ready after ${timeoutMs} ms; see ${logPath}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => res(port));
    });
  });
}

/** Busy fraction of all CPUs over `ms` (from /proc/stat; NaN where there is none). */
async function cpuBusy(ms: number): Promise<number> {
  const read = () => {
    if (!existsSync('/proc/stat')) return null;
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3]! + (f[4] ?? 0);
    return { idle, total: f.reduce((a, b) => a + b, 0) };
  };
  const a = read();
  await new Promise((r) => setTimeout(r, ms));
  const b = read();
  if (!a || !b || b.total === a.total) return Number.NaN;
  return 1 - (b.idle - a.idle) / (b.total - a.total);
}

/** Busy and total jiffies of all CPUs, or null without /proc/stat. */
function cpuJiffies(): { busy: number; total: number } | null {
  if (!existsSync('/proc/stat')) return null;
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - (f[4] ?? 0), total };
}

/** Clock ticks per second of /proc's CPU times. */
const CLOCK_TICKS = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout?.trim());
  return r.status === 0 && n > 0 ? n : 100;
})();

/** CPU jiffies (user + system, all threads) used so far by process `pid`, or null once it is gone. */
function processJiffies(pid: number | undefined, path = `/proc/${pid}/stat`): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(path, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return null;
  }
}

/** CPU jiffies of each thread of process `pid` (empty once it is gone). */
function threadJiffies(pid: number | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (pid === undefined) return out;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const j = processJiffies(Number(tid), `/proc/${pid}/task/${tid}/stat`);
      if (j !== null) out.set(tid, j);
    }
  } catch {
    // gone
  }
  return out;
}

/**
 * CPU ms between two snapshots, summed over processes: their `computePerProcess` busiest threads (the
 * ranks' compute threads) and the rest.
 */
function threadCpuMs(
  before: readonly Map<string, number>[],
  after: readonly Map<string, number>[],
  computePerProcess: number,
): { compute: number; other: number } {
  let compute = 0;
  let other = 0;
  after.forEach((threads, i) => {
    const deltas = [...threads].map(([tid, j]) => j - (before[i]?.get(tid) ?? 0)).sort((a, b) => b - a);
    const top = deltas.slice(0, computePerProcess).reduce((a, b) => a + b, 0);
    compute += top;
    other += deltas.reduce((a, b) => a + b, 0) - top;
  });
  const ms = 1000 / CLOCK_TICKS;
  return { compute: compute * ms, other: other * ms };
}

/**
 * Measures, during a run, how much CPU other work on the machine took: the machine's busy time minus what
 * the run's own processes used (sampled until they exit), in cores.
 */
class ForeignLoad {
  private readonly start = cpuJiffies();
  private readonly last = new Map<number, number>();
  private readonly timer = setInterval(() => this.sample(), 100);

  constructor(private readonly pids: () => (number | undefined)[]) {}

  /** Reads the CPU used so far by the run's processes. */
  sample(): void {
    for (const pid of this.pids()) {
      const j = processJiffies(pid);
      if (pid !== undefined && j !== null) this.last.set(pid, j);
    }
  }

  /** Cores' worth of CPU used by other work since the start. */
  finish(): number {
    this.sample();
    clearInterval(this.timer);
    const end = cpuJiffies();
    if (!this.start || !end || end.total === this.start.total) return Number.NaN;
    const ours = [...this.last.values()].reduce((a, b) => a + b, 0);
    const busy = end.busy - this.start.busy - ours;
    return Math.max(0, (busy / (end.total - this.start.total)) * os.availableParallelism());
  }
}

/**
 * Waits until other work on the machine leaves it mostly idle (at most `maxBusy` busy over a second),
 * for up to `maxWaitMs`; returns the busy fraction seen last. Runs are short, so a quiet start matters.
 */
async function waitForQuiet(maxBusy: number, maxWaitMs: number): Promise<number> {
  const deadline = Date.now() + maxWaitMs;
  for (;;) {
    const busy = await cpuBusy(1000);
    if (!(busy > maxBusy) || Date.now() > deadline) return busy;
  }
}

// ---------------------------------------------------------------------------------------------------------
// One measured run: servers up, `duet bench serve` against them, servers down, traces read.

/** Where the ranks run. */
type Layout =
  | { readonly kind: 'testbed'; readonly hosts: readonly TestbedHost[] }
  | { readonly kind: 'local'; readonly tp: 1 | 2 };

interface RunSpec {
  readonly label: string;
  readonly layout: Layout;
  readonly dbo: boolean;
  readonly numPrompts: number;
  readonly maxConcurrency: number;
  readonly requestRate: string;
  readonly seed: number;
  /** Tokens each request generates (1 in the prefill phase). */
  readonly outputLen: number;
  /** Decode phase: the batch size measured (its decode-only steps of this many tokens); null: prefill. */
  readonly decodeSeqs: number | null;
}

interface RunResult {
  readonly spec: RunSpec;
  /** Measured steps (warm-up steps dropped), all ranks combined. */
  readonly steps: StepTiming[];
  /** Rank 0's measured steps, for the picture. */
  readonly rank0: RankStep[];
  /** The run's trace folder (rank-R.trace.json per rank). */
  readonly traceDir: string;
  readonly completed: number;
  readonly durationS: number;
  /** Seconds. */
  readonly ttfts: number[];
  /** Per completed request: seconds per output token after the first ((latency − TTFT) / (output − 1)). */
  readonly tpots: number[];
  readonly outputTokens: number;
  /** Cores' worth of CPU that other work on the machine used during the run. */
  readonly foreignCores: number;
  /** Busy fraction of the machine just before the run (after waiting for it to be quiet). */
  readonly busyBefore: number;
  /**
   * CPU milliseconds per step of `inputLen` tokens (warm-up steps included) of the servers' compute
   * threads (the busiest thread of each server process), and of all their other threads (communication
   * threads, the HTTP server, garbage collection), while the client ran.
   */
  readonly computeThreadsCpuMs: number;
  readonly otherThreadsCpuMs: number;
}

/**
 * The default model: DeepSeek-V3's shape cut small (assets/configs/deepseek-v3-toy, dummy weights), the
 * shape DBO's figures in docs/dbo.md were measured on. The embedded model's 512 positions cannot take
 * the default 512-token prompt plus its output token.
 */
const DEFAULT_MODEL = fileURLToPath(new URL('../../assets/configs/deepseek-v3-toy/', import.meta.url));
const modelName = args.model ?? 'assets/configs/deepseek-v3-toy (dummy weights)';

function modelFlags(): string[] {
  const f: string[] = ['--model', args.model ?? DEFAULT_MODEL];
  const loadFormat = args.loadFormat ?? (args.model ? undefined : 'dummy');
  if (loadFormat) f.push('--load-format', loadFormat);
  if (args.hfOverrides) f.push('--hf-overrides', args.hfOverrides);
  return f;
}

function engineFlags(spec: RunSpec, traceDir: string, numThreads: number): string[] {
  const f = [
    ...modelFlags(),
    '--num-threads',
    String(numThreads),
    '--kv-cache-memory',
    '256MiB',
    // Warm-up requests repeat the first prompt: no prefix cache, so that it is computed like the others.
    '--no-enable-prefix-caching',
    '--trace-dir',
    traceDir,
  ];
  if (spec.dbo) f.push('--enable-dbo', '--dbo-auto-off', args.dboAutoOff);
  if (spec.dbo && args.dboDecodeTokenThreshold !== null) {
    f.push('--dbo-decode-token-threshold', String(args.dboDecodeTokenThreshold));
  }
  const tp = spec.layout.kind === 'testbed' ? spec.layout.hosts.length : spec.layout.tp;
  if (tp > 1 && moeComm === 'alltoall') {
    f.push('--enable-expert-parallel', '--additional-config', JSON.stringify({ moe_comm: 'alltoall' }));
  }
  return f;
}

async function runOnce(spec: RunSpec): Promise<RunResult> {
  const dir = join(outDir, 'runs', spec.label);
  mkdirSync(dir, { recursive: true });
  const traceDir = join(dir, 'trace');
  const servers: ChildProcess[] = [];
  let baseUrl: string;
  let clientPrefix: string[] = [];
  let numRanks: number;
  const headLog = join(dir, 'head.log');
  const quietBusy = await waitForQuiet(0.3, args.quietWait * 1000);
  const foreign = new ForeignLoad(() => servers.map((p) => p.pid));
  try {
    if (spec.layout.kind === 'testbed') {
      const hosts = spec.layout.hosts;
      numRanks = hosts.length;
      const head = hosts[0]!;
      const dist = [
        '-tp',
        String(hosts.length),
        '--nnodes',
        String(hosts.length),
        '--master-addr',
        head.address,
        '--master-port',
        '29500',
      ];
      servers.push(
        startLogged(
          [
            ...inHost(head),
            process.execPath,
            DUET,
            'serve',
            ...dist,
            '--node-rank',
            '0',
            '--host',
            head.address,
            '--port',
            '8000',
            ...engineFlags(spec, traceDir, 1),
          ],
          headLog,
        ),
      );
      for (const h of hosts.slice(1)) {
        servers.push(
          startLogged(
            [
              ...inHost(h),
              process.execPath,
              DUET,
              'serve',
              ...dist,
              '--node-rank',
              String(h.index),
              '--headless',
              ...engineFlags(spec, traceDir, 1),
            ],
            join(dir, `node${h.index}.log`),
          ),
        );
      }
      baseUrl = `http://${head.address}:8000`;
      clientPrefix = inHost(head);
    } else {
      numRanks = spec.layout.tp;
      const port = await freePort();
      servers.push(
        startLogged(
          [
            process.execPath,
            DUET,
            'serve',
            '-tp',
            String(spec.layout.tp),
            '--host',
            '127.0.0.1',
            '--port',
            String(port),
            ...engineFlags(spec, traceDir, spec.layout.tp),
          ],
          headLog,
        ),
      );
      baseUrl = `http://127.0.0.1:${port}`;
    }
    await waitForLine(servers[0]!, headLog, 'serving model', 180_000);
    const threadsAtReady = servers.map((p) => threadJiffies(p.pid));

    const resultFile = 'bench.json';
    const benchLog = join(dir, 'bench.log');
    const client = startLogged(
      [
        ...clientPrefix,
        process.execPath,
        DUET,
        'bench',
        'serve',
        '--base-url',
        baseUrl,
        '--dataset-name',
        'random',
        '--random-input-len',
        String(inputLen),
        '--random-output-len',
        String(spec.outputLen),
        ...(spec.decodeSeqs !== null ? ['--ignore-eos'] : []),
        '--num-prompts',
        String(spec.numPrompts),
        '--max-concurrency',
        String(spec.maxConcurrency),
        '--request-rate',
        spec.requestRate,
        '--metric-percentiles',
        '90',
        '--num-warmups',
        String(numWarmups),
        '--seed',
        String(spec.seed),
        '--disable-tqdm',
        '--save-result',
        '--result-dir',
        dir,
        '--result-filename',
        resultFile,
      ],
      benchLog,
    );
    servers.push(client);
    if (!(await exited(client, 600_000))) throw new Error(`duet bench serve did not finish; see ${benchLog}`);
    if (client.exitCode !== 0) {
      throw new Error(`duet bench serve failed (${client.exitCode}); see ${benchLog}`);
    }
    const cpu = threadCpuMs(
      threadsAtReady,
      servers.slice(0, -1).map((p) => threadJiffies(p.pid)),
      spec.layout.kind === 'testbed' ? 1 : spec.layout.tp,
    );
    const result = JSON.parse(readFileSync(join(dir, resultFile), 'utf8')) as {
      completed: number;
      duration: number;
      ttfts: number[];
      latencies: number[];
      output_lens: number[];
      total_output_tokens: number;
      errors: string[];
    };
    // The servers write their traces when they stop.
    await stop(servers[0]!);
    for (const s of servers.slice(1, -1)) {
      if (!(await exited(s, 20_000))) await stop(s);
    }
    const all = readTraceDir(traceDir, numRanks);
    const ranks = all.map((r) => r.slice(numWarmups));
    const measured = measuredSteps(spec, combineRanks(ranks));
    const rank0 = measuredSteps(spec, ranks[0]!);
    const ok = (i: number) => !result.errors[i];
    return {
      spec,
      steps: measured,
      rank0,
      traceDir,
      completed: result.completed,
      durationS: result.duration,
      ttfts: result.ttfts.filter((_, i) => ok(i)),
      tpots: result.latencies
        .map((lat, i) =>
          (result.output_lens[i] ?? 0) > 1
            ? (lat - result.ttfts[i]!) / (result.output_lens[i]! - 1)
            : Number.NaN,
        )
        .filter((x, i) => ok(i) && Number.isFinite(x)),
      outputTokens: result.total_output_tokens,
      foreignCores: foreign.finish(),
      busyBefore: quietBusy,
      ...cpuPerStep(spec, cpu, all[0]!, rank0),
    };
  } finally {
    foreign.finish();
    for (const s of servers) await stop(s, 5_000);
  }
}

/**
 * The steps a run's figures are taken from: in the prefill phase all of them (after the warm-ups); in the
 * decode phase the decode-only steps of the full batch (dbo-trace.ts's fullDecodeSteps).
 */
function measuredSteps<T extends { readonly kind: StepKind | null; readonly tokens: number }>(
  spec: RunSpec,
  steps: readonly T[],
): T[] {
  return spec.decodeSeqs === null ? [...steps] : fullDecodeSteps(steps, spec.decodeSeqs);
}

/**
 * The servers' CPU (compute threads, other threads) during the client's run, per measured step. Prefill:
 * per step of --input-len tokens, by the tokens of all steps. Decode: the share of the CPU that the
 * measured decode steps' compute took of all steps' compute (rank 0's trace: prefill steps and smaller
 * decode steps are in the CPU total too), per measured step.
 */
function cpuPerStep(
  spec: RunSpec,
  cpu: { compute: number; other: number },
  allRank0: readonly RankStep[],
  measuredRank0: readonly RankStep[],
): { computeThreadsCpuMs: number; otherThreadsCpuMs: number } {
  let scale: number;
  if (spec.decodeSeqs === null) {
    scale = inputLen / allRank0.reduce((t, st) => t + st.tokens, 0);
  } else {
    const sum = (xs: readonly RankStep[]) => xs.reduce((t, st) => t + st.computeMs, 0);
    scale = sum(measuredRank0) / sum(allRank0) / measuredRank0.length;
  }
  return { computeThreadsCpuMs: cpu.compute * scale, otherThreadsCpuMs: cpu.other * scale };
}

/**
 * Runs `spec`, again (up to --attempts times) while other work on the machine took more than
 * --max-foreign-cores during the run; keeps the quietest attempt.
 */
async function runQuiet(spec: RunSpec): Promise<RunResult> {
  let best: RunResult | null = null;
  for (let attempt = 1; attempt <= maxAttempts; attempt++) {
    const res = await runOnce(attempt === 1 ? spec : { ...spec, label: `${spec.label}-retry${attempt - 1}` });
    if (!best || !(res.foreignCores >= best.foreignCores)) best = { ...res, spec };
    if (res.foreignCores <= maxForeignCores) break;
    console.log(
      `    ${spec.label}: other work took ${f2(res.foreignCores)} cores during the run; ` +
        (attempt < maxAttempts ? 'running it again' : 'keeping the quietest attempt'),
    );
  }
  return best!;
}

// ---------------------------------------------------------------------------------------------------------
// Figures

/** A condition's figures over all its runs. */
interface Figures {
  /** Mean step time (ms): prefill normalised to a step of `inputLen` tokens; decode per step of the full batch. */
  readonly stepMs: number;
  readonly computeMs: number;
  readonly commSpanMs: number;
  readonly numSteps: number;
  readonly numSplit: number;
  readonly qps: number;
  readonly meanTtftMs: number;
  readonly p90TtftMs: number;
  /** Output tokens per second over the runs (bench serve's output throughput, pooled). */
  readonly outputTokPerS: number;
  /** Mean and P90 over all requests of the time per output token after the first (ms). */
  readonly meanTpotMs: number;
  readonly p90TpotMs: number;
  /** Mean over the runs of the cores other work on the machine used. */
  readonly foreignCores: number;
  /** CPU per step of the compute threads and of the servers' other threads (ms, summed over hosts). */
  readonly computeThreadsCpuMs: number;
  readonly otherThreadsCpuMs: number;
  /** Ranks (compute threads) of the runs. */
  readonly numRanks: number;
}

/** vLLM's percentile (linear interpolation between closest ranks, as numpy). */
function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const at = (p / 100) * (s.length - 1);
  const lo = Math.floor(at);
  const hi = Math.min(lo + 1, s.length - 1);
  return s[lo]! + (s[hi]! - s[lo]!) * (at - lo);
}

function figures(runs: readonly RunResult[]): Figures {
  const t = totalSteps(runs.flatMap((r) => r.steps));
  const per = decodePhase
    ? (ms: number) => (t.numSteps > 0 ? ms / t.numSteps : Number.NaN)
    : (ms: number) => (t.tokens > 0 ? (ms / t.tokens) * inputLen : Number.NaN);
  const ttfts = runs.flatMap((r) => r.ttfts).map((s) => s * 1000);
  const tpots = runs.flatMap((r) => r.tpots).map((s) => s * 1000);
  const durationS = runs.reduce((a, r) => a + r.durationS, 0);
  return {
    stepMs: per(t.wallMs),
    computeMs: per(t.computeMs),
    commSpanMs: per(t.commSpanMs),
    numSteps: t.numSteps,
    numSplit: t.numSplit,
    qps: runs.reduce((a, r) => a + r.completed, 0) / durationS,
    meanTtftMs: ttfts.reduce((a, b) => a + b, 0) / Math.max(1, ttfts.length),
    p90TtftMs: percentile(ttfts, 90),
    outputTokPerS: runs.reduce((a, r) => a + r.outputTokens, 0) / durationS,
    meanTpotMs: tpots.length > 0 ? tpots.reduce((a, b) => a + b, 0) / tpots.length : Number.NaN,
    p90TpotMs: percentile(tpots, 90),
    foreignCores: runs.reduce((a, r) => a + r.foreignCores, 0) / runs.length,
    computeThreadsCpuMs: runs.reduce((a, r) => a + r.computeThreadsCpuMs, 0) / runs.length,
    otherThreadsCpuMs: runs.reduce((a, r) => a + r.otherThreadsCpuMs, 0) / runs.length,
    numRanks:
      runs[0]!.spec.layout.kind === 'testbed' ? runs[0]!.spec.layout.hosts.length : runs[0]!.spec.layout.tp,
  };
}

interface Comparison {
  readonly off: Figures;
  readonly on: Figures;
  /** T_comm = T_off − T_compute(off). */
  readonly commMs: number;
  readonly commShare: number;
  /** (T_off − T_on) / (T_off − max(T_compute, T_comm)); NaN when there is (almost) nothing to hide. */
  readonly efficiency: number;
  /**
   * This machine's floor for a step with DBO: the CPU per step of the DBO run's server threads spread over
   * all cores (an upper estimate: part of the non-compute threads' work falls between steps), and at least
   * one rank's compute thread's CPU. On one small
   * machine hosting both "hosts", the communication threads compete with the compute threads for cores.
   */
  readonly cpuFloorMs: number;
  /** T_on / T_off − 1 (negative: DBO is faster). */
  readonly slowdown: number;
  /** (T_off − T_on) / (T_off − max(floor, T_compute, T_comm)): the share hidden of what this machine allows. */
  readonly floorEfficiency: number;
}

function compare(off: Figures, on: Figures): Comparison {
  const commMs = Math.max(0, off.stepMs - off.computeMs);
  const ideal = off.stepMs - Math.max(off.computeMs, commMs);
  // All the CPU spread over every core, and no faster than one rank's own compute thread.
  const cpuFloorMs = Math.max(
    (on.computeThreadsCpuMs + on.otherThreadsCpuMs) / os.availableParallelism(),
    on.computeThreadsCpuMs / on.numRanks,
  );
  const floorIdeal = off.stepMs - Math.max(cpuFloorMs, off.computeMs, commMs);
  return {
    off,
    on,
    commMs,
    commShare: commMs / off.stepMs,
    // Below 5% of a step the ratio is noise over noise.
    efficiency: ideal > 0.05 * off.stepMs ? (off.stepMs - on.stepMs) / ideal : Number.NaN,
    cpuFloorMs,
    slowdown: on.stepMs / off.stepMs - 1,
    floorEfficiency: floorIdeal > 0.05 * off.stepMs ? (off.stepMs - on.stepMs) / floorIdeal : Number.NaN,
  };
}

const f1 = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const pct = (x: number) => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : 'n/a');
/** The relative change from `a` to `b`. */
const change = (a: number, b: number) => pct(b / a - 1);

type Row = (name: string, a: string, b: string, extra?: string) => void;

function printComparison(title: string, c: Evaluation): void {
  const row: Row = (name, a, b, extra = '') =>
    say(`  ${name.padEnd(34)}${a.padStart(12)}${b.padStart(12)}${extra ? `   ${extra}` : ''}`);
  say(title);
  row('', 'DBO off', 'DBO on');
  if (decodePhase) printDecodeRows(c, row);
  else printPrefillRows(c, row);
  row('compute per step (ms)', f1(c.off.computeMs), f1(c.on.computeMs), 'busiest rank, both micro-batches');
  row('comm spans per step (ms)', f1(c.off.commSpanMs), f1(c.on.commSpanMs), 'issue to done, mean of ranks');
  row(
    'steps measured (split)',
    `${c.off.numSteps} (${c.off.numSplit})`,
    `${c.on.numSteps} (${c.on.numSplit})`,
  );
  row(
    'CPU per step: compute threads (ms)',
    f1(c.off.computeThreadsCpuMs),
    f1(c.on.computeThreadsCpuMs),
    'all ranks',
  );
  row(
    'CPU per step: other server threads (ms)',
    f1(c.off.otherThreadsCpuMs),
    f1(c.on.otherThreadsCpuMs),
    'communication, HTTP, GC; all ranks',
  );
  row('other work on the machine (cores)', f2(c.off.foreignCores), f2(c.on.foreignCores), 'noise');
  say(
    `  T_compute ${f1(c.off.computeMs)} ms, T_comm ${f1(c.commMs)} ms (${pct(c.commShare)} of a step without DBO), ` +
      `T_off ${f1(c.off.stepMs)} ms, T_on ${f1(c.on.stepMs)} ms`,
  );
  say(
    `  overlap efficiency (T_off − T_on) / (T_off − max(T_compute, T_comm)) = ${f2(c.efficiency)}` +
      `   (DBO ${c.slowdown <= 0 ? `${pct(-c.slowdown)} faster` : `${pct(c.slowdown)} slower`} per step)`,
  );
  say(
    `  per round: ${c.rounds
      .map(
        (r, i) =>
          `r${i} efficiency ${f2(r.efficiency)}, step ${r.slowdown <= 0 ? '' : '+'}${pct(r.slowdown)}` +
          (r.disturbed ? ' (disturbed)' : ''),
      )
      .join('; ')}`,
  );
  if (c.excluded.length > 0) say(`  left out of the pooled figures: ${c.excluded.join(', ')}`);
  say(
    `  CPU floor of this machine with DBO: max((compute + other threads' CPU) / ${os.availableParallelism()} cores, ` +
      'compute CPU per rank) ' +
      `≈ ${f1(c.cpuFloorMs)} ms per step (T_on ${f1(c.on.stepMs)} ms)`,
  );
  say(
    `  overlap efficiency against the CPU floor (T_off − T_on) / (T_off − max(floor, T_compute, T_comm)) = ` +
      `${f2(c.floorEfficiency)}`,
  );
  say();
}

/** The prefill phase's client-side and step-time rows: QPS, TTFT, step time per --input-len tokens. */
function printPrefillRows(c: Evaluation, row: Row): void {
  row('prefill QPS (req/s)', f2(c.off.qps), f2(c.on.qps), change(c.off.qps, c.on.qps));
  row('mean TTFT (ms)', f1(c.off.meanTtftMs), f1(c.on.meanTtftMs), change(c.off.meanTtftMs, c.on.meanTtftMs));
  row('P90 TTFT (ms)', f1(c.off.p90TtftMs), f1(c.on.p90TtftMs), change(c.off.p90TtftMs, c.on.p90TtftMs));
  row(`step time, per ${inputLen} tokens (ms)`, f1(c.off.stepMs), f1(c.on.stepMs), pct(c.slowdown));
}

/** The decode phase's client-side and step-time rows: output tok/s, TPOT, decode step time. */
function printDecodeRows(c: Evaluation, row: Row): void {
  row(
    'output tok/s',
    f1(c.off.outputTokPerS),
    f1(c.on.outputTokPerS),
    change(c.off.outputTokPerS, c.on.outputTokPerS),
  );
  row('mean TPOT (ms)', f1(c.off.meanTpotMs), f1(c.on.meanTpotMs), change(c.off.meanTpotMs, c.on.meanTpotMs));
  row('P90 TPOT (ms)', f1(c.off.p90TpotMs), f1(c.on.p90TpotMs), change(c.off.p90TpotMs, c.on.p90TpotMs));
  row(
    'decode step time (ms)',
    f1(c.off.stepMs),
    f1(c.on.stepMs),
    `${pct(c.slowdown)} (full batch, from the traces)`,
  );
}

/** The model's hidden and vocabulary sizes and experts per token (its config.json, with --hf-overrides). */
function modelSizes(): PlanModelSizes {
  const config = JSON.parse(readFileSync(join(args.model ?? DEFAULT_MODEL, 'config.json'), 'utf8'));
  const overrides = args.hfOverrides ? JSON.parse(args.hfOverrides) : {};
  const merged = { ...config, ...overrides };
  return {
    hidden: Number(merged.hidden_size),
    vocab: Number(merged.vocab_size),
    topK: Number(merged.num_experts_per_tok ?? 1),
  };
}

/**
 * The planner (bench/dbo-plan.ts) against this comparison: its prediction of T_off and T_on from the DBO-off
 * runs' traces — every measured step, each rank's own stage times (planSteps / predictSteps: a collective
 * waits for the later rank) — the link as the testbed shapes it, and this machine's CPU floor (the
 * ranks' compute and their communication threads' CPU over its cores), next to the measured figures. The prediction is for every step
 * split, so T_on is compared with the DBO-on runs' split steps only (the off-switch may leave some
 * unsplit). The split cost (the half-size micro-batches' extra compute) is TESTBED_SPLIT_COST for
 * prefill (the compute threads' CPU measured with and without DBO); for decode steps, whose matmuls read every weight once per micro-batch, it is the one measured
 * here (compute per step on / off − 1), which the line says.
 */
function printPlannerCheck(
  c: Evaluation,
  offRuns: readonly RunResult[],
  onRuns: readonly RunResult[],
  bwMbit: number,
): Record<string, number> | null {
  let steps: PlanStep[];
  try {
    steps = offRuns.flatMap((run) =>
      planSteps(
        readTraceDir(run.traceDir, c.off.numRanks).map((r) => r.slice(numWarmups)),
        modelSizes(),
        phase,
        run.spec.decodeSeqs ?? undefined,
      ),
    );
    if (steps.length === 0) throw new Error('the DBO-off traces have no step to play');
  } catch (e) {
    say(`  planner: no prediction (${(e as Error).message})`);
    return null;
  }
  const link = testbedLink(bwMbit * 1e6, c.off.numRanks);
  // This machine's cores, shared by both hosts: the ranks' compute and the communication threads' CPU
  // per collective (measured by collectives.js, TESTBED_COMM_CPU).
  const cpu = {
    cores: os.availableParallelism(),
    otherCpuMs: 0,
    ...TESTBED_COMM_CPU,
    busyComm: TESTBED_BUSY_COMM_CPU,
  };
  const splitCost = decodePhase ? Math.max(0, c.on.computeMs / c.off.computeMs - 1) : TESTBED_SPLIT_COST;
  const perTokens = decodePhase ? null : inputLen;
  const best = (['alternate', 'staggered'] as const)
    .map((order) => ({ order, p: predictSteps(steps, link, order, splitCost, perTokens, cpu) }))
    .reduce((a, b) => (b.p.onMs < a.p.onMs ? b : a));
  const { offMs, onMs } = best.p;
  // T_on measured over the split steps only, normalised as the figures are.
  const split = onRuns.flatMap((r) => r.steps).filter((st) => st.split);
  const t = totalSteps(split);
  const onSplitMs = decodePhase ? t.wallMs / t.numSteps : (t.wallMs / t.tokens) * inputLen;
  say(
    `  planner (dbo-plan, ${steps.length} steps of the off runs' traces, both ranks, ${bwMbit} mbit/s, ` +
      `${f2(link.latencyMs)} ms a message (${f2(link.busyLatencyMs)} back to back under DBO), ${Math.round(link.burstBytes / 1024)} KiB token bucket, ` +
      `CPU floor over ${cpu.cores} cores, order ${best.order}, ` +
      `split cost ${f2(splitCost)}${decodePhase ? ' measured' : ''}): T_off ${f1(offMs)} ms (measured ${f1(c.off.stepMs)}, ${pct(offMs / c.off.stepMs - 1)}), ` +
      `T_on ${f1(onMs)} ms (measured over the ${t.numSteps} split steps ${f1(onSplitMs)}, ${pct(onMs / onSplitMs - 1)}); ` +
      `comm ${f1(best.p.commMs)} ms (measured T_comm ${f1(c.commMs)}), DBO timeline ${f1(best.p.timelineOnMs)} ms, ` +
      `floor with DBO ${f1(best.p.floorOnMs)} ms`,
  );
  say();
  return {
    offMs,
    onMs,
    onSplitMeasuredMs: onSplitMs,
    numSplitSteps: t.numSteps,
    commMs: best.p.commMs,
    timelineOnMs: best.p.timelineOnMs,
    floorOnMs: best.p.floorOnMs,
    splitCost,
  };
}

/** Runs DBO off and on `rounds` times, alternating the order (off-on, on-off, ...) to cancel drift. */
async function sideBySide(
  name: string,
  layout: Layout,
  shape: Shape,
  numRounds: number,
): Promise<{ off: RunResult[]; on: RunResult[] }> {
  const off: RunResult[] = [];
  const on: RunResult[] = [];
  for (let r = 0; r < numRounds; r++) {
    const order = r % 2 === 0 ? [false, true] : [true, false];
    for (const dbo of order) {
      const label = `${name}-r${r}-${dbo ? 'on' : 'off'}`;
      const res = await runQuiet({ label, layout, dbo, ...shape, seed: r });
      const fig = figures([res]);
      console.log(
        `    ${label}: ${res.completed} requests in ${res.durationS.toFixed(1)} s, step ${f1(fig.stepMs)} ms, ` +
          `compute ${f1(fig.computeMs)} ms, ${fig.numSplit}/${fig.numSteps} steps split; ` +
          `other work ${f2(res.foreignCores)} cores (machine ${pct(res.busyBefore)} busy before)`,
      );
      (dbo ? on : off).push(res);
    }
  }
  return { off, on };
}

/** A side-by-side comparison pooled over its quiet runs, with each round's own figures. */
interface Evaluation extends Comparison {
  /** Runs left out of the pooled figures: other work took more than --max-foreign-cores during them. */
  readonly excluded: readonly string[];
  /** Per round: efficiency and step-time change, and whether one of its two runs was disturbed. */
  readonly rounds: readonly { efficiency: number; slowdown: number; disturbed: boolean }[];
}

/** Pools the quiet runs of each setting (all of them when none was quiet). */
const quiet = (r: RunResult) => r.foreignCores <= maxForeignCores;
/** The runs of one setting that enter the pooled figures: the undisturbed ones, or all if none was. */
const pool = (rs: RunResult[]) => (rs.some(quiet) ? rs.filter(quiet) : rs);

function evaluate(runs: { off: RunResult[]; on: RunResult[] }): Evaluation {
  const off = pool(runs.off);
  const on = pool(runs.on);
  const excluded = [...runs.off, ...runs.on]
    .filter((r) => !off.includes(r) && !on.includes(r))
    .map((r) => `${r.spec.label} (other work ${f2(r.foreignCores)} cores)`);
  const rounds = runs.off.map((o, i) => {
    const c = compare(figures([o]), figures([runs.on[i]!]));
    return { efficiency: c.efficiency, slowdown: c.slowdown, disturbed: !quiet(o) || !quiet(runs.on[i]!) };
  });
  return { ...compare(figures(off), figures(on)), excluded, rounds };
}

// ---------------------------------------------------------------------------------------------------------
// Link calibration: comm(bw) ≈ c0 + k / bw, from an unlimited probe and probes at finite rates.

function parseMbit(rate: string): number {
  const m = /^(\d+(?:\.\d+)?)(k|m|g)bit$/i.exec(rate);
  if (!m) throw new RangeError(`--bandwidth must be auto or a tc rate such as 400mbit, got ${rate}`);
  const n = Number(m[1]);
  return m[2]!.toLowerCase() === 'k' ? n / 1000 : m[2]!.toLowerCase() === 'g' ? n * 1000 : n;
}

/**
 * A probe's shape: 6 prompts one at a time (prefill); the first --decode-seqs batch generating up to 16
 * tokens (decode: its decode steps are what the link is calibrated for).
 */
function probeShape(): Shape {
  if (!decodePhase) {
    return { numPrompts: 6, maxConcurrency: 1, requestRate: 'inf', outputLen: 1, decodeSeqs: null };
  }
  return decodeShape(args.decodeSeqs[0]!, Math.min(args.outputLen, 16));
}

async function probe(hostsBw: number | null, label: string): Promise<Comparison['off'] & { commMs: number }> {
  const run = async (hosts: TestbedHost[]) =>
    runQuiet({ label, layout: { kind: 'testbed', hosts }, dbo: false, ...probeShape(), seed: 100 });
  const res = await withTestbed(
    { hosts: 2, ...(hostsBw !== null ? { bandwidth: `${Math.round(hostsBw)}mbit` } : {}) },
    run,
  );
  const fig = figures([res]);
  return { ...fig, commMs: Math.max(0, fig.stepMs - fig.computeMs) };
}

async function calibrate(): Promise<number> {
  say(`calibrating the link so that communication is ~${pct(targetShare)} of a step without DBO`);
  const p0 = await probe(null, 'probe-unlimited');
  say(`  no rate limit: step ${f1(p0.stepMs)} ms, compute ${f1(p0.computeMs)} ms, comm ${f1(p0.commMs)} ms`);
  const want = (targetShare / (1 - targetShare)) * p0.computeMs;
  let points: { bw: number; comm: number }[] = [];
  let bw = 200;
  for (let i = 0; i < 4; i++) {
    const p = await probe(bw, `probe-${Math.round(bw)}mbit`);
    const share = p.commMs / p.stepMs;
    say(
      `  ${Math.round(bw)} mbit/s: step ${f1(p.stepMs)} ms, compute ${f1(p.computeMs)} ms, comm ${f1(p.commMs)} ms (${pct(share)})`,
    );
    if (Math.abs(share - targetShare) <= 0.05) return Math.round(bw);
    points.push({ bw, comm: p.commMs });
    // Fit comm = c + k / bw through the last two points (the unlimited probe stands in for c at first).
    let c = p0.commMs;
    let k = (p.commMs - c) * bw;
    if (points.length >= 2) {
      const [a, b] = points.slice(-2) as [{ bw: number; comm: number }, { bw: number; comm: number }];
      const dk = 1 / a.bw - 1 / b.bw;
      if (Math.abs(dk) > 1e-9) {
        k = (a.comm - b.comm) / dk;
        c = a.comm - k / a.bw;
      }
    }
    const next = k > 0 && want > c ? k / (want - c) : bw * 2;
    bw = Math.min(Math.max(next, bw / 4), bw * 4, 10_000);
    points = points.slice(-2);
  }
  say(`  calibration did not converge; using ${Math.round(bw)} mbit/s`);
  return Math.round(bw);
}

// ---------------------------------------------------------------------------------------------------------

function loadAverage(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

/** What one run sends: prompts, concurrency, rate, output length; `decodeSeqs` in the decode phase. */
type Shape = Pick<RunSpec, 'numPrompts' | 'maxConcurrency' | 'requestRate' | 'outputLen' | 'decodeSeqs'>;

/** The decode phase's shape for a batch of `n` sequences: all sent at once, each generating `outputLen`. */
function decodeShape(n: number, outputLen = args.outputLen): Shape {
  return { numPrompts: n, maxConcurrency: n, requestRate: 'inf', outputLen, decodeSeqs: n };
}

const shape: Shape = {
  numPrompts: args.numPrompts,
  maxConcurrency: args.maxConcurrency,
  requestRate: args.requestRate,
  outputLen: 1,
  decodeSeqs: null,
};
const summary: Record<string, unknown> = {
  date: new Date().toISOString(),
  machine: `${os.cpus()[0]?.model ?? 'cpu'} (${os.availableParallelism()} cores)`,
  phase,
  shape: decodePhase
    ? { inputLen, outputLen: args.outputLen, decodeSeqs: args.decodeSeqs, numWarmups, rounds, moeComm }
    : { inputLen, ...shape, numWarmups, rounds, moeComm },
  dboAutoOff: args.dboAutoOff,
  model: modelName,
  loadAverageAtStart: loadAverage(),
};
say(`DBO benchmark — results in ${outDir}`);
say(
  (decodePhase
    ? `decode: random input ${inputLen}, output ${args.outputLen} (ignoring EOS), ${args.decodeSeqs.join(' and ')} ` +
      `sequences at once (one comparison each), ${numWarmups} warm-up requests; ${rounds} round(s) of off/on; `
    : `shape: random input ${inputLen}, output 1, ${shape.numPrompts} prompts, concurrency ${shape.maxConcurrency}, ` +
      `rate ${shape.requestRate} req/s, ${numWarmups} warm-up requests; ${rounds} round(s) of off/on; `) +
    `moe_comm ${moeComm}; model ${modelName}; one compute thread per host; ` +
    `DBO on runs with --dbo-auto-off ${args.dboAutoOff}`,
);
say(`machine: ${summary.machine}; load average ${loadAverage()}`);
say();

/**
 * The decode phase: for each --decode-seqs count, DBO off and on side by side on one testbed (its link at
 * `bw`), each comparison printed with the planner's prediction for its decode step.
 */
async function decodeComparisons(bw: number): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  await withTestbed({ hosts: 2, bandwidth: `${bw}mbit` }, async (hosts) => {
    for (const n of args.decodeSeqs) {
      const runs = await sideBySide(`decode${n}`, { kind: 'testbed', hosts }, decodeShape(n), rounds);
      const c = evaluate(runs);
      printComparison(`== two hosts, ${bw} mbit/s link, ${n} sequences decoding ==`, c);
      const planner = printPlannerCheck(c, pool(runs.off), pool(runs.on), bw);
      out.push({ decodeSeqs: n, ...c, planner });
    }
  });
  return out;
}

const why = whyNoNetns();
let pictureSource: { off: RankStep; on: RankStep; caption: string[] } | null = null;
if (why !== undefined) {
  say(`testbed: not available here (${why}); skipping the two-host runs`);
  summary.testbed = { skipped: why };
} else {
  const bw = args.bandwidth === 'auto' ? await calibrate() : parseMbit(args.bandwidth);
  say();
  say(`two testbed hosts, -tp 2 --nnodes 2, link ${bw} mbit/s each way`);
  if (decodePhase) {
    summary.testbed = { bandwidthMbit: bw, decode: await decodeComparisons(bw) };
  } else {
    const main = await withTestbed({ hosts: 2, bandwidth: `${bw}mbit` }, (hosts) =>
      sideBySide('testbed', { kind: 'testbed', hosts }, shape, rounds),
    );
    const c = evaluate(main);
    printComparison(`== two hosts, ${bw} mbit/s link ==`, c);
    const planner = printPlannerCheck(c, pool(main.off), pool(main.on), bw);
    summary.testbed = { bandwidthMbit: bw, ...c, planner };
    const single = (r: RunResult[], split: boolean) =>
      pool(r)
        .flatMap((x) => x.rank0)
        .filter((s) => s.tokens === inputLen && s.split === split);
    const offStep = medianStep(single(main.off, false));
    const onStep = medianStep(single(main.on, true));
    if (offStep && onStep) {
      pictureSource = {
        off: offStep,
        on: onStep,
        caption: [
          `Two testbed hosts, ${bw} mbit/s link, -tp 2, moe_comm ${moeComm}, prompts of ${inputLen} tokens; median steps of rank 0.`,
          `Over all steps: T_compute ${f1(c.off.computeMs)} ms, T_comm ${f1(c.commMs)} ms (${pct(c.commShare)}), ` +
            `T_off ${f1(c.off.stepMs)} ms, T_on ${f1(c.on.stepMs)} ms, overlap efficiency ${f2(c.efficiency)}; ` +
            `CPU floor with DBO ≈ ${f1(c.cpuFloorMs)} ms.`,
        ],
      };
    }
    if (!args.skipUnlimited) {
      say('two testbed hosts, no rate limit on the link');
      const free = await withTestbed({ hosts: 2 }, (hosts) =>
        sideBySide('unlimited', { kind: 'testbed', hosts }, shape, rounds),
      );
      const cu = evaluate(free);
      printComparison('== two hosts, no rate limit ==', cu);
      summary.unlimited = cu;
    }
  }
}

// The decode phase measures the two-host case only (its question is the link's all-to-alls).
if (!args.skipLocal && !decodePhase) {
  say('one host: -tp 2 in one process over shared memory (communication nearly free)');
  const shm = await sideBySide('shm-tp2', { kind: 'local', tp: 2 }, shape, rounds);
  const cs = evaluate(shm);
  printComparison('== one host, -tp 2, shared memory ==', cs);
  summary.sharedMemory = cs;
  say('one host: -tp 1 (DBO has nothing to overlap: it turns itself off)');
  const one = await sideBySide('tp1', { kind: 'local', tp: 1 }, shape, rounds);
  const c1 = evaluate(one);
  printComparison('== one host, -tp 1 ==', c1);
  summary.singleRank = c1;
}

if (pictureSource) {
  const svg = renderStepsSvg(
    [
      { title: panelTitle('without DBO', pictureSource.off), step: pictureSource.off },
      { title: panelTitle('with DBO', pictureSource.on), step: pictureSource.on },
    ],
    pictureSource.caption,
  );
  const svgPath = join(outDir, 'dbo-step.svg');
  writeFileSync(svgPath, svg);
  say(`picture: ${svgPath}`);
  const png = join(outDir, 'dbo-step.png');
  // ImageMagick 7 is `magick`, 6 is `convert` (a `convert` early on PATH may be something else).
  const converted = ['magick', 'convert', '/usr/bin/convert'].some(
    (cmd) => spawnSync(cmd, ['-density', '110', svgPath, png], { encoding: 'utf8' }).status === 0,
  );
  if (converted) say(`picture: ${png}`);
  else say('(no PNG: ImageMagick is not installed; apt-get install -y imagemagick)');
  summary.picture = { svg: svgPath, png: converted ? png : null };
}
summary.loadAverageAtEnd = loadAverage();
say(`load average at the end: ${loadAverage()} (other work on this machine adds noise to every figure)`);
writeFileSync(join(outDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
writeFileSync(join(outDir, 'summary.txt'), `${report.join('\n')}\n`);
say(`summary: ${join(outDir, 'summary.txt')} and summary.json`);
