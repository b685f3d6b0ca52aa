// Test helpers for the scheduling core: a seeded PRNG, a fake model runner that simulates the KV cache
// contents block by block (so a wrong block table or a bad prefix hit shows up as wrong "KV"), and an
// invariant checker for the scheduler, KV cache manager and block pool.

import assert from 'node:assert/strict';
import type { FinishReason } from '../../src/core/request.js';
import type { Scheduler } from '../../src/core/scheduler.js';
import type { ExecutorOutput, RequestStepOutput, SchedulerOutput } from '../../src/core/scheduler-output.js';

/** mulberry32: small, fast, seeded PRNG returning floats in [0, 1). */
export function makeRng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Integer in [lo, hi]. */
export function randInt(rng: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rng() * (hi - lo + 1));
}

/** The token the fake model "samples" as output number k of a request: depends only on (id, k). */
export function fakeToken(requestId: string, k: number, vocab = 1000): number {
  let h = 2166136261;
  for (let i = 0; i < requestId.length; i++) h = Math.imul(h ^ requestId.charCodeAt(i), 16777619);
  h = Math.imul(h ^ k, 16777619);
  h ^= h >>> 13;
  return (h >>> 0) % vocab;
}

/**
 * A stand-in for the model runner. Each KV slot remembers the token written to it; before computing a
 * request's new tokens it checks that every earlier position of the request's block table holds that
 * request's token there, which is what a real attention layer would read.
 */
export class FakeRunner {
  private readonly cells: Int32Array;

  constructor(
    private readonly scheduler: Scheduler,
    /** Token that the fake engine treats as EOS (finishes the request with 'stop'), or -1. */
    private readonly eosTokenId = -1,
  ) {
    const { numBlocks, blockSize } = scheduler.config;
    this.cells = new Int32Array(numBlocks * blockSize).fill(-1);
  }

  /** Checks the step against the requests, "computes" it and returns sampled tokens plus EOS finishes. */
  execute(out: SchedulerOutput): ExecutorOutput {
    const bs = this.scheduler.config.blockSize;
    const sampledTokenIds = new Map<string, number[]>();
    const finished = new Map<string, FinishReason>();
    for (const s of out.scheduledRequests) {
      const request = this.scheduler.getRequest(s.requestId);
      assert.ok(request !== undefined, `scheduled request ${s.requestId} is live`);
      const end = s.startPosition + s.numScheduledTokens;
      assert.ok(s.numScheduledTokens >= 1, 'at least one token per scheduled request');
      assert.equal(s.tokenIds.length, s.numScheduledTokens);
      assert.ok(end <= request.numTokens, 'never schedules tokens that are not known yet');
      assert.deepEqual(s.tokenIds, request.allTokenIds.slice(s.startPosition, end), 'scheduled token ids');
      assert.ok(s.blockIds.length * bs >= end, 'block table covers every scheduled position');
      assert.ok(s.blockIds.length <= Math.ceil(end / bs), 'no block beyond the last scheduled position');
      assert.equal(s.samplesToken, end === request.numTokens);
      for (let p = 0; p < s.startPosition; p++) {
        const cell = s.blockIds[Math.floor(p / bs)]! * bs + (p % bs);
        assert.equal(this.cells[cell], request.allTokenIds[p], `KV of ${s.requestId} position ${p}`);
      }
      for (let p = s.startPosition; p < end; p++) {
        this.cells[s.blockIds[Math.floor(p / bs)]! * bs + (p % bs)] = request.allTokenIds[p]!;
      }
      if (s.samplesToken) {
        const token = fakeToken(s.requestId, request.numOutputTokens);
        sampledTokenIds.set(s.requestId, [token]);
        if (token === this.eosTokenId) finished.set(s.requestId, 'stop');
      }
    }
    return { sampledTokenIds, finished };
  }
}

/** Checks every bookkeeping invariant of the scheduler, its KV cache manager and its block pool. */
export function checkInvariants(scheduler: Scheduler): void {
  const kv = scheduler.kvCacheManager;
  const pool = kv.pool;
  const bs = scheduler.config.blockSize;
  const running = scheduler.runningRequestIds();
  const waiting = scheduler.waitingRequestIds();
  assert.ok(running.length <= scheduler.config.maxNumSeqs, 'running requests within maxNumSeqs');
  assert.equal(new Set([...running, ...waiting]).size, running.length + waiting.length, 'queues disjoint');
  assert.equal(running.length + waiting.length, scheduler.numUnfinishedRequests, 'every live request queued');

  for (const id of running) {
    const r = scheduler.getRequest(id)!;
    assert.equal(r.status, 'running');
    assert.ok(kv.getBlockIds(id).length >= Math.ceil(r.numComputedTokens / bs), `${id} holds its KV`);
  }
  for (const id of waiting) {
    const r = scheduler.getRequest(id)!;
    assert.ok(r.status === 'waiting' || r.status === 'preempted', `${id} waiting status`);
    assert.equal(r.numComputedTokens, 0, 'waiting requests have nothing computed');
    assert.equal(kv.getBlockIds(id).length, 0, 'waiting requests hold no blocks');
  }

  // Reference counts equal the number of live tables holding each block; a block in two tables must be
  // a cached prefix block at the same index of both.
  const holders = new Map<number, { count: number; index: number }>();
  for (const id of kv.requestIds()) {
    assert.ok(running.includes(id), `only running requests hold blocks (${id})`);
    const ids = kv.getBlockIds(id);
    assert.equal(new Set(ids).size, ids.length, `no block twice in the table of ${id}`);
    ids.forEach((blockId, index) => {
      const seen = holders.get(blockId);
      if (seen === undefined) {
        holders.set(blockId, { count: 1, index });
      } else {
        assert.ok(pool.getBlock(blockId).cached !== null, `shared block ${blockId} is a cached block`);
        assert.equal(seen.index, index, `shared block ${blockId} at the same position in both tables`);
        seen.count++;
      }
    });
  }
  const free = pool.freeQueueBlockIds();
  assert.equal(new Set(free).size, free.length, 'no block twice in the free queue');
  assert.equal(free.length, pool.numFreeBlocks);
  const freeSet = new Set(free);
  for (let b = 0; b < pool.numBlocks; b++) {
    const block = pool.getBlock(b);
    const expected = holders.get(b)?.count ?? 0;
    assert.equal(block.refCount, expected, `refCount of block ${b}`);
    assert.equal(freeSet.has(b), expected === 0, `block ${b} is free exactly when nobody holds it`);
  }
  assert.ok(Math.abs(kv.usage - holders.size / pool.numBlocks) < 1e-12, 'usage = held / total');
}

/** One full engine step with the fake runner: schedule, run, update; checks invariants after each. */
export function step(
  scheduler: Scheduler,
  runner: FakeRunner,
): { out: SchedulerOutput; results: RequestStepOutput[] } {
  const out = scheduler.schedule();
  checkInvariants(scheduler);
  if (out.scheduledRequests.length === 0) return { out, results: [] };
  const results = scheduler.updateFromOutput(runner.execute(out));
  checkInvariants(scheduler);
  return { out, results };
}
