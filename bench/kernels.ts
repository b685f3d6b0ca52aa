// Kernel benchmark: the wasm GEMM (f32, bf16 and int8 W8A8 weights) side by side with a native OpenBLAS
// sgemm on the same shapes and thread counts, for a prefill-like GEMM and decode-like GEMVs, plus the
// machine's read bandwidth measured in the same run (wasm and native streaming reads), against which the
// GEMV's weight traffic is compared, and a register-only peak of the int8 dot step against which the
// int8 GEMM's multiply-adds are compared (decode m = 1..32, each int8 dot the build has).
// Run with `npm run bench:kernels` (options: --threads 1,2 --quick; --int8-only: the int8 sweep alone;
// --int8-groups 32,128: only int8 with activation scales per token and group of k against per token;
// --smoke: tiny shapes and no native
// program, only to check that the benchmark runs, as `npm test` does).
//
// The GEMV weights rotate over enough copies (≥ 1 GiB) that they come from DRAM, as a real model's do.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ACT_GROUP_SIZE_RULE, isActGroupSize, quantizeWeightPerChannel } from '../src/kernels/int8-quant.js';
import type { LinearDType, LinearWeight } from '../src/kernels/kernels.js';
import type { Int8Dot } from '../src/platforms/cpu/int8-linear.js';
import { createWasmKernels, type WasmKernels } from '../src/platforms/cpu/wasm-kernels.js';

interface Shape {
  label: string;
  m: number;
  n: number;
  k: number;
}

interface Options {
  threads: number[];
  quick: boolean;
  smoke: boolean;
  /** Only the int8 sweep (peak, bandwidth, m = 1..32 and prefill). */
  int8Only: boolean;
  /** Only the per-token-group comparison, for these activation group sizes (empty: not asked). */
  int8Groups: number[];
}

/** Total bytes of weight copies the GEMV rotates over, and of the bandwidth test. */
const ROTATION_BYTES = 1024 ** 3;

function parseOptions(argv: string[]): Options {
  const opts: Options = { threads: [1, 2], quick: false, smoke: false, int8Only: false, int8Groups: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') opts.quick = true;
    else if (a === '--smoke') opts.smoke = true;
    else if (a === '--int8-only') opts.int8Only = true;
    else if (a === '--threads') opts.threads = (argv[++i] ?? '').split(',').map(Number);
    else if (a === '--int8-groups') opts.int8Groups = (argv[++i] ?? '').split(',').map(Number);
    else
      throw new Error(
        `bench/kernels: unknown option ${a}; allowed: --threads 1,2 --quick --smoke --int8-only --int8-groups 32,128`,
      );
  }
  if (opts.int8Groups.some((g) => !isActGroupSize(g)))
    throw new Error(`--int8-groups: a list of group sizes, each ${ACT_GROUP_SIZE_RULE}`);
  if (opts.threads.some((t) => !Number.isInteger(t) || t < 1))
    throw new Error('--threads: a list of integers >= 1');
  return opts;
}

function randomF32(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
  return a;
}

/**
 * Seconds per call of `fn`: the best of `rounds` rounds, each of at least `minSeconds` and 3 calls, after
 * `warmups` calls. The best round is the one least disturbed by other work on the machine.
 */
function timeCalls(fn: (i: number) => void, minSeconds: number, warmups: number, rounds = 3): number {
  let i = 0;
  for (; i < warmups; i++) fn(i);
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < rounds; r++) {
    let calls = 0;
    const t0 = performance.now();
    let t = 0;
    do {
      fn(i++);
      calls++;
      t = (performance.now() - t0) / 1e3;
    } while (t < minSeconds || calls < 3);
    best = Math.min(best, t / calls);
  }
  return best;
}

/** The native reference program, compiled into a temp dir; undefined (with the reason) when impossible. */
class NativeBench {
  private constructor(
    private readonly exe: string,
    private readonly dir: string,
    readonly coreName: string,
  ) {}

  static create(): NativeBench | string {
    const src = fileURLToPath(new URL('../../bench/native/openblas-bench.c', import.meta.url));
    if (!existsSync(src)) return `native source ${src} not found`;
    const gcc = spawnSync('gcc', ['--version']);
    if (gcc.status !== 0) return 'gcc not found (apt-get install -y gcc)';
    const dir = mkdtempSync(join(os.tmpdir(), 'duet-bench-'));
    const exe = join(dir, 'openblas-bench');
    const incs = ['/usr/include/x86_64-linux-gnu/openblas-pthread', '/usr/include/openblas'].filter(
      existsSync,
    );
    const res = spawnSync(
      'gcc',
      ['-O2', '-o', exe, src, ...incs.map((d) => `-I${d}`), '-lopenblas', '-lpthread'],
      {
        encoding: 'utf8',
      },
    );
    if (res.status !== 0) {
      rmSync(dir, { recursive: true, force: true });
      const why = (res.stderr ?? '').split('\n').find((l) => l.includes('error')) ?? 'compile failed';
      return `OpenBLAS not usable (apt-get install -y libopenblas0 libopenblas-dev): ${why.trim()}`;
    }
    const core = spawnSync(exe, ['corename'], { encoding: 'utf8' }).stdout.trim();
    return new NativeBench(exe, dir, core || 'unknown');
  }

  /** Seconds per sgemm call with `threads` OpenBLAS threads. */
  gemm(s: Shape, threads: number, copies: number, minSeconds: number): number {
    const args = ['gemm', s.m, s.n, s.k, copies, minSeconds].map(String);
    return Number(
      execFileSync(this.exe, args, { env: { ...process.env, OPENBLAS_NUM_THREADS: String(threads) } }),
    );
  }

  /** Seconds to read `bytesPerThread` on each of `threads` threads. */
  stream(bytesPerThread: number, threads: number): number {
    return Number(execFileSync(this.exe, ['stream', String(bytesPerThread), String(threads)]));
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function fmt(v: number | undefined, digits = 1): string {
  return v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

function pad(cells: string[], widths: number[]): string {
  return cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
}

/** Best read bandwidth (bytes/s) over a few runs of the wasm streaming read. */
function wasmBandwidth(kernels: WasmKernels, threads: number, totalBytes: number): number {
  let best = 0;
  for (let r = 0; r < 3; r++)
    best = Math.max(best, totalBytes / kernels.timeStreamRead(totalBytes / threads, threads));
  return best;
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const minSeconds = opts.smoke ? 0.005 : opts.quick ? 0.15 : 0.4;
  const rotation = opts.smoke ? 16 * 1024 ** 2 : opts.quick ? ROTATION_BYTES / 2 : ROTATION_BYTES;
  const maxThreads = Math.max(...opts.threads);
  const kernels = await createWasmKernels({ numThreads: maxThreads });
  if (opts.int8Groups.length > 0) {
    await int8GroupSweep(kernels, opts, rotation);
    await kernels.dispose();
    return;
  }
  if (opts.int8Only) {
    await int8Sweep(kernels, opts, minSeconds, rotation);
    await kernels.dispose();
    return;
  }
  const native = opts.smoke ? '--smoke' : NativeBench.create();
  console.log(`Duet kernel benchmark — ${os.cpus()[0]?.model ?? 'CPU'}, ${os.availableParallelism()} cores`);
  console.log(`wasm: ${kernels.name} (relaxed SIMD ${kernels.relaxed ? 'on' : 'off'})`);
  if (typeof native === 'string') console.log(`native: skipped — ${native}`);
  else {
    const coreType = process.env.OPENBLAS_CORETYPE;
    console.log(
      `native: OpenBLAS sgemm, kernel ${native.coreName}${coreType ? ` (OPENBLAS_CORETYPE=${coreType})` : ''}`,
    );
  }

  // Read bandwidth, the yardstick of the GEMV (measured again beside each GEMV row below).
  console.log(
    `\nRead bandwidth (GB/s): ${rotation / 1024 ** 3} GiB read by the threads, each as 4 interleaved streams:`,
  );
  console.log(pad(['threads', 'wasm', 'native'], [8, 8, 8]));
  for (const t of opts.threads) {
    const bw = wasmBandwidth(kernels, t, rotation);
    const nat = typeof native === 'string' ? undefined : rotation / native.stream(rotation / t, t);
    console.log(pad([String(t), fmt(bw / 1e9), fmt(nat === undefined ? undefined : nat / 1e9)], [8, 8, 8]));
  }

  const groups: Shape[][] = [[{ label: 'prefill', m: opts.smoke ? 16 : 512, n: 2048, k: 2048 }]];
  for (const [n, k] of opts.smoke
    ? ([[256, 256]] as const)
    : ([
        [2048, 2048],
        [10944, 2048],
      ] as const)) {
    groups.push((opts.smoke ? [1, 2] : [1, 2, 4, 8]).map((m) => ({ label: 'decode', m, n, k })));
  }

  const widths = [8, 5, 6, 6, 3, 9, 9, 9, 8, 8, 6, 12, 12, 9, 9, 12];
  console.log(
    '\nGEMM out[M,N] = x[M,K]·w[N,K]ᵀ, GFLOP/s (best of 3 rounds). Decode: weights rotate over ' +
      `${rotation / 1024 ** 3} GiB of copies;\nGB/s = weight bytes read per second, % = of the read bandwidth ` +
      '(bw, wasm streaming read measured just before the row); int8 = W8A8 (dynamic per-token\n' +
      'activations quantized inside the call), GOP/s, and its speed-up over bf16',
  );
  console.log(
    pad(
      [
        'shape',
        'M',
        'N',
        'K',
        'T',
        'wasm f32',
        'wasm bf16',
        'native',
        'f32/nat',
        'bf16/nat',
        'bw',
        'f32 GB/s',
        'bf16 GB/s',
        'int8',
        'i8/bf16',
        'int8 GB/s',
      ],
      widths,
    ),
  );
  for (const group of groups) {
    const { n, k, label } = group[0]!;
    const isDecode = label === 'decode';
    const raw = randomF32(n * k, 1);
    const weights = new Map<LinearDType, LinearWeight[]>();
    const int8 = quantizeWeightPerChannel({ dtype: 'f32', data: raw }, n, k);
    for (const dtype of ['f32', 'bf16', 'int8'] as LinearDType[]) {
      const bytes = n * k * (dtype === 'f32' ? 4 : dtype === 'bf16' ? 2 : 1);
      const copies = isDecode ? Math.max(2, Math.ceil(rotation / bytes)) : 1;
      const ws: LinearWeight[] = [];
      for (let c = 0; c < copies; c++) {
        ws.push(
          dtype === 'int8'
            ? kernels.prepareInt8Linear(int8, n, k)
            : kernels.prepareLinear({ dtype: 'f32', data: raw }, n, k, dtype),
        );
      }
      weights.set(dtype, ws);
    }
    // Let the background work that follows packing gigabytes (GC, the kernel's page bookkeeping) settle.
    await new Promise((resolve) => setTimeout(resolve, opts.smoke ? 0 : 2000));
    for (const s of group) {
      const x = kernels.allocate(s.m * k);
      x.set(randomF32(s.m * k, 2));
      const out = kernels.allocate(s.m * n);
      for (const t of opts.threads) {
        kernels.activeThreads = t;
        const bw = isDecode ? wasmBandwidth(kernels, t, rotation / 2) : Number.NaN;
        const sec = new Map<LinearDType, number>();
        for (const [dtype, ws] of weights) {
          sec.set(
            dtype,
            timeCalls((i) => kernels.linear(out, x, ws[i % ws.length]!, s.m), minSeconds, ws.length),
          );
        }
        const f32 = sec.get('f32')!;
        const bf16 = sec.get('bf16')!;
        const i8 = sec.get('int8')!;
        const flops = 2 * s.m * s.n * s.k;
        const nat =
          typeof native === 'string'
            ? undefined
            : native.gemm(s, t, isDecode ? Math.max(2, Math.ceil(rotation / (n * k * 4))) : 1, minSeconds);
        const gbs = (seconds: number, es: number): string =>
          isDecode
            ? `${fmt((n * k * es) / seconds / 1e9)} ${fmt((100 * (n * k * es)) / seconds / bw, 0)}%`
            : '-';
        console.log(
          pad(
            [
              s.label,
              String(s.m),
              String(s.n),
              String(s.k),
              String(t),
              fmt(flops / f32 / 1e9),
              fmt(flops / bf16 / 1e9),
              fmt(nat === undefined ? undefined : flops / nat / 1e9),
              fmt(nat === undefined ? undefined : nat / f32, 2),
              fmt(nat === undefined ? undefined : nat / bf16, 2),
              isDecode ? fmt(bw / 1e9) : '-',
              gbs(f32, 4),
              gbs(bf16, 2),
              fmt(flops / i8 / 1e9),
              fmt(bf16 / i8, 2),
              gbs(i8, 1),
            ],
            widths,
          ),
        );
      }
    }
    for (const ws of weights.values()) for (const w of ws) kernels.freeLinear(w);
  }
  await int8Sweep(kernels, opts, minSeconds, rotation);
  if (typeof native !== 'string') native.dispose();
  await kernels.dispose();
}

/** Best int8 dot-step peak (ops/s: 2 per multiply-add) of `dot` over a few runs on `threads` threads. */
function int8Peak(kernels: WasmKernels, dot: Int8Dot, threads: number, smoke: boolean): number {
  const iters = smoke ? 10_000 : 2_000_000;
  // Multiply-adds per iteration: 8 dot steps of 16 (relaxed i8×i7) or 8 (int16) each.
  const macs = 8 * (dot === 'relaxed' ? 16 : 8);
  let best = 0;
  for (let r = 0; r < 4; r++) {
    best = Math.max(best, (threads * iters * macs * 2) / kernels.timeInt8DotPeak(dot, iters, threads));
  }
  return best;
}

/**
 * The int8 GEMM for decode batches m = 1..32 and a prefill, with each int8 dot the build has: GOP/s
 * against that dot's register-only peak, and the weight traffic against the read bandwidth.
 */
async function int8Sweep(
  kernels: WasmKernels,
  opts: Options,
  minSeconds: number,
  rotation: number,
): Promise<void> {
  const [n, k] = opts.smoke ? [64, 128] : [2048, 2048];
  const prefillM = opts.smoke ? 64 : 512;
  const raw = randomF32(n * k, 1);
  const int8 = quantizeWeightPerChannel({ dtype: 'f32', data: raw }, n, k);
  const dots: Int8Dot[] = kernels.relaxed ? ['int16', 'relaxed'] : ['int16'];
  console.log(
    `\nInt8 W8A8 GEMM, N = K = ${n}: GOP/s (2 per multiply-add), % of the register-only peak of its dot ` +
      'step, weight GB/s and % of the read bandwidth.\nint16: weights widened, i32x4.dot_i16x8_s ' +
      '(the default). relaxed: i16x8.relaxed_dot_i8x16_i7x16_s on the 7-bit split of the activations, ' +
      "two dot steps per 16 multiply-adds (ceiling: 50% of its peak). % rlx: of the relaxed dot's peak " +
      '(relaxed build), whichever dot the row uses.',
  );
  const widths = [8, 3, 8, 4, 7, 7, 6, 7, 6];
  console.log(pad(['dot', 'T', 'peak', 'M', 'GOP/s', '% peak', '% rlx', 'GB/s', '% bw'], widths));
  const copies = Math.max(2, Math.ceil(rotation / (n * k)));
  const ws = Array.from({ length: copies }, () => kernels.prepareInt8Linear(int8, n, k));
  for (const t of opts.threads) {
    kernels.activeThreads = t;
    const bw = wasmBandwidth(kernels, t, rotation / 2);
    const relaxedPeak = kernels.relaxed ? int8Peak(kernels, 'relaxed', t, opts.smoke) : 0;
    for (const dot of dots) {
      kernels.int8Dot = dot;
      const peak = dot === 'relaxed' ? relaxedPeak : int8Peak(kernels, dot, t, opts.smoke);
      for (const m of [1, 2, 4, 8, 16, 32, prefillM]) {
        const x = kernels.allocate(m * k);
        x.set(randomF32(m * k, 2));
        const out = kernels.allocate(m * n);
        // A prefill reads its weight from cache; decode rotates over the copies (from DRAM).
        const sec = timeCalls(
          (i) => kernels.linear(out, x, ws[m === prefillM ? 0 : i % ws.length]!, m),
          minSeconds,
          4,
        );
        const ops = (2 * m * n * k) / sec;
        const gbs = (n * k) / sec;
        const decode = m !== prefillM;
        console.log(
          pad(
            [
              dot,
              String(t),
              fmt(peak / 1e9),
              String(m),
              fmt(ops / 1e9),
              fmt((100 * ops) / peak, 0),
              relaxedPeak > 0 ? fmt((100 * ops) / relaxedPeak, 0) : '-',
              decode ? fmt(gbs / 1e9) : '-',
              decode ? fmt((100 * gbs) / bw, 0) : '-',
            ],
            widths,
          ),
        );
        kernels.free(x);
        kernels.free(out);
      }
    }
  }
  kernels.int8Dot = 'int16';
  for (const w of ws) kernels.freeLinear(w);
}

/**
 * The int8 GEMM with activation scales per token and group of k (`--int8-groups`) beside per-token
 * activations, same weights, at m = 1 and 8 (decode, weights rotated from DRAM) and 512 (prefill), on the
 * int16 dot (the only one the group kernel has): GOP/s and the ratio to per-token, by wall clock and (one
 * thread) by process CPU time. The schemes alternate round by round, so machine load falls on all alike.
 */
async function int8GroupSweep(kernels: WasmKernels, opts: Options, rotation: number): Promise<void> {
  const [n, k] = opts.smoke ? [64, 128] : [2048, 2048];
  const prefillM = opts.smoke ? 64 : 512;
  const int8 = quantizeWeightPerChannel({ dtype: 'f32', data: randomF32(n * k, 1) }, n, k);
  if (int8.scheme.kind !== 'dynamic') throw new Error('per-channel quantization is dynamic');
  const schemes: { label: string; groupSize?: number }[] = [
    { label: 'per token' },
    ...opts.int8Groups.map((g) => ({ label: `group ${g}`, groupSize: g })),
  ];
  const copies = Math.max(2, Math.ceil(rotation / schemes.length / (n * k)));
  const ws = schemes.map((sc) =>
    Array.from({ length: copies }, () =>
      kernels.prepareInt8Linear(
        { data: int8.data, scheme: { ...int8.scheme, ...(sc.groupSize ? { groupSize: sc.groupSize } : {}) } },
        n,
        k,
      ),
    ),
  );
  console.log(
    `\nInt8 W8A8 GEMM with activation scales per token and group of k, N = K = ${n}, int16 dot: GOP/s ` +
      '(2 per multiply-add) and the ratio to per-token activations, by wall clock and, on one thread, by ' +
      'the process CPU time (which machine load does not inflate). Decode (m < 512) rotates over ' +
      `${copies} weight copies per scheme (from DRAM); the prefill reads one from cache. The schemes ` +
      'alternate round by round (best of 5).',
  );
  const widths = [3, 4, 5, ...schemes.flatMap(() => [10, 6])];
  console.log(pad(['T', 'M', 'clock', ...schemes.flatMap((sc) => [sc.label, 'ratio'])], widths));
  kernels.int8Dot = 'int16';
  for (const t of opts.threads) {
    kernels.activeThreads = t;
    for (const m of [1, 8, prefillM]) {
      const x = kernels.allocate(m * k);
      x.set(randomF32(m * k, 2));
      const out = kernels.allocate(m * n);
      const wall = schemes.map(() => Number.POSITIVE_INFINITY);
      const cpu = schemes.map(() => Number.POSITIVE_INFINITY);
      const calls = Math.max(3, Math.round((opts.smoke ? 1e6 : 2e9) / (2 * m * n * k)));
      for (let r = 0; r < 5; r++) {
        schemes.forEach((_, j) => {
          const w = ws[j]!;
          kernels.linear(out, x, w[0]!, m);
          const c0 = process.cpuUsage();
          const t0 = performance.now();
          for (let i = 0; i < calls; i++) kernels.linear(out, x, w[m === prefillM ? 0 : i % copies]!, m);
          const sec = (performance.now() - t0) / 1e3;
          const c = process.cpuUsage(c0);
          wall[j] = Math.min(wall[j]!, sec / calls);
          cpu[j] = Math.min(cpu[j]!, (c.user + c.system) / 1e6 / calls);
        });
      }
      const rows: [string, number[]][] = [['wall', wall]];
      if (t === 1) rows.push(['cpu', cpu]);
      for (const [clock, secs] of rows) {
        const gops = secs.map((sec) => (2 * m * n * k) / sec / 1e9);
        console.log(
          pad([String(t), String(m), clock, ...gops.flatMap((g) => [fmt(g), fmt(g / gops[0]!, 2)])], widths),
        );
      }
      kernels.free(x);
      kernels.free(out);
    }
  }
  for (const list of ws) for (const w of list) kernels.freeLinear(w);
}

await main();
