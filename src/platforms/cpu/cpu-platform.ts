// The CPU platform: WebAssembly SIMD kernels on worker threads sharing memories, machine RAM as device
// memory. Always available where WebAssembly SIMD is; the platform every other one is preferred to.

import os from 'node:os';
import type { Kernels } from '../../kernels/kernels.js';
import {
  type KernelOptions,
  PLATFORM_CONTRACT_VERSION,
  type Platform,
  type PlatformNotice,
} from '../platform.js';
import type { PlatformPlugin } from '../plugin.js';
import { enableWasmFeatures } from './wasm-features.js';
import { createWasmKernels } from './wasm-kernels.js';

/** Engine settings that change nothing on the CPU platform, with the reason given in the notice. */
const NO_EFFECT_ON_CPU: Readonly<Record<string, string>> = {
  compilationConfig: 'there is no graph compilation on the CPU platform',
  enforceEager: 'the CPU platform always runs eagerly',
  trustRemoteCode: 'Duet runs its own model code; no remote code is executed',
};

export class CpuPlatform implements Platform {
  /** `cpu`; a plugin that extends this class may rename it. */
  readonly name: string = 'cpu';
  readonly deviceName = `${os.cpus()[0]?.model ?? 'CPU'} (${os.availableParallelism()} cores)`;

  /** Switches on relaxed SIMD (a V8 flag) before this thread compiles the kernels. */
  prepareThread(): void {
    enableWasmFeatures();
  }

  totalMemoryBytes(): number {
    return os.totalmem();
  }

  availableMemoryBytes(): number {
    return os.freemem();
  }

  createKernels(opts: KernelOptions = {}): Promise<Kernels> {
    return createWasmKernels({ numThreads: opts.numThreads ?? os.availableParallelism() });
  }

  checkConfig(settings: Readonly<Record<string, unknown>>): PlatformNotice[] {
    const notices: PlatformNotice[] = [];
    for (const [setting, why] of Object.entries(NO_EFFECT_ON_CPU)) {
      if (settings[setting] !== undefined)
        notices.push({ setting, message: `${setting} is accepted but ignored: ${why}` });
    }
    return notices;
  }
}

/** A module with one SIMD instruction (v128.const): valid only where WebAssembly SIMD is. */
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b, 0x03, 0x02, 0x01,
  0x00, 0x0a, 0x16, 0x01, 0x14, 0x00, 0xfd, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0b,
]);

/** The WebAssembly CPU platform as a plugin of the registry: built in, lowest priority. */
export const cpuPlatformPlugin: PlatformPlugin = {
  name: 'cpu',
  contractVersion: PLATFORM_CONTRACT_VERSION,
  priority: 0,
  async probe() {
    if (!WebAssembly.validate(SIMD_PROBE))
      return { available: false, reason: 'this runtime has no WebAssembly SIMD' };
    return { available: true, reason: `WebAssembly SIMD on ${os.availableParallelism()} cores` };
  },
  async create() {
    return new CpuPlatform();
  },
};
