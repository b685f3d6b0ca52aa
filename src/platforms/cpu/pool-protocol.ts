// The control block shared by the GEMM thread pool and its workers: an Int32Array over a
// SharedArrayBuffer, written by the main thread, read by the workers, synchronised with Atomics.
//
//   [SEQ]    job number; the main thread bumps it (and notifies) to start a job
//   [DONE]   workers that finished the current job; the last one notifies
//   [OP]     what to run (OP_*)
//   [ARENA]  index of the arena (memory) the job runs in
//   [ERROR]  set to 1 by a worker whose job threw (its message is in [ERR_MSG...])
//   [ARGS + t·ARGS_PER_THREAD ...] the arguments of thread t (thread 0 is the main thread), as uint32

import type { MessagePort } from 'node:worker_threads';

/** Start of a job: bumped by the main thread. */
export const SEQ = 0;
/** Finished workers of the current job. */
export const DONE = 1;
/** The operation (OP_*). */
export const OP = 2;
/** The arena the job runs in. */
export const ARENA = 3;
/** Nonzero when a worker's job threw. */
export const ERROR = 4;
/** Number of uint32 arguments per thread. */
export const ARGS_PER_THREAD = 24;
/** First argument slot. */
export const ARGS = 8;
/** Room for an error message (UTF-16 code units as int32) after the arguments. */
export const ERR_MSG_LEN = 256;

/** gemm(out, xp, w, m, n, k, bf16, p0, p1, r0, r1, kc, buf): see src/kernels/wasm/gemm/gemm.ts. */
export const OP_GEMM = 1;
/** streamSum(p, bytes): a timed read of memory for the bandwidth benchmark. */
export const OP_STREAM = 2;
/** Leave the worker loop. */
export const OP_EXIT = 3;
/** Nothing to do but acknowledge (used to check the workers are alive and synced). */
export const OP_NOP = 4;
/**
 * One of THREADED_KERNELS: its index in the thread's first argument slot (NO_SHARE: nothing for this
 * thread), its arguments (i32, f32 as bit patterns) in the slots after.
 */
export const OP_KERNEL = 5;

/** Kernel-module exports that a job of OP_KERNEL can run, each thread on its own share. */
export const THREADED_KERNELS = [
  'gemm_heads',
  'mla_attention_batch',
  'mha_attention',
  'gemm_i8',
  'gemm_i8_group',
  'i8_dot_peak',
  'quant_dynamic',
  'quant_dynamic_group',
  'silu_and_mul',
] as const;
export type ThreadedKernel = (typeof THREADED_KERNELS)[number];
/** The first argument of a thread without a share in an OP_KERNEL job. */
export const NO_SHARE = 0xffffffff;

/** Int32 slots of a control block for `numThreads` threads. */
export function controlBlockLength(numThreads: number): number {
  return ARGS + numThreads * ARGS_PER_THREAD + ERR_MSG_LEN;
}

/** Offset of the error message in a control block for `numThreads` threads. */
export function errorMessageOffset(numThreads: number): number {
  return ARGS + numThreads * ARGS_PER_THREAD;
}

/** What the main thread hands each worker at start. */
export interface PoolWorkerData {
  /** The control block's buffer. */
  control: SharedArrayBuffer;
  /** This worker's thread number (1..numThreads−1; 0 is the main thread). */
  thread: number;
  numThreads: number;
  /** The compiled kernel module. */
  module: WebAssembly.Module;
  /** Spin iterations before Atomics.wait when idle. */
  spin: number;
  /** A port on which new arenas arrive (read synchronously with receiveMessageOnPort). */
  port: MessagePort;
}

/** A message on the worker's port: a new arena's memory. */
export interface ArenaMessage {
  arena: number;
  memory: WebAssembly.Memory;
}
