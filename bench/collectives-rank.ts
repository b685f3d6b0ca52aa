// One rank of the collectives benchmark (bench/collectives.ts): as a worker thread (config in
// workerData, results by postMessage) or a process (config as a JSON argument, results on stdout). It
// times all-reduce for each size after a warm-up, between barriers, and measures the CPU time its
// communication thread and its own (compute) thread spent meanwhile (Linux: /proc/.../schedstat).

import { readFileSync } from 'node:fs';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { connectCommunicator } from '../src/distributed/connect.js';
import type { GroupDescriptor } from '../src/distributed/group.js';

export interface BenchRankConfig {
  readonly descriptor: GroupDescriptor;
  readonly rank: number;
  /** Bytes per all-reduce. */
  readonly sizes: readonly number[];
  /** Seconds to spend timing each size (at least 3 iterations). */
  readonly seconds: number;
  /**
   * Idle milliseconds before each timed op (a compute stage's length), not counted in its time: a shaped
   * link's token bucket refills meanwhile, as between the collectives of a step. 0: back to back.
   */
  readonly gapMs?: number;
}

export interface BenchRankResult {
  readonly rank: number;
  /** Seconds per all-reduce, per size: the mean back to back, the median op with a gap. */
  readonly secondsPerOp: number[];
  /** CPU seconds per all-reduce of the rank's communication thread, per size (NaN without /proc). */
  readonly commCpuPerOp: number[];
  /** CPU seconds per all-reduce of the calling (compute) thread: staging copies, handles. */
  readonly computeCpuPerOp: number[];
}

/** On-CPU seconds so far of thread `tid` of this process (`self`: the calling thread), NaN if unknown. */
function threadCpuSeconds(tid: number | 'self' | undefined): number {
  if (tid === undefined) return Number.NaN;
  try {
    const path = tid === 'self' ? '/proc/thread-self/schedstat' : `/proc/self/task/${tid}/schedstat`;
    return Number(readFileSync(path, 'utf8').split(' ')[0]) / 1e9;
  } catch {
    return Number.NaN;
  }
}

async function main(config: BenchRankConfig): Promise<BenchRankResult> {
  const comm = await connectCommunicator(config.descriptor, config.rank, { timeoutMs: 120_000 });
  const secondsPerOp: number[] = [];
  const commCpuPerOp: number[] = [];
  const computeCpuPerOp: number[] = [];
  for (const bytes of config.sizes) {
    const buf = new Float32Array(bytes / 4).fill(1);
    // Warm-up, and an estimate of how many iterations fit in the time budget (agreed through rank 0).
    const w0 = performance.now();
    for (let i = 0; i < 2; i++) await comm.allReduce(buf).wait();
    const gapMs = config.gapMs ?? 0;
    const estimate = new Float32Array([
      Math.max(3, Math.ceil((config.seconds * 1000) / ((performance.now() - w0) / 2 + gapMs))),
    ]);
    await comm.broadcast(estimate, 0).wait();
    const iterations = Math.min(10_000, estimate[0]!);
    await comm.barrier().wait();
    const t0 = performance.now();
    const comm0 = threadCpuSeconds(comm.commThreadId);
    const self0 = threadCpuSeconds('self');
    const opMs: number[] = [];
    for (let i = 0; i < iterations; i++) {
      if (gapMs > 0) await new Promise((resolve) => setTimeout(resolve, gapMs));
      const t = performance.now();
      await comm.allReduce(buf).wait();
      opMs.push(performance.now() - t);
    }
    await comm.barrier().wait();
    // Back to back: the mean (throughput); after a gap: the median op (a descheduled op is another cost).
    const median = opMs.sort((a, b) => a - b)[Math.floor(opMs.length / 2)]!;
    secondsPerOp.push(gapMs > 0 ? median / 1000 : (performance.now() - t0) / 1000 / iterations);
    commCpuPerOp.push((threadCpuSeconds(comm.commThreadId) - comm0) / iterations);
    computeCpuPerOp.push((threadCpuSeconds('self') - self0) / iterations);
  }
  await comm.close();
  return { rank: config.rank, secondsPerOp, commCpuPerOp, computeCpuPerOp };
}

const config = (isMainThread ? JSON.parse(process.argv[2] ?? '{}') : workerData) as BenchRankConfig;
void main(config).then((result) => {
  if (isMainThread) process.stdout.write(`${JSON.stringify(result)}\n`);
  else parentPort!.postMessage(result);
});
