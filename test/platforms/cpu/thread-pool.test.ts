// The thread pool's share claiming: each worker share runs exactly once, on its worker or, when the main
// thread is done with its own share before the worker wakes, on the main thread. First the claim protocol
// on a bare control block (deterministic, no threads), then a real two-thread pool running silu_and_mul
// split into uneven shares, whose output must equal the one-thread result bit for bit.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  compileKernelModule,
  instantiateKernels,
  STATIC_RESERVE_BYTES,
} from '../../../src/platforms/cpu/kernel-module.js';
import * as P from '../../../src/platforms/cpu/pool-protocol.js';
import { GemmThreadPool } from '../../../src/platforms/cpu/thread-pool.js';
import { enableWasmFeatures } from '../../../src/platforms/cpu/wasm-features.js';

describe('pool protocol: claiming a share', () => {
  const numThreads = 3;
  const ctl = new Int32Array(P.controlBlockLength(numThreads));
  const setState = (t: number, job: number, code: number) =>
    Atomics.store(ctl, P.shareStateOffset(numThreads, t), P.shareState(job, code));

  it('gives a pending share to the first claimant only', () => {
    setState(1, 7, P.SHARE_PENDING);
    assert.equal(P.tryClaimShare(ctl, numThreads, 1, 7, P.SHARE_TAKEN), true);
    assert.equal(P.tryClaimShare(ctl, numThreads, 1, 7, P.SHARE_RUNNING), false);
    setState(2, 7, P.SHARE_PENDING);
    assert.equal(P.tryClaimShare(ctl, numThreads, 2, 7, P.SHARE_RUNNING), true);
    assert.equal(P.tryClaimShare(ctl, numThreads, 2, 7, P.SHARE_TAKEN), false);
  });

  it('refuses a claim for another job than the current one', () => {
    setState(1, 8, P.SHARE_PENDING);
    // A worker that woke for job 7 after job 7 ended and job 8 began.
    assert.equal(P.tryClaimShare(ctl, numThreads, 1, 7, P.SHARE_RUNNING), false);
    assert.equal(P.tryClaimShare(ctl, numThreads, 1, 8, P.SHARE_RUNNING), true);
  });

  it('keeps job numbers apart across the int32 wrap', () => {
    const last = 0x7fffffff;
    const next = (last + 1) | 0;
    assert.notEqual(P.shareState(last, P.SHARE_PENDING), P.shareState(next, P.SHARE_PENDING));
    setState(1, next, P.SHARE_PENDING);
    assert.equal(P.tryClaimShare(ctl, numThreads, 1, last, P.SHARE_TAKEN), false);
    assert.equal(P.tryClaimShare(ctl, numThreads, 1, next, P.SHARE_TAKEN), true);
  });

  it('keeps the state slots apart from the arguments and the error message', () => {
    for (let t = 0; t < numThreads; t++) {
      assert.ok(P.shareStateOffset(numThreads, t) >= P.ARGS + numThreads * P.ARGS_PER_THREAD);
      assert.ok(P.shareStateOffset(numThreads, t) < P.errorMessageOffset(numThreads));
    }
    assert.equal(P.controlBlockLength(numThreads), P.errorMessageOffset(numThreads) + P.ERR_MSG_LEN);
  });
});

describe('thread pool: two threads, uneven shares', () => {
  const d = 64;
  const maxRows = 2048;
  let pool: GemmThreadPool;
  let memory: WebAssembly.Memory;
  let silu: (out: number, gateUp: number, m: number, d: number) => void;
  const outPtr = STATIC_RESERVE_BYTES;
  const gateUpPtr = outPtr + maxRows * d * 4;

  before(async () => {
    enableWasmFeatures();
    const module = compileKernelModule(false);
    const pages = Math.ceil((gateUpPtr + 2 * maxRows * d * 4) / 65536);
    memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    const exports = instantiateKernels(module, memory).exports as unknown as {
      silu_and_mul(out: number, gateUp: number, m: number, d: number): void;
    };
    silu = exports.silu_and_mul;
    // No spinning: a worker sleeps in Atomics.wait between jobs, as one that lost its core would be late.
    pool = await GemmThreadPool.create(module, { numThreads: 2, spin: 0 });
    pool.addArena(0, memory);
  });

  after(async () => {
    await pool.dispose();
  });

  /** Runs silu_and_mul over `m` rows, rows [0, split) as share 0 and [split, m) as share 1. */
  function runSplit(m: number, split: number): void {
    const share = (r0: number, r1: number) => [outPtr + r0 * d * 4, gateUpPtr + r0 * 2 * d * 4, r1 - r0, d];
    pool.runKernel(0, 'silu_and_mul', [share(0, split), share(split, m)], (a) =>
      silu(a[0]!, a[1]!, a[2]!, a[3]!),
    );
  }

  it('runs every share exactly once, on whichever thread claims it, with the one-thread result', () => {
    const gateUp = new Float32Array(memory.buffer, gateUpPtr, 2 * maxRows * d);
    for (let i = 0; i < gateUp.length; i++) gateUp[i] = Math.sin(i * 0.37) * 4;
    const out = new Float32Array(memory.buffer, outPtr, maxRows * d);
    silu(outPtr, gateUpPtr, maxRows, d);
    const expected = out.slice();
    const before = pool.shareCounts();
    const claims = () => {
      const c = pool.shareCounts();
      return {
        jobs: c.jobs - before.jobs,
        byMain: c.byMain - before.byMain,
        byWorkers: c.byWorkers - before.byWorkers,
      };
    };
    // 400 jobs, and more (up to 10 s) until both kinds of claim have happened: on a loaded machine a worker
    // can miss its chances for a while, but a futex wake-up takes microseconds, a one-row share far less
    // and a 64-row-plus share more, so both kinds come early on an idle machine and eventually on any.
    const deadline = performance.now() + 10_000;
    let numJobs = 0;
    for (
      let j = 0;
      j < 400 || ((claims().byMain === 0 || claims().byWorkers === 0) && performance.now() < deadline);
      j++
    ) {
      out.fill(Number.NaN);
      // Even jobs: the main thread's share is one row, so it is done long before a sleeping worker wakes
      // and takes the worker's share itself. Odd jobs: the main thread's share is most of the rows, so the
      // worker wakes while it runs and claims its own.
      const m = 64 + ((j * 97) % (maxRows - 64));
      const split = j % 2 === 0 ? 1 : m - 1;
      runSplit(m, split);
      assert.deepEqual(
        out.subarray(0, m * d),
        expected.subarray(0, m * d),
        `job ${j}: ${m} rows split at ${split}`,
      );
      numJobs++;
    }
    const { jobs, byMain, byWorkers } = claims();
    assert.equal(jobs, numJobs);
    assert.equal(byMain + byWorkers, numJobs, 'each worker share ran once');
    assert.ok(byMain > 0, `the main thread took no share (${byWorkers} ran on the worker)`);
    assert.ok(byWorkers > 0, `the worker ran no share (${byMain} ran on the main thread)`);
  });

  it('runs a job on every worker when asked to, however late the worker', () => {
    const before = pool.shareCounts();
    for (let j = 0; j < 50; j++) {
      pool.runKernel(
        0,
        'silu_and_mul',
        [
          [outPtr, gateUpPtr, 0, d],
          [outPtr, gateUpPtr, 0, d],
        ],
        () => {},
        'every worker',
      );
    }
    const counts = pool.shareCounts();
    assert.equal(counts.byWorkers - before.byWorkers, 50);
    assert.equal(counts.byMain - before.byMain, 0);
  });
});
