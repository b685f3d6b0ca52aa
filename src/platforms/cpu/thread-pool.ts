// The GEMM thread pool: the main thread plus (numThreads − 1) worker_threads that share the arenas'
// memories; besides the GEMM it runs a few other kernels split by thread (THREADED_KERNELS). A job is
// started by bumping a sequence number in a shared control block; share t is meant for thread t (share 0
// runs on the main thread). When the main thread has finished its own share, it takes every share whose
// worker has not woken yet and runs it itself, then waits only for the shares workers have started
// (pool-protocol.ts): on 2 cores shared with a server's HTTP thread, a worker can be off its core for a
// scheduler slice, far longer than a small kernel's share. Workers spin briefly before sleeping in
// Atomics.wait (a futex round trip costs ~15 µs), and are unref'd so that a forgotten dispose() does not
// keep Node alive.

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

/** What the pool's jobs did with their workers' shares, counted since the pool started. */
export interface PoolShareCounts {
  /** Jobs run with at least one worker share. */
  jobs: number;
  /** Worker shares that their worker ran. */
  byWorkers: number;
  /** Worker shares that the main thread took and ran itself, their worker not yet awake. */
  byMain: number;
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
  private readonly counts: PoolShareCounts = { jobs: 0, byWorkers: 0, byMain: 0 };

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
    // A first, empty job that every worker must run: returns once every worker has entered its loop.
    pool.run(
      P.OP_NOP,
      0,
      () => true,
      () => {},
      'every worker',
    );
    pool.counts.jobs = pool.counts.byWorkers = 0;
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

  /** The counts of worker shares run by their workers and by the main thread, so far. */
  shareCounts(): PoolShareCounts {
    return { ...this.counts };
  }

  /**
   * Runs a GEMM split into `shares` in arena `arena` (shares[t] for worker t, or through `runShare` on the
   * main thread if worker t has not woken by the time the main thread is done with shares[0]; fewer shares
   * than threads leave the rest idle), and returns when all are done.
   */
  runGemm(arena: number, shares: readonly GemmShare[], runShare: (s: GemmShare) => void): void {
    const hasWork = (s: GemmShare | undefined): s is GemmShare =>
      s !== undefined && s.p0 < s.p1 && s.r0 < s.r1;
    for (let t = 1; t < this.numThreads; t++) {
      const s = shares[t];
      // A share without work is never pending (see run), so its worker reads no arguments.
      if (!hasWork(s)) continue;
      const b = P.ARGS + t * P.ARGS_PER_THREAD;
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
    this.run(
      P.OP_GEMM,
      arena,
      (t) => hasWork(shares[t]),
      (t) => {
        const s = shares[t];
        if (hasWork(s)) runShare(s);
      },
    );
  }

  /**
   * Runs threaded kernel `kernel` (one of THREADED_KERNELS) in arena `arena` over `shares` (arguments of
   * one share each; null or missing: none): shares[0] through `runShare` on the main thread, shares[t] on
   * worker t, or through `runShare` on the main thread if worker t has not woken by the time shares[0] is
   * done. With `together` ('every worker': for measurements of all threads at once) each worker runs its
   * own share, however late. Returns when all are done. Arguments are i32 values (f32 as bit patterns), at
   * most ARGS_PER_THREAD − 1 per share.
   */
  runKernel<Share extends readonly number[]>(
    arena: number,
    kernel: P.ThreadedKernel,
    shares: readonly (Share | null)[],
    runShare: (args: Share) => void,
    together: 'every worker' | 'any thread' = 'any thread',
  ): void {
    const id = P.THREADED_KERNELS.indexOf(kernel);
    for (let t = 1; t < this.numThreads; t++) {
      const s = shares[t];
      if (s == null) continue; // no share: never pending (see run), so its worker reads no arguments
      const b = P.ARGS + t * P.ARGS_PER_THREAD;
      if (s.length > P.ARGS_PER_THREAD - 1) {
        throw new RangeError(`runKernel: ${s.length} arguments; at most ${P.ARGS_PER_THREAD - 1} fit`);
      }
      this.args[b] = id;
      for (let i = 0; i < s.length; i++) this.args[b + 1 + i] = s[i]! >>> 0;
    }
    this.run(
      P.OP_KERNEL,
      arena,
      (t) => shares[t] != null,
      (t) => {
        const s = shares[t];
        if (s != null) runShare(s);
      },
      together,
    );
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
    this.run(
      P.OP_STREAM,
      arena,
      (t) => (bytes[t] ?? 0) > 0,
      (t) => {
        if (t === 0) mainRead();
      },
      'every worker',
    );
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

  /**
   * Starts job `op` with a share for each worker t where `hasShare(t)`, runs share 0 on this thread
   * (`runOnMain(0)`), then, unless `together` is 'every worker', takes each share its worker has not
   * claimed yet and runs it here (`runOnMain(t)`); waits for the shares workers claimed; rethrows the first
   * error, this thread's or a worker's. After an error here the shares not yet started are dropped.
   */
  private run(
    op: number,
    arena: number,
    hasShare: (t: number) => boolean,
    runOnMain: (t: number) => void,
    together: 'every worker' | 'any thread' = 'any thread',
  ): void {
    if (this.disposed) throw new PoolDisposedError();
    const ctl = this.ctl;
    const n = this.numThreads;
    if (n === 1) {
      runOnMain(0);
      return;
    }
    const job = (Atomics.load(ctl, P.SEQ) + 1) | 0;
    Atomics.store(ctl, P.ERROR, 0);
    Atomics.store(ctl, P.OP, op);
    Atomics.store(ctl, P.ARENA, arena);
    let numShares = 0;
    for (let t = 1; t < n; t++) {
      const share = hasShare(t);
      if (share) numShares++;
      Atomics.store(
        ctl,
        P.shareStateOffset(n, t),
        P.shareState(job, share ? P.SHARE_PENDING : P.SHARE_TAKEN),
      );
    }
    Atomics.store(ctl, P.SEQ, job);
    Atomics.notify(ctl, P.SEQ);
    if (numShares > 0) this.counts.jobs++;
    let error: unknown;
    let failed = false;
    try {
      runOnMain(0);
    } catch (e) {
      error = e;
      failed = true;
    }
    for (let t = 1; t < n; t++) {
      // Shares still pending: this thread's to run (or, after an error, to drop).
      if ((failed || together === 'any thread') && P.tryClaimShare(ctl, n, t, job, P.SHARE_TAKEN)) {
        if (failed) continue;
        this.counts.byMain++;
        try {
          runOnMain(t);
        } catch (e) {
          error = e;
          failed = true;
        }
        continue;
      }
      if (this.awaitShare(t, job)) this.counts.byWorkers++;
    }
    if (failed) throw error;
    if (Atomics.load(ctl, P.ERROR) !== 0) {
      const at = P.errorMessageOffset(n);
      let msg = '';
      for (let i = 0; i < P.ERR_MSG_LEN && ctl[at + i] !== 0; i++) msg += String.fromCharCode(ctl[at + i]!);
      throw new PoolWorkerError(msg);
    }
  }

  /** Waits until share t of `job` is done or taken; true when worker t ran it. */
  private awaitShare(t: number, job: number): boolean {
    const ctl = this.ctl;
    const at = P.shareStateOffset(this.numThreads, t);
    const done = P.shareState(job, P.SHARE_DONE);
    const taken = P.shareState(job, P.SHARE_TAKEN);
    let state = Atomics.load(ctl, at);
    for (let i = 0; state !== done && state !== taken && i < this.spin; i++) state = Atomics.load(ctl, at);
    while (state !== done && state !== taken) {
      Atomics.wait(ctl, at, state);
      state = Atomics.load(ctl, at);
    }
    return state === done;
  }
}
