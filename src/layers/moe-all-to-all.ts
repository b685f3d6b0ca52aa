// The `alltoall` MoE mode of expert parallelism (vLLM Ascend's moe_comm = "alltoall"): each rank takes an
// even share of the step's tokens, dispatches each (token, expert) pair's hidden row to the rank holding
// that expert, the expert owners compute, and the weighted results are combined back. Shared experts
// stay tensor-parallel: their partial sums are reduce-scattered onto the token shares, and one all-gather
// rebuilds the full [T, hidden] output on every rank. Every collective is an explicit, awaited step.
//
// The routing is computed identically on every rank (the gate is replicated), so every rank derives the
// whole send / receive plan locally: only hidden rows travel.

import type { Communicator } from '../distributed/communicator.js';
import type { Kernels } from '../kernels/kernels.js';
import type { Moe } from './moe.js';
import type { Routing } from './moe-gate.js';
import { unevenCounts, unevenShare } from './parallel-plan.js';

/** One (token, expert) pair crossing ranks, in the order both sides derive. */
interface Pair {
  /** Token index in the whole step. */
  readonly token: number;
  readonly expert: number;
  readonly weight: number;
}

/**
 * The pairs that rank `src` sends to rank `dst`: tokens of src's share in order, and for each its
 * routed experts held by dst, in routing order.
 */
function pairsBetween(
  routing: Routing,
  T: number,
  size: number,
  expertsPerRank: number,
  src: number,
  dst: number,
): Pair[] {
  const K = routing.topK;
  const share = unevenShare(T, src, size);
  const out: Pair[] = [];
  for (let t = share.start; t < share.start + share.count; t++) {
    for (let j = 0; j < K; j++) {
      const e = routing.experts[t * K + j]!;
      if (Math.floor(e / expertsPerRank) === dst)
        out.push({ token: t, expert: e, weight: routing.weights[t * K + j]! });
    }
  }
  return out;
}

/**
 * The MoE feed-forward of the step in all-to-all mode. `x`: [T, hidden] (normalised, identical on all
 * ranks). Returns the full [T, hidden] output (routed + shared experts), identical on all ranks.
 */
export async function moeAllToAll(
  kernels: Kernels,
  comm: Communicator,
  moe: Moe,
  x: Float32Array,
  routing: Routing,
  T: number,
  hidden: number,
): Promise<Float32Array> {
  const P = comm.worldSize;
  const me = comm.rank;
  const perRank = moe.numExperts / P;
  const d = hidden;

  // Dispatch: the rows this rank sends to each rank, and the pairs it will receive from each.
  const sendPairs = Array.from({ length: P }, (_, dst) => pairsBetween(routing, T, P, perRank, me, dst));
  const recvPairs = Array.from({ length: P }, (_, src) => pairsBetween(routing, T, P, perRank, src, me));
  const sendCounts = sendPairs.map((p) => p.length * d);
  const recvCounts = recvPairs.map((p) => p.length * d);
  const sendRows = new Float32Array(sendCounts.reduce((a, b) => a + b, 0));
  let at = 0;
  for (const pairs of sendPairs) {
    for (const p of pairs) {
      sendRows.set(x.subarray(p.token * d, (p.token + 1) * d), at);
      at += d;
    }
  }
  const recvRows = new Float32Array(recvCounts.reduce((a, b) => a + b, 0));
  // Communication point: all-to-all dispatch of token rows to the ranks holding their experts.
  await comm.allToAll(recvRows, recvCounts, sendRows, sendCounts).wait();

  // Expert compute on the received rows, grouped by expert; results weighted, in arrival order.
  const received = recvPairs.flat();
  const results = new Float32Array(recvRows.length);
  const byExpert = new Map<number, number[]>();
  received.forEach((p, i) => {
    const list = byExpert.get(p.expert) ?? [];
    list.push(i);
    byExpert.set(p.expert, list);
  });
  for (const [e, rows] of byExpert) {
    const xe = new Float32Array(rows.length * d);
    rows.forEach((r, i) => {
      xe.set(recvRows.subarray(r * d, (r + 1) * d), i * d);
    });
    const ye = new Float32Array(rows.length * d);
    moe.runExpert(kernels, e, ye, xe, rows.length);
    rows.forEach((r, i) => {
      const w = received[r]!.weight;
      for (let j = 0; j < d; j++) results[r * d + j] = w * ye[i * d + j]!;
    });
  }

  // Combine: results travel back along the reverse plan.
  const combined = new Float32Array(sendRows.length);
  // Communication point: all-to-all combine of expert outputs back to the tokens' ranks.
  await comm.allToAll(combined, sendCounts, results, recvCounts).wait();

  // Shared experts (tensor parallel): partial sums over all tokens, reduce-scattered onto token shares.
  const share = unevenShare(T, me, P);
  const partial = new Float32Array(T * d);
  moe.runShared(kernels, partial, x, T);
  const mine = new Float32Array(share.count * d);
  // Communication point: reduce-scatter of the shared experts' partial sums.
  await comm.reduceScatter(mine, partial, unevenCounts(T, P, d)).wait();
  at = 0;
  for (const pairs of sendPairs) {
    for (const p of pairs) {
      const o = (p.token - share.start) * d;
      for (let j = 0; j < d; j++) mine[o + j]! += combined[at + j]!;
      at += d;
    }
  }

  const out = new Float32Array(T * d);
  // Communication point: all-gather of the token shares into the full output.
  await comm.allGather(out, mine, unevenCounts(T, P, d)).wait();
  return out;
}
