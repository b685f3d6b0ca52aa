// The oneDNN platform: Duet's CPU platform (thread set-up, machine memory, configuration check, and
// whatever else the contract asks of a CPU platform) with the oneDNN matrix products laid over its
// WebAssembly kernel set, built with the same thread count.

import os from 'node:os';
import type { NativeAddon } from './addon.js';
import { CpuPlatform, type KernelOptions, type Platform } from './duet.js';
import {
  type Bf16Math,
  createOnednnKernels,
  type OnednnKernels,
  OnednnKernelsError,
} from './onednn-kernels.js';
import { overlay } from './overlay.js';

/** Reads DUET_ONEDNN_BF16_MATH (`split`, the default, or `bf16`). */
export function bf16MathFromEnv(env: NodeJS.ProcessEnv = process.env): Bf16Math {
  const v = env.DUET_ONEDNN_BF16_MATH ?? 'split';
  if (v !== 'split' && v !== 'bf16') {
    throw new OnednnKernelsError(`DUET_ONEDNN_BF16_MATH = '${v}'; allowed: 'split', 'bf16'`);
  }
  return v;
}

/** The oneDNN platform; its kernel sets are `OnednnKernels`. */
export type OnednnPlatform = Omit<Platform, 'createKernels'> & {
  createKernels(opts?: KernelOptions): Promise<OnednnKernels>;
};

/** The `onednn` platform on `addon`, multiplying bf16 weights as `bf16Math` says. */
export function createOnednnPlatform(
  addon: NativeAddon,
  bf16Math: Bf16Math = bf16MathFromEnv(),
): OnednnPlatform {
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
      const wasm = await cpu.createKernels({ numThreads });
      return createOnednnKernels(addon, wasm, { numThreads, bf16Math });
    },
  });
}
