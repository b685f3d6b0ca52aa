// Matmul speed of the oneDNN platform package (packages/platform-onednn) against Duet's WebAssembly kernels:
// GFLOP/s (int8: GOP/s) of `linear` for f32, bf16 and int8 W8A8 weights at m = 1, 8, 32, 512 rows and
// n = k = 2048, on the same thread count, with the oneDNN/WebAssembly ratio per row. bf16 runs twice on
// oneDNN: `split` (the default: float32-grade activations as a bf16 head and tail, twice the arithmetic)
// and `bf16` (activations rounded to bf16: compute dtype bfloat16, `--dtype bfloat16`). For m <= 32 the weights rotate over
// copies totalling 256 MiB per kernel set, so that they come from memory as a real model's do.
//
//   node dist/bench/onednn-matmul.js [--threads 2] [--rows 1,8,32,512] [--size 2048] [--smoke]
//
// --smoke: n = k = 256, rows 1 and 8, one short run each (what `npm test` runs). Where the package's addon
// is not built, the oneDNN rows are replaced by one line saying why.

import { existsSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { quantizeWeightPerChannel } from '../src/kernels/int8-quant.js';
import type { Kernels, LinearDType, LinearWeight } from '../src/kernels/kernels.js';
import { createWasmKernels } from '../src/platforms/cpu/wasm-kernels.js';
import type { Platform } from '../src/platforms/platform.js';
import { parseBenchArgs } from './bench-args.js';

/** The part of the package's entry module this benchmark uses (see packages/platform-onednn/src/index.ts). */
interface OnednnEntry {
  platformPlugin: { probe(): Promise<{ available: boolean; reason: string }> };
  createOnednnPlatform(addon: unknown): Platform;
}

const ROTATION_BYTES = 256 * 1024 ** 2;
const BYTES_PER_ELEMENT: Record<LinearDType, number> = { f32: 4, bf16: 2, int8: 1 };

const { values } = parseBenchArgs(import.meta.url, {
  options: {
    threads: { type: 'string', default: '2' },
    rows: { type: 'string', default: '1,8,32,512' },
    size: { type: 'string', default: '2048' },
    smoke: { type: 'boolean', default: false },
  },
});
const smoke = values.smoke;
const numThreads = Number(values.threads);
const rows = smoke ? [1, 8] : values.rows.split(',').map(Number);
const size = smoke ? 256 : Number(values.size);
if (!Number.isInteger(numThreads) || numThreads < 1) throw new Error('--threads: an integer >= 1');
if (rows.some((m) => !Number.isInteger(m) || m < 1)) throw new Error('--rows: integers >= 1, e.g. 1,8,32');
if (!Number.isInteger(size) || size < 16) throw new Error('--size: an integer >= 16');

const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..');
const ENTRY = join(ROOT, 'packages', 'platform-onednn', 'dist', 'index.js');

/** The oneDNN platform package's entry and its addon, or why they are not there. */
async function loadOnednn(): Promise<{ entry: OnednnEntry; addon: unknown } | string> {
  if (!existsSync(ENTRY)) return `${ENTRY} is not built (npm run build)`;
  const entry = (await import(pathToFileURL(ENTRY).href)) as OnednnEntry;
  const probe = await entry.platformPlugin.probe();
  if (!probe.available) return probe.reason;
  const addonModule = (await import(pathToFileURL(join(ENTRY, '..', 'addon.js')).href)) as {
    loadAddon(): { addon: unknown } | { reason: string };
  };
  const load = addonModule.loadAddon();
  return 'addon' in load ? { entry, addon: load.addon } : load.reason;
}

/** Uniform values in [-0.5, 0.5): the data does not matter to the speed of a product. */
function randomF32(n: number): Float32Array {
  return Float32Array.from({ length: n }, () => Math.random() - 0.5);
}

/** Best GFLOP/s of `linear` for m rows over `weights` (rotated), timed in batches of at least `minSeconds`. */
function timeLinear(kernels: Kernels, weights: LinearWeight[], m: number): number {
  const n = weights[0]!.n;
  const k = weights[0]!.k;
  const x = randomF32(m * k);
  const out = new Float32Array(m * n);
  for (const w of weights.slice(0, 2)) kernels.linear(out, x, w, m);
  const minSeconds = smoke ? 0.01 : 0.3;
  let best = 0;
  for (let batch = 0; batch < (smoke ? 1 : 3); batch++) {
    let calls = 0;
    const t0 = performance.now();
    let seconds = 0;
    while (seconds < minSeconds) {
      kernels.linear(out, x, weights[calls % weights.length]!, m);
      calls++;
      seconds = (performance.now() - t0) / 1e3;
    }
    best = Math.max(best, (2 * m * n * k * calls) / seconds / 1e9);
  }
  return best;
}

/** GFLOP/s per dtype and row count for one kernel set. */
function measure(kernels: Kernels, dtype: LinearDType): Map<number, number> {
  const raw = randomF32(size * size);
  const copies = Math.max(1, Math.floor(ROTATION_BYTES / (size * size * BYTES_PER_ELEMENT[dtype])));
  const prepare = (): LinearWeight =>
    dtype === 'int8'
      ? kernels.prepareInt8Linear(
          quantizeWeightPerChannel({ dtype: 'f32', data: raw }, size, size),
          size,
          size,
        )
      : kernels.prepareLinear({ dtype: 'f32', data: raw }, size, size, dtype);
  const result = new Map<number, number>();
  const one = [prepare()];
  const many =
    smoke || !rows.some((m) => m <= 32) ? one : [...one, ...Array.from({ length: copies - 1 }, prepare)];
  for (const m of rows) result.set(m, timeLinear(kernels, m <= 32 ? many : one, m));
  for (const w of many) kernels.freeLinear(w);
  return result;
}

function pad(cells: string[], widths: number[]): string {
  return cells.map((c, i) => c.padStart(widths[i]!)).join(' ');
}

const WIDTHS = [16, 6, 6, 6, 6, 8, 10];

async function main(): Promise<void> {
  console.log(
    `oneDNN vs WebAssembly matmul — ${os.cpus()[0]?.model ?? 'CPU'}, ${os.availableParallelism()} cores, ` +
      `${numThreads} threads, n = k = ${size}; GFLOP/s (int8: GOP/s), best of ${smoke ? 1 : 3}`,
  );
  const wasm = await createWasmKernels({ numThreads });
  const onednn = await loadOnednn();
  const sets: { label: string; kernels: Kernels; dtypes: LinearDType[] }[] = [
    { label: 'wasm', kernels: wasm, dtypes: ['f32', 'bf16', 'int8'] },
  ];
  if (typeof onednn === 'string') console.log(`onednn: skipped — ${onednn}`);
  else {
    const platform = onednn.entry.createOnednnPlatform(onednn.addon);
    const split = await platform.createKernels({ numThreads });
    const bf16 = await platform.createKernels({ numThreads, computeDType: 'bfloat16' });
    console.log(`onednn: ${split.name}`);
    sets.push({ label: 'onednn', kernels: split, dtypes: ['f32', 'bf16', 'int8'] });
    sets.push({ label: 'onednn bf16-act', kernels: bf16, dtypes: ['bf16'] });
  }
  console.log(pad(['kernels', 'dtype', 'm', 'n', 'k', 'threads', 'GFLOP/s'], WIDTHS));
  const results = new Map<string, Map<number, number>>();
  for (const set of sets) {
    for (const dtype of set.dtypes) {
      const r = measure(set.kernels, dtype);
      results.set(`${set.label}/${dtype}`, r);
      for (const [m, g] of r) {
        console.log(
          pad(
            [set.label, dtype, String(m), String(size), String(size), String(numThreads), g.toFixed(1)],
            WIDTHS,
          ),
        );
      }
    }
  }
  if (sets.length > 1) {
    console.log('\nratio oneDNN / WebAssembly');
    console.log(pad(['kernels', 'dtype', ...rows.map((m) => `m=${m}`)], [16, 6, ...rows.map(() => 8)]));
    for (const [key, r] of results) {
      const [label, dtype] = key.split('/') as [string, LinearDType];
      if (label === 'wasm') continue;
      const base = results.get(`wasm/${dtype}`)!;
      const ratios = rows.map((m) => `${(r.get(m)! / base.get(m)!).toFixed(2)}x`);
      console.log(pad([label, dtype, ...ratios], [16, 6, ...rows.map(() => 8)]));
    }
  }
  for (const set of sets) await set.kernels.dispose();
}

await main();
