// The hardware platform contract, after vLLM's platform interface: everything device-specific that the
// engine, the rank workers and the model need — per-thread start-up setup, memory figures, the kernel set
// (which also allocates the activation buffers and the KV cache) and a check of the engine configuration.
// The WebAssembly CPU platform (src/platforms/cpu) is the in-tree implementation; other devices come as
// plugins (src/platforms/plugin.ts, docs/platforms.md).
//
// Version 1 of the contract assumes host-addressable device memory: buffers are Float32Array / Int32Array
// views that the kernels read and write in place (CPU platforms, unified memory). Collectives are Duet's
// own (shared memory between threads, TCP between hosts), run on those buffers.
//
// There are no streams or events: dual-batch overlap interleaves two micro-batches at their awaited
// collectives (src/dbo), and a collective's handle (`Communicator` ops return one) is the only event the
// model waits on.

import type { Kernels } from '../kernels/kernels.js';

/** The contract version this build of Duet speaks; a plugin declaring another is skipped. */
export const PLATFORM_CONTRACT_VERSION = 1;

/**
 * The precision of the activations that enter matrix products (vLLM's `--dtype` for compute):
 * `float32`: float32-grade results (the golden suite's 1e-3); `bfloat16`: activations rounded to bf16,
 * products accumulated in float32, on platforms that have a bf16 matmul (others compute float32).
 */
export type ComputeDType = 'float32' | 'bfloat16';

export interface KernelOptions {
  /** Compute threads (worker threads plus the calling thread); default: every core. */
  readonly numThreads?: number;
  /** Default `float32`. The engine passes `bfloat16` for `--dtype bfloat16`. */
  readonly computeDType?: ComputeDType;
}

/** A notice about the configuration: a setting with no meaning on this platform, or adjusted. */
export interface PlatformNotice {
  readonly setting: string;
  readonly message: string;
}

export interface Platform {
  /** Short platform name, e.g. `cpu`: what `--device` takes. */
  readonly name: string;
  /** Human-readable device description (processor model, core count). */
  readonly deviceName: string;
  /**
   * Start-up feature setup of the calling thread (the CPU platform switches on WebAssembly relaxed SIMD
   * here). Duet calls it once in every thread that loads the platform — the engine's thread and each rank
   * worker — before `createKernels`. Must be cheap and idempotent.
   */
  prepareThread(): void;
  /** Bytes of device memory in all (the KV cache is sized from it). */
  totalMemoryBytes(): number;
  /** Bytes of device memory free now (reported by `duet env`). */
  availableMemoryBytes(): number;
  /** Builds the kernel set (compiles kernels, starts compute threads). */
  createKernels(opts?: KernelOptions): Promise<Kernels>;
  /** Checks engine settings for this platform: returns notices for settings that have no meaning here. */
  checkConfig(settings: Readonly<Record<string, unknown>>): PlatformNotice[];
}
