// Kernel benchmark: the wasm GEMM (f32 and bf16 weights) side by side with a native OpenBLAS sgemm on
// the same shapes and thread counts, for a prefill-like GEMM and decode-like GEMVs, plus the machine's
// read bandwidth measured in the same run (wasm and native streaming reads), against which the GEMV's
// weight traffic is compared. Run with `npm run bench:kernels` (options: --threads 1,2 --quick; --smoke: tiny
// shapes and no native program, only to check that the benchmark runs, as `npm test` does).
//
// The GEMV weights rotate over enough copies (≥ 1 GiB) that they come from DRAM, as a real model's do.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LinearWeight, WeightDType } from '../src/kernels/kernels.js';
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
}

/** Total bytes of weight copies the GEMV rotates over, and of the bandwidth test. */
const ROTATION_BYTES = 1024 ** 3;

function parseOptions(argv: string[]): Options {
  const opts: Options = { threads: [1, 2], quick: false, smoke: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--quick') opts.quick = true;
    else if (a === '--smoke') opts.smoke = true;
    else if (a === '--threads') opts.threads = (argv[++i] ?? '').split(',').map(Number);
    else throw new Error(`bench/kernels: unknown option ${a}; allowed: --threads 1,2 --quick --smoke`);
  }
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

  const widths = [8, 5, 6, 6, 3, 9, 9, 9, 8, 8, 6, 12, 12];
  console.log(
    '\nGEMM out[M,N] = x[M,K]·w[N,K]ᵀ, GFLOP/s (best of 3 rounds). Decode: weights rotate over ' +
      `${rotation / 1024 ** 3} GiB of copies;\nGB/s = weight bytes read per second, % = of the read bandwidth ` +
      '(bw, wasm streaming read measured just before the row)',
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
      ],
      widths,
    ),
  );
  for (const group of groups) {
    const { n, k, label } = group[0]!;
    const isDecode = label === 'decode';
    const raw = randomF32(n * k, 1);
    const weights = new Map<WeightDType, LinearWeight[]>();
    for (const dtype of ['f32', 'bf16'] as WeightDType[]) {
      const bytes = n * k * (dtype === 'f32' ? 4 : 2);
      const copies = isDecode ? Math.max(2, Math.ceil(rotation / bytes)) : 1;
      const ws: LinearWeight[] = [];
      for (let c = 0; c < copies; c++)
        ws.push(kernels.prepareLinear({ dtype: 'f32', data: raw }, n, k, dtype));
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
        const sec = new Map<WeightDType, number>();
        for (const [dtype, ws] of weights) {
          sec.set(
            dtype,
            timeCalls((i) => kernels.linear(out, x, ws[i % ws.length]!, s.m), minSeconds, ws.length),
          );
        }
        const f32 = sec.get('f32')!;
        const bf16 = sec.get('bf16')!;
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
            ],
            widths,
          ),
        );
      }
    }
    for (const ws of weights.values()) for (const w of ws) kernels.freeLinear(w);
  }
  if (typeof native !== 'string') native.dispose();
  await kernels.dispose();
}

await main();
