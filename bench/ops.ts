// Single-thread benchmark of the WebAssembly operator kernels: MLA decode attention (absorbed form over
// the paged latent cache) at DeepSeek's real dimensions, reported as GB/s of latent cache read and as a
// speed-up over the TypeScript reference twin. Run: npx tsc -p tsconfig.json && node dist/bench/ops.js
// (--smoke: one small shape and a short time budget, only to check that it runs, as `npm test` does).

import { ReferenceKernels } from '../src/kernels/reference/reference-kernels.js';
import { enableWasmFeatures, hasRelaxedSimd } from '../src/platforms/cpu/wasm-features.js';
import { WasmOps } from '../src/platforms/cpu/wasm-ops.js';

/** Median wall time in ms of `run`, over enough repetitions to take about `budgetMs`. */
function timeMs(run: () => void, budgetMs: number): number {
  run();
  const samples: number[] = [];
  const start = performance.now();
  while (samples.length < 3 || (performance.now() - start < budgetMs && samples.length < 200)) {
    const t0 = performance.now();
    run();
    samples.push(performance.now() - t0);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

function fillRandom(a: Float32Array, seed: number): void {
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 31 - 1;
  }
}

async function main(): Promise<void> {
  enableWasmFeatures();
  const smoke = process.argv.includes('--smoke');
  const budgetMs = smoke ? 20 : 1500;
  const latentDim = 512;
  const ropeDim = 64;
  const entry = latentDim + ropeDim;
  const blockSize = 16;
  const scale = 1 / Math.sqrt(192);
  const ref = new ReferenceKernels();
  const builds = hasRelaxedSimd() ? [false, true] : [false];
  console.log(
    `MLA decode attention, latentDim ${latentDim} + ropeDim ${ropeDim}, blockSize ${blockSize}, one thread`,
  );
  for (const numHeads of smoke ? [16] : [16, 128]) {
    for (const ctx of smoke ? [64] : [512, 4096]) {
      const numBlocks = Math.ceil(ctx / blockSize);
      const blockTable = Int32Array.from({ length: numBlocks }, (_, i) => (i * 7919) % numBlocks);
      const positions = Int32Array.from([ctx - 1]);
      const cacheBytes = ctx * entry * 4;
      let refMs = Number.NaN;
      if (numHeads === 16) {
        const cache = new Float32Array(numBlocks * blockSize * entry);
        const q = new Float32Array(numHeads * entry);
        fillRandom(cache, 1);
        fillRandom(q, 2);
        const out = new Float32Array(numHeads * latentDim);
        refMs = timeMs(
          () =>
            ref.mlaAttention(
              out,
              q,
              cache,
              blockTable,
              positions,
              1,
              numHeads,
              latentDim,
              ropeDim,
              blockSize,
              scale,
            ),
          budgetMs,
        );
        console.log(
          `  heads ${numHeads} ctx ${ctx}: reference ${refMs.toFixed(2)} ms (${(cacheBytes / refMs / 1e6).toFixed(3)} GB/s)`,
        );
      }
      for (const relaxed of builds) {
        const ops = await WasmOps.create({ relaxed });
        const cache = ops.allocate(numBlocks * blockSize * entry);
        const q = ops.allocate(numHeads * entry);
        const out = ops.allocate(numHeads * latentDim);
        fillRandom(cache, 1);
        fillRandom(q, 2);
        const ms = timeMs(
          () =>
            ops.mlaAttention(
              out,
              q,
              cache,
              blockTable,
              positions,
              1,
              numHeads,
              latentDim,
              ropeDim,
              blockSize,
              scale,
            ),
          budgetMs,
        );
        const gflops = (2 * numHeads * ctx * (entry + latentDim)) / ms / 1e6;
        const speedup = Number.isNaN(refMs) ? '' : `, ${(refMs / ms).toFixed(1)}x the reference`;
        console.log(
          `  heads ${numHeads} ctx ${ctx}: ${ops.name.padEnd(17)} ${ms.toFixed(3)} ms, ${(cacheBytes / ms / 1e6).toFixed(2)} GB/s cache, ${gflops.toFixed(1)} GFLOP/s${speedup}`,
        );
      }
    }
  }
}

await main();
