// The control block shared by the GEMM thread pool and its workers: an Int32Array over a
// SharedArrayBuffer, written by the main thread, read by the workers, synchronised with Atomics.
//
//   [SEQ]    job number; the main thread bumps it (and notifies) to start a job
//   [OP]     what to run (OP_*)
//   [ARENA]  index of the arena (memory) the job runs in
//   [ERROR]  set to 1 by a worker whose job threw (its message is in [ERR_MSG...])
//   [ARGS + t·ARGS_PER_THREAD ...] the arguments of thread t (thread 0 is the main thread), as uint32
//   [shareStateOffset + t] the state of share t in the current job (shareState), for t ≥ 1
//
// A share is claimed once, with a compare-and-swap on its state: by worker t when it wakes (pending →
// running, then done), or, when the main thread has finished its own share first, by the main thread
// (pending → taken), which then runs it itself. So a worker that is slow to wake (asleep in a futex, or
// off its core because the 2 cores are busy with other threads) never holds the job up: the main thread
// waits only for shares a worker has already started. States carry the job number, so a worker that wakes
// after its job is over cannot claim a later job's share by mistake.

import type { MessagePort } from 'node:worker_threads';

/** Start of a job: bumped by the main thread. */
export const SEQ = 0;
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
 * One of THREADED_KERNELS: its index in the thread's first argument slot, its arguments (i32, f32 as bit
 * patterns) in the slots after.
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

/** Share t waits for a thread to claim it. */
export const SHARE_PENDING = 0;
/** Worker t claimed share t and runs it. */
export const SHARE_RUNNING = 1;
/** Worker t finished share t (and notified the slot). */
export const SHARE_DONE = 2;
/** The main thread claimed share t (to run it itself), or the job has no share t. */
export const SHARE_TAKEN = 3;

/** The state slot's value for share state `code` (SHARE_*) in job `job` (the job's SEQ value). */
export function shareState(job: number, code: number): number {
  return (job << 2) | code | 0;
}

/** Offset of share t's state slot (t ≥ 1) in a control block for `numThreads` threads. */
export function shareStateOffset(numThreads: number, t: number): number {
  return ARGS + numThreads * ARGS_PER_THREAD + t;
}

/**
 * Claims share t of job `job` for `code` (SHARE_RUNNING: the worker; SHARE_TAKEN: the main thread) if it
 * is still pending; true when this caller got it. Exactly one caller gets a pending share.
 */
export function tryClaimShare(
  ctl: Int32Array,
  numThreads: number,
  t: number,
  job: number,
  code: number,
): boolean {
  const pending = shareState(job, SHARE_PENDING);
  return (
    Atomics.compareExchange(ctl, shareStateOffset(numThreads, t), pending, shareState(job, code)) === pending
  );
}

/** Int32 slots of a control block for `numThreads` threads. */
export function controlBlockLength(numThreads: number): number {
  return errorMessageOffset(numThreads) + ERR_MSG_LEN;
}

/** Offset of the error message in a control block for `numThreads` threads. */
export function errorMessageOffset(numThreads: number): number {
  return ARGS + numThreads * ARGS_PER_THREAD + numThreads;
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
