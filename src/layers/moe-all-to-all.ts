// The `alltoall` MoE mode of expert parallelism (vLLM Ascend's moe_comm = "alltoall"): each rank takes an
// even share of its replica's tokens, dispatches each (token, expert) pair's hidden row to the rank holding
// that expert, the expert owners compute, and the results are combined back and weighted where the token
// lives. Shared experts stay tensor-parallel within the replica: their partial sums are reduce-scattered
// onto the token shares, and one all-gather rebuilds the full [T, hidden] output on every rank of the
// replica. Every collective is an explicit, awaited step.
//
// Each dispatched row carries its expert id in front of the hidden values, so a receiver needs only the
// number of rows each sender sends. Without data parallelism the routing is identical on every rank (the
// gate is replicated and sees the same tokens), so every rank derives those counts locally; with it, the
// replicas route different tokens and one small all-to-all exchanges the counts first.

import type { Kernels } from '../kernels/kernels.js';
import { type ForwardStage, waitAt } from './hand-over.js';
import type { Moe } from './moe.js';
import type { Routing } from './moe-gate.js';
import { moeGroupPosition, type ParallelPlan, unevenCounts, unevenShare } from './parallel-plan.js';
import type { RankGroups } from './rank-groups.js';

/** One (token, expert) pair this rank sends, in the order both sides see it. */
interface Pair {
  /** Token index in the replica's step. */
  readonly token: number;
  readonly expert: number;
  readonly weight: number;
}

/**
 * The (token, expert) pairs of tokens [first, first + count), bucketed by the rank holding the expert
 * (experts are spread evenly, `expertsPerRank` per rank): in each bucket tokens in order, each one's experts
 * in routing order. One pass over the routing.
 */
function pairsByRank(
  routing: Routing,
  first: number,
  count: number,
  expertsPerRank: number,
  numRanks: number,
): Pair[][] {
  const K = routing.topK;
  const out: Pair[][] = Array.from({ length: numRanks }, () => []);
  for (let i = first * K; i < (first + count) * K; i++) {
    const e = routing.experts[i]!;
    out[Math.floor(e / expertsPerRank)]!.push({
      token: Math.floor(i / K),
      expert: e,
      weight: routing.weights[i]!,
    });
  }
  return out;
}

/** How many pairs of tokens [first, first + count) go to rank `dst` (see pairsByRank). */
function countPairsTo(
  routing: Routing,
  first: number,
  count: number,
  expertsPerRank: number,
  dst: number,
): number {
  const K = routing.topK;
  let n = 0;
  for (let i = first * K; i < (first + count) * K; i++)
    if (Math.floor(routing.experts[i]! / expertsPerRank) === dst) n++;
  return n;
}

/**
 * The MoE feed-forward of the step in all-to-all mode. `x`: [T, hidden] (normalised, identical on the
 * replica's ranks), `routing` its routing. Returns the full [T, hidden] output (routed + shared experts),
 * identical on the replica's ranks.
 */
export async function moeAllToAll(
  kernels: Kernels,
  groups: RankGroups,
  /** The layer's name in hand-over points, e.g. `L3`. */
  label: string,
  plan: ParallelPlan,
  moe: Moe,
  x: Float32Array,
  routing: Routing,
  T: number,
  hidden: number,
): Promise<Float32Array> {
  const group = moeGroupPosition(plan);
  const P = group.size;
  const perRank = moe.numExperts / P;
  const d = hidden;
  const row = d + 1;
  const share = unevenShare(T, plan.rank, plan.size);

  // Dispatch: rows of [expert id, hidden...] to each rank holding the experts.
  const sendPairs = pairsByRank(routing, share.start, share.count, perRank, P);
  const sendRowCounts = Int32Array.from(sendPairs, (p) => p.length);
  const recvRowCounts = new Int32Array(P);
  if (group.dataParallelSize === 1) {
    // Every rank routed the same tokens: the rows rank src sends here follow from its token share.
    for (let src = 0; src < P; src++) {
      const s = unevenShare(T, src, P);
      recvRowCounts[src] = countPairsTo(routing, s.start, s.count, perRank, group.rank);
    }
  } else {
    // Communication point: all-to-all of the row counts (one per pair of ranks).
    const ones = new Array<number>(P).fill(1);
    await waitAt(
      groups,
      `${label} counts all-to-all`,
      groups.world.allToAll(recvRowCounts, ones, sendRowCounts, ones),
    );
  }
  const sendCounts = Array.from(sendRowCounts, (n) => n * row);
  const recvCounts = Array.from(recvRowCounts, (n) => n * row);
  // The send plan in order: each pair's token (its hidden row is sent), its row in this rank's share (where
  // its result is combined) and its routing weight.
  const send = sendPairs.flat();
  const numSend = send.length;
  const sendTokens = Int32Array.from(send, (p) => p.token);
  const shareRows = Int32Array.from(send, (p) => p.token - share.start);
  const sendWeights = Float32Array.from(send, (p) => p.weight);
  const sendRows = kernels.allocateActivations(numSend * row);
  send.forEach((p, i) => {
    sendRows[i * row] = p.expert;
  });
  kernels.copyRows(sendRows, null, row, 1, x, sendTokens, d, 0, numSend, d);
  const recvRows = kernels.allocateActivations(recvCounts.reduce((a, b) => a + b, 0));
  // Communication point: all-to-all dispatch of token rows to the ranks holding their experts. The shared
  // experts (partial sums over all tokens, tensor parallel within the replica) compute while the rows are
  // in flight, as in DeepSeek's own order.
  const dispatch = groups.world.allToAll(recvRows, recvCounts, sendRows, sendCounts);
  const partial = kernels.allocateActivations(T * d);
  moe.runShared(kernels, partial, x, T);
  await waitAt(groups, `${label} dispatch`, dispatch);

  // Expert compute on the received rows, grouped by expert; results in arrival order.
  const numRecv = recvRows.length / row;
  const results = kernels.allocateActivations(numRecv * d);
  const byExpert = new Map<number, number[]>();
  for (let r = 0; r < numRecv; r++) {
    const e = recvRows[r * row]!;
    const list = byExpert.get(e) ?? [];
    list.push(r);
    byExpert.set(e, list);
  }
  for (const [e, list] of byExpert) {
    const rows = Int32Array.from(list);
    const xe = kernels.allocateActivations(rows.length * d);
    kernels.copyRows(xe, null, d, 0, recvRows, rows, row, 1, rows.length, d);
    const ye = kernels.allocateActivations(rows.length * d);
    moe.runExpert(kernels, e, ye, xe, rows.length);
    kernels.copyRows(results, rows, d, 0, ye, null, d, 0, rows.length, d);
  }

  // Combine: results travel back along the reverse plan.
  const combined = kernels.allocateActivations(numSend * d);
  // Communication point: all-to-all combine of expert outputs back to the tokens' ranks.
  await waitAt(
    groups,
    `${label} combine`,
    groups.world.allToAll(
      combined,
      Array.from(sendRowCounts, (n) => n * d),
      results,
      Array.from(recvRowCounts, (n) => n * d),
    ),
  );

  // The shared experts' partial sums, reduce-scattered onto token shares.
  let mine = partial;
  if (plan.size > 1) {
    mine = kernels.allocateActivations(share.count * d);
    // Communication point: reduce-scatter of the shared experts' partial sums.
    await waitAt(
      groups,
      `${label} shared reduce-scatter`,
      groups.tp.reduceScatter(mine, partial, unevenCounts(T, plan.size, d)),
    );
  }
  kernels.weightedScatterAdd(mine, combined, shareRows, sendWeights, numSend, d);
  if (plan.size === 1) return mine;
  const out = kernels.allocateActivations(T * d);
  // Communication point: all-gather of the token shares into the full output.
  await waitAt(groups, `${label} all-gather`, groups.tp.allGather(out, mine, unevenCounts(T, plan.size, d)));
  return out;
}

/** The stages `moeAllToAll` adds to a forward (see hand-over.ts), for layer `label`. */
export function moeAllToAllStages(label: string, plan: ParallelPlan): ForwardStage[] {
  const out: ForwardStage[] = [];
  if (moeGroupPosition(plan).dataParallelSize > 1)
    out.push({ name: `${label} counts all-to-all`, end: 'collective' });
  out.push({ name: `${label} dispatch`, end: 'collective' }, { name: `${label} combine`, end: 'collective' });
  if (plan.size > 1) {
    out.push({ name: `${label} shared reduce-scatter`, end: 'collective' });
    out.push({ name: `${label} all-gather`, end: 'collective' });
  }
  return out;
}
