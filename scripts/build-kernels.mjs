#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
// Compiles each AssemblyScript kernel entry (src/kernels/wasm/*.ts; shared helpers live in subfolders)
// into dist/kernels/NAME.wasm (WebAssembly SIMD) and dist/kernels/NAME.relaxed.wasm (plus relaxed SIMD:
// fused multiply-add and int8 dot). Every module imports a shared memory, so that worker threads and
// several memories (weights beyond the 4 GiB wasm32 limit) can use one compiled module.
// Skips a module whose output is newer than every kernel source.
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const srcDir = 'src/kernels/wasm';
const outDir = 'dist/kernels';
mkdirSync(outDir, { recursive: true });

function newestMtime(dir) {
  let t = 0;
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const s = statSync(p);
    t = Math.max(t, s.isDirectory() ? newestMtime(p) : s.mtimeMs);
  }
  return t;
}

const sourcesTime = Math.max(newestMtime(srcDir), statSync('scripts/build-kernels.mjs').mtimeMs);
const entries = readdirSync(srcDir).filter(
  (f) => f.endsWith('.ts') && !statSync(join(srcDir, f)).isDirectory(),
);
const asc = join('node_modules', '.bin', 'asc');
const common = [
  '-O3',
  '--noAssert',
  '--runtime',
  'stub',
  '--importMemory',
  '--sharedMemory',
  '--initialMemory',
  '1',
  '--maximumMemory',
  '65536',
  '--enable',
  'simd',
  '--enable',
  'threads',
];
let built = 0;
for (const entry of entries) {
  const name = entry.slice(0, -3);
  for (const [suffix, extra] of [
    ['', []],
    ['.relaxed', ['--enable', 'relaxed-simd']],
  ]) {
    const out = join(outDir, `${name}${suffix}.wasm`);
    if (existsSync(out) && statSync(out).mtimeMs > sourcesTime) continue;
    const res = spawnSync(asc, [join(srcDir, entry), '-o', out, ...common, ...extra], { stdio: 'inherit' });
    if (res.status !== 0) {
      console.error(`build-kernels: asc failed for ${entry}${suffix}`);
      process.exit(res.status ?? 1);
    }
    built++;
  }
}
console.log(`build-kernels: ${built} module(s) built, ${entries.length * 2 - built} up to date`);
