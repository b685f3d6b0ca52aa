// The GEMM thread pool: the main thread plus (numThreads − 1) worker_threads that share the arenas'
// memories; besides the GEMM it runs a few other kernels split by thread (THREADED_KERNELS). A job is started by bumping a sequence number in a shared control block; each thread runs
// its own share (thread 0 on the main thread), and the main thread waits for the workers' done count.
// Workers spin briefly before sleeping in Atomics.wait (a futex round trip costs ~15 µs), and are
// unref'd so that a forgotten dispose() does not keep Node alive.

import { MessageChannel, type MessagePort, Worker } from 'node:worker_threads';
import * as P from './pool-protocol.js';

/** Arguments of one thread's GEMM share, as for the wasm `gemm` export. */
export interface GemmShare {
  out: number;
  xp: number;
  w: number;
  m: number;
  n: number;
  k: number;
  bf16: number;
  p0: number;
  p1: number;
  r0: number;
  r1: number;
  kc: number;
  /** This thread's bf16 widening buffer, or 0. */
  buf: number;
}

/** A worker's job failed; the message is the worker's. */
export class PoolWorkerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PoolWorkerError';
  }
}

/** The pool was used after dispose(). */
export class PoolDisposedError extends Error {
  constructor() {
    super('GEMM thread pool used after dispose()');
    this.name = 'PoolDisposedError';
  }
}

/** Rows [0, m) cut into `parts` consecutive ranges [r0, r1) whose sizes differ by at most one. */
export function evenRowRanges(m: number, parts: number): [number, number][] {
  return Array.from({ length: parts }, (_, t) => [
    Math.floor((t * m) / parts),
    Math.floor(((t + 1) * m) / parts),
  ]);
}

export interface ThreadPoolOptions {
  /** Threads in all, including the main thread (≥ 1). */
  numThreads: number;
  /** Spin iterations of an idle worker (and of the waiting main thread) before Atomics.wait. */
  spin: number;
}

export class GemmThreadPool {
  readonly numThreads: number;
  private readonly ctl: Int32Array;
  private readonly args: Uint32Array;
  private readonly workers: Worker[] = [];
  private readonly ports: MessagePort[] = [];
  private readonly spin: number;
  private disposed = false;

  private constructor(opts: ThreadPoolOptions) {
    this.numThreads = opts.numThreads;
    this.spin = opts.spin;
    const sab = new SharedArrayBuffer(P.controlBlockLength(opts.numThreads) * 4);
    this.ctl = new Int32Array(sab);
    this.args = new Uint32Array(sab);
  }

  /** Starts the workers (each compiles nothing: it instantiates `module` on each arena's memory). */
  static async create(module: WebAssembly.Module, opts: ThreadPoolOptions): Promise<GemmThreadPool> {
    const pool = new GemmThreadPool(opts);
    const started: Promise<void>[] = [];
    for (let t = 1; t < opts.numThreads; t++) {
      const { port1, port2 } = new MessageChannel();
      const data: P.PoolWorkerData = {
        control: pool.ctl.buffer as SharedArrayBuffer,
        thread: t,
        numThreads: opts.numThreads,
        module,
        spin: opts.spin,
        port: port2,
      };
      // execArgv: [] — the parent's flags (e.g. --input-type with -e) can break a worker's module loading.
      const worker = new Worker(new URL('./pool-thread.js', import.meta.url), {
        workerData: data,
        transferList: [port2],
        execArgv: [],
      });
      started.push(
        new Promise<void>((resolve, reject) => {
          worker.once('message', () => resolve());
          worker.once('error', reject);
          worker.once('exit', (code) =>
            reject(new PoolWorkerError(`pool worker ${t} exited with code ${code} at start`)),
          );
        }),
      );
      pool.workers.push(worker);
      pool.ports.push(port1);
    }
    try {
      await Promise.all(started);
    } catch (e) {
      await pool.dispose();
      throw e;
    }
    // A first, empty job: returns once every worker has entered its loop.
    pool.run(P.OP_NOP, 0, () => {});
    // From now on the workers must not keep Node alive (they block in Atomics.wait, never on their loop).
    for (const w of pool.workers) w.unref();
    for (const port of pool.ports) port.unref();
    return pool;
  }

  /** Makes a new arena's memory known to the workers (they instantiate it before its first job). */
  addArena(index: number, memory: WebAssembly.Memory): void {
    if (this.disposed) throw new PoolDisposedError();
    const msg: P.ArenaMessage = { arena: index, memory };
    for (const port of this.ports) port.postMessage(msg);
  }

  /**
   * Runs a GEMM split into `shares` (shares[0] on the main thread through `mainGemm`, shares[t] on worker
   * t; fewer shares than threads leave the rest idle) in arena `arena`, and returns when all are done.
   */
  runGemm(arena: number, shares: readonly GemmShare[], mainGemm: (s: GemmShare) => void): void {
    for (let t = 1; t < this.numThreads; t++) {
      const s = shares[t];
      const b = P.ARGS + t * P.ARGS_PER_THREAD;
      if (s === undefined) {
        this.args.fill(0, b, b + P.ARGS_PER_THREAD);
        continue;
      }
      this.args[b] = s.out;
      this.args[b + 1] = s.xp;
      this.args[b + 2] = s.w;
      this.args[b + 3] = s.m;
      this.args[b + 4] = s.n;
      this.args[b + 5] = s.k;
      this.args[b + 6] = s.bf16;
      this.args[b + 7] = s.p0;
      this.args[b + 8] = s.p1;
      this.args[b + 9] = s.r0;
      this.args[b + 10] = s.r1;
      this.args[b + 11] = s.kc;
      this.args[b + 12] = s.buf;
    }
    const first = shares[0];
    this.run(P.OP_GEMM, arena, () => {
      if (first !== undefined && first.p0 < first.p1 && first.r0 < first.r1) mainGemm(first);
    });
  }

  /**
   * Runs threaded kernel `kernel` (one of THREADED_KERNELS) in arena `arena`: worker t with the arguments
   * `shares[t]` (none: idle), and the main thread through `mainCall` (its own share); returns when all are
   * done. Arguments are i32 values (f32 as bit patterns), at most ARGS_PER_THREAD − 1 per thread.
   */
  runKernel(
    arena: number,
    kernel: P.ThreadedKernel,
    shares: readonly (readonly number[] | null)[],
    mainCall: () => void,
  ): void {
    const id = P.THREADED_KERNELS.indexOf(kernel);
    for (let t = 1; t < this.numThreads; t++) {
      const s = shares[t];
      const b = P.ARGS + t * P.ARGS_PER_THREAD;
      if (s === undefined || s === null) {
        this.args[b] = P.NO_SHARE;
        continue;
      }
      if (s.length > P.ARGS_PER_THREAD - 1) {
        throw new RangeError(`runKernel: ${s.length} arguments; at most ${P.ARGS_PER_THREAD - 1} fit`);
      }
      this.args[b] = id;
      for (let i = 0; i < s.length; i++) this.args[b + 1 + i] = s[i]! >>> 0;
    }
    this.run(P.OP_KERNEL, arena, mainCall);
  }

  /**
   * Reads `bytes[t]` bytes at `start[t]` on thread t (thread 0 through `mainRead`), all at once: for
   * measuring the read bandwidth with this pool's threads.
   */
  runStream(arena: number, starts: readonly number[], bytes: readonly number[], mainRead: () => void): void {
    for (let t = 1; t < this.numThreads; t++) {
      const b = P.ARGS + t * P.ARGS_PER_THREAD;
      this.args[b] = starts[t] ?? 0;
      this.args[b + 1] = bytes[t] ?? 0;
    }
    this.run(P.OP_STREAM, arena, mainRead);
  }

  /** Stops the workers; resolves when they have exited. The pool is unusable afterwards. */
  async dispose(): Promise<void> {
    if (this.disposed) return;
    const exited = this.workers.map((w) => {
      w.ref();
      return new Promise<void>((resolve) => w.once('exit', () => resolve()));
    });
    Atomics.store(this.ctl, P.OP, P.OP_EXIT);
    Atomics.add(this.ctl, P.SEQ, 1);
    Atomics.notify(this.ctl, P.SEQ);
    this.disposed = true;
    for (const port of this.ports) port.close();
    await Promise.all(exited);
  }

  /** Starts job `op`, runs the main thread's part, waits for the workers, rethrows a worker's error. */
  private run(op: number, arena: number, mainPart: () => void): void {
    if (this.disposed) throw new PoolDisposedError();
    const ctl = this.ctl;
    const numWorkers = this.numThreads - 1;
    if (numWorkers === 0) {
      mainPart();
      return;
    }
    Atomics.store(ctl, P.DONE, 0);
    Atomics.store(ctl, P.ERROR, 0);
    Atomics.store(ctl, P.OP, op);
    Atomics.store(ctl, P.ARENA, arena);
    Atomics.add(ctl, P.SEQ, 1);
    Atomics.notify(ctl, P.SEQ);
    try {
      mainPart();
    } finally {
      let done = Atomics.load(ctl, P.DONE);
      for (let i = 0; done < numWorkers && i < this.spin; i++) done = Atomics.load(ctl, P.DONE);
      while (done < numWorkers) {
        Atomics.wait(ctl, P.DONE, done);
        done = Atomics.load(ctl, P.DONE);
      }
    }
    if (Atomics.load(ctl, P.ERROR) !== 0) {
      const at = P.errorMessageOffset(this.numThreads);
      let msg = '';
      for (let i = 0; i < P.ERR_MSG_LEN && ctl[at + i] !== 0; i++) msg += String.fromCharCode(ctl[at + i]!);
      throw new PoolWorkerError(msg);
    }
  }
}
