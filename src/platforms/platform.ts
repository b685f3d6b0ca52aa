// The hardware platform contract, after vLLM's platform interface: everything device-specific that the
// engine, worker and model need — the kernel set, memory figures, streams and events for overlapping
// compute with communication, and a check of the engine configuration. The CPU platform (WebAssembly
// SIMD kernels on worker threads) is the in-tree implementation; other devices come as plugins.

import type { Kernels } from '../kernels/kernels.js';

/**
 * An ordered queue of work. On the CPU platform the compute stream runs work synchronously on the
 * calling thread and the communication stream runs it on the rank's communication thread.
 */
export interface Stream {
  readonly name: string;
  /** Enqueues `work`; the returned event completes when it has run (after all earlier work). */
  submit(work: () => Promise<void> | void): DeviceEvent;
}

/** Completion of work on a stream; waited on per micro-batch, never by draining a stream. */
export interface DeviceEvent {
  readonly isDone: boolean;
  wait(): Promise<void>;
}

export interface KernelOptions {
  /** Compute threads (worker threads plus the calling thread); default: every core. */
  readonly numThreads?: number;
}

/** A notice about the configuration: a setting with no meaning on this platform, or adjusted. */
export interface PlatformNotice {
  readonly setting: string;
  readonly message: string;
}

export interface Platform {
  /** Short platform name, e.g. `cpu`. */
  readonly name: string;
  /** Human-readable device description (processor model, core count). */
  readonly deviceName: string;
  /** Bytes of device memory in all. */
  totalMemoryBytes(): number;
  /** Bytes of device memory free now. */
  availableMemoryBytes(): number;
  /** Builds the kernel set (compiles kernels, starts compute threads). */
  createKernels(opts?: KernelOptions): Promise<Kernels>;
  /** A new stream of the given kind. */
  createStream(kind: 'compute' | 'communication'): Stream;
  /** The attention implementation used for MLA models on this platform. */
  attentionBackend(): 'mla-absorbed';
  /** Checks engine settings for this platform: returns notices for settings that have no meaning here. */
  checkConfig(settings: Readonly<Record<string, unknown>>): PlatformNotice[];
}
