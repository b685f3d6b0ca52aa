// A GEMM pool worker thread: instantiates the kernel module on every arena's memory, then loops forever
// (synchronously, never returning to its event loop) waiting for jobs on the control block: spin a
// little, then Atomics.wait; claim its share (of a GEMM, or of another threaded kernel) unless the main
// thread already took it; run it; mark it done. New arenas arrive on a port that it drains synchronously
// when a job names an arena it has not seen.

import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { nameThisThread } from '../../util/thread-name.js';
import { type GemmExports, gemmExports, instantiateKernels } from './kernel-module.js';
import * as P from './pool-protocol.js';
import { enableWasmFeatures } from './wasm-features.js';

function runWorker(data: P.PoolWorkerData): void {
  const ctl = new Int32Array(data.control);
  const args = new Uint32Array(data.control);
  const arenas: GemmExports[] = [];
  /** Per arena: the exports that OP_KERNEL jobs run. */
  const kernelFns: Partial<Record<P.ThreadedKernel, (...args: number[]) => void>>[] = [];
  const base = P.ARGS + data.thread * P.ARGS_PER_THREAD;
  const errAt = P.errorMessageOffset(data.numThreads);
  const stateAt = P.shareStateOffset(data.numThreads, data.thread);

  const syncArenas = (want: number): void => {
    while (arenas[want] === undefined) {
      const msg = receiveMessageOnPort(data.port);
      if (msg === undefined) throw new Error(`pool worker ${data.thread}: arena ${want} was never sent`);
      const { arena, memory } = msg.message as P.ArenaMessage;
      const instance = instantiateKernels(data.module, memory);
      arenas[arena] = gemmExports(instance);
      kernelFns[arena] = Object.fromEntries(
        P.THREADED_KERNELS.map((n) => [n, instance.exports[n] as (...args: number[]) => void]),
      );
    }
  };

  // The control block starts at job 0; a job posted before this thread got here is still seen.
  let seen = 0;
  // Tell the pool this thread is loaded and about to wait for jobs.
  parentPort?.postMessage('ready');
  for (;;) {
    let seq = Atomics.load(ctl, P.SEQ);
    for (let i = 0; seq === seen && i < data.spin; i++) seq = Atomics.load(ctl, P.SEQ);
    while (seq === seen) {
      Atomics.wait(ctl, P.SEQ, seen);
      seq = Atomics.load(ctl, P.SEQ);
    }
    seen = seq;
    if (Atomics.load(ctl, P.OP) === P.OP_EXIT) break;
    // The main thread took this share (it finished its own first), or the job is already over.
    if (!P.tryClaimShare(ctl, data.numThreads, data.thread, seq, P.SHARE_RUNNING)) continue;
    // Claimed: the job stays `seq` (the main thread waits for this share) until it is marked done. Only a
    // share with work is ever pending, so what follows runs it unconditionally.
    const op = Atomics.load(ctl, P.OP);
    try {
      if (op === P.OP_GEMM || op === P.OP_STREAM) {
        const a = Atomics.load(ctl, P.ARENA);
        syncArenas(a);
        const k = arenas[a]!;
        if (op === P.OP_GEMM) {
          k.gemm(
            args[base]!,
            args[base + 1]!,
            args[base + 2]!,
            args[base + 3]!,
            args[base + 4]!,
            args[base + 5]!,
            args[base + 6]!,
            args[base + 7]!,
            args[base + 8]!,
            args[base + 9]!,
            args[base + 10]!,
            args[base + 11]!,
            args[base + 12]!,
          );
        } else {
          k.streamSum(args[base]!, args[base + 1]!);
        }
      } else if (op === P.OP_KERNEL) {
        const a = Atomics.load(ctl, P.ARENA);
        syncArenas(a);
        const name = P.THREADED_KERNELS[args[base]!];
        const fn = name === undefined ? undefined : kernelFns[a]?.[name];
        if (fn === undefined) throw new Error(`no threaded kernel number ${args[base]}`);
        fn(...args.subarray(base + 1, base + P.ARGS_PER_THREAD));
      }
    } catch (e) {
      const msg = `pool worker ${data.thread}: ${String(e)}`.slice(0, P.ERR_MSG_LEN);
      for (let i = 0; i < P.ERR_MSG_LEN; i++) ctl[errAt + i] = i < msg.length ? msg.charCodeAt(i) : 0;
      Atomics.store(ctl, P.ERROR, 1);
    }
    Atomics.store(ctl, stateAt, P.shareState(seq, P.SHARE_DONE));
    Atomics.notify(ctl, stateAt);
  }
  data.port.close();
}

// Before anything compiles or instantiates in this thread.
enableWasmFeatures();
nameThisThread(`duet-kernels-${(workerData as P.PoolWorkerData).thread}`);
runWorker(workerData as P.PoolWorkerData);
