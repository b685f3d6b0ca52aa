// The calibration of bench:vs-llamacpp's SmoothQuant W8A8 checkpoint, in a child process of its own (its
// float model's memory goes with it): runs the calibration prompts through the BF16 folder's float model
// (bf16 weights, float32 activations) and writes each smoothing group norm's per-channel activation maxima
// as JSON ({norm name: number[]}) to the output path, through a temporary name.
//
//   node dist/bench/vs-llamacpp-calibrate.js '{"hfDir": "...", "out": "...", "threads": 2, "prompts": [[...]]}'

import { renameSync, writeFileSync } from 'node:fs';
import { loadDeepseekConfig } from '../src/loader/hf-config.js';
import { openSafetensors } from '../src/loader/safetensors.js';
import { calibrateNormMaxima, deepseekSmoothingGroups } from '../src/models/deepseek-smoothing.js';
import { enableWasmFeatures } from '../src/platforms/cpu/wasm-features.js';
import { createWasmKernels } from '../src/platforms/cpu/wasm-kernels.js';

/** What the calibration child is asked. */
export interface CalibrateJob {
  readonly hfDir: string;
  readonly out: string;
  readonly threads: number;
  readonly prompts: readonly (readonly number[])[];
}

enableWasmFeatures();
const job = JSON.parse(process.argv[2] ?? '{}') as CalibrateJob;
const config = loadDeepseekConfig(job.hfDir);
const kernels = await createWasmKernels({ numThreads: job.threads });
const source = openSafetensors(job.hfDir);
const maxima = await calibrateNormMaxima(
  config,
  kernels,
  source,
  deepseekSmoothingGroups(config),
  job.prompts,
  'bf16',
);
source.close();
kernels.dispose();
writeFileSync(
  `${job.out}.partial`,
  JSON.stringify(Object.fromEntries([...maxima].map(([k, v]) => [k, Array.from(v)]))),
);
renameSync(`${job.out}.partial`, job.out);
