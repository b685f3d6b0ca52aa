// The oneDNN platform: Duet's CPU platform (thread set-up, machine memory, configuration check, and
// whatever else the contract asks of a CPU platform) with the oneDNN matrix products laid over its
// WebAssembly kernel set, built with the same thread count.

import os from 'node:os';
import type { NativeAddon } from './addon.js';
import { type ComputeDType, CpuPlatform, type KernelOptions, type Platform } from './duet.js';
import {
  type Bf16Math,
  createOnednnKernels,
  type OnednnKernels,
  OnednnKernelsError,
} from './onednn-kernels.js';
import { overlay } from './overlay.js';

/** The oneDNN platform; its kernel sets are `OnednnKernels`. */
export type OnednnPlatform = Omit<Platform, 'createKernels'> & {
  createKernels(opts?: KernelOptions): Promise<OnednnKernels>;
};

/**
 * How bf16 weights multiply float32 activations for a compute precision: `float32` splits each activation
 * into a bf16 head and tail (float32-grade); `bfloat16` rounds it to bf16 (vLLM's `--dtype bfloat16`).
 */
export function bf16MathFor(computeDType: ComputeDType): Bf16Math {
  return computeDType === 'bfloat16' ? 'bf16' : 'split';
}

/** The `onednn` platform on `addon`; its kernel sets compute in `KernelOptions.computeDType`. */
export function createOnednnPlatform(addon: NativeAddon): OnednnPlatform {
  const cpu = new CpuPlatform();
  const info = addon.describe();
  return overlay<OnednnPlatform>(cpu as Platform as OnednnPlatform, {
    name: 'onednn',
    deviceName: `${cpu.deviceName}, oneDNN ${info.version} (${info.isa})`,
    async createKernels(opts: KernelOptions = {}): Promise<OnednnKernels> {
      const numThreads = opts.numThreads ?? os.availableParallelism();
      if (!Number.isInteger(numThreads) || numThreads < 1) {
        throw new OnednnKernelsError(`createKernels: numThreads = ${numThreads}; it must be an integer >= 1`);
      }
      const computeDType = opts.computeDType ?? 'float32';
      if (computeDType !== 'float32' && computeDType !== 'bfloat16') {
        throw new OnednnKernelsError(
          `createKernels: computeDType = '${String(computeDType)}'; allowed: 'float32', 'bfloat16'`,
        );
      }
      const wasm = await cpu.createKernels({ numThreads });
      return createOnednnKernels(addon, wasm, { numThreads, bf16Math: bf16MathFor(computeDType) });
    },
  });
}
