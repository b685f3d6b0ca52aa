// The oneDNN platform: Duet's CPU platform (machine memory, streams, configuration check) with the oneDNN
// kernel set in place of the WebAssembly one. The kernel set still runs the non-matmul operators on
// WebAssembly kernels, built by the CPU platform with the same thread count.

import os from 'node:os';
import type { NativeAddon } from './addon.js';
import {
  CpuPlatform,
  type KernelOptions,
  type Kernels,
  type Platform,
  type PlatformNotice,
  type Stream,
} from './duet.js';
import { type Bf16Math, OnednnKernels, OnednnKernelsError } from './onednn-kernels.js';

/** Reads DUET_ONEDNN_BF16_MATH (`split`, the default, or `bf16`). */
export function bf16MathFromEnv(env: NodeJS.ProcessEnv = process.env): Bf16Math {
  const v = env.DUET_ONEDNN_BF16_MATH ?? 'split';
  if (v !== 'split' && v !== 'bf16') {
    throw new OnednnKernelsError(`DUET_ONEDNN_BF16_MATH = '${v}'; allowed: 'split', 'bf16'`);
  }
  return v;
}

export class OnednnPlatform implements Platform {
  readonly name = 'onednn';
  readonly deviceName: string;
  private readonly cpu = new CpuPlatform();

  constructor(
    private readonly addon: NativeAddon,
    private readonly bf16Math: Bf16Math = bf16MathFromEnv(),
  ) {
    const info = addon.describe();
    this.deviceName = `${this.cpu.deviceName}, oneDNN ${info.version} (${info.isa})`;
  }

  totalMemoryBytes(): number {
    return this.cpu.totalMemoryBytes();
  }

  availableMemoryBytes(): number {
    return this.cpu.availableMemoryBytes();
  }

  async createKernels(opts: KernelOptions = {}): Promise<Kernels> {
    const numThreads = opts.numThreads ?? os.availableParallelism();
    if (!Number.isInteger(numThreads) || numThreads < 1) {
      throw new OnednnKernelsError(`createKernels: numThreads = ${numThreads}; it must be an integer >= 1`);
    }
    const wasm = await this.cpu.createKernels({ numThreads });
    return new OnednnKernels(this.addon, wasm, { numThreads, bf16Math: this.bf16Math });
  }

  createStream(kind: 'compute' | 'communication'): Stream {
    return this.cpu.createStream(kind);
  }

  attentionBackend(): 'mla-absorbed' {
    return this.cpu.attentionBackend();
  }

  checkConfig(settings: Readonly<Record<string, unknown>>): PlatformNotice[] {
    return this.cpu.checkConfig(settings);
  }
}
