// The `allgather` MoE mode under data parallelism. The replicas run different tokens, and the routed
// experts are spread over every rank of every replica, so each rank must see every replica's tokens: each
// rank contributes its share of its replica's tokens to one all-gather over the whole group, every rank
// routes all of them (the gate is replicated) and runs the experts it holds, and one reduce-scatter sums
// the partial outputs back onto the contributing shares. The replica's shared experts (tensor parallel
// within the replica) add their partial sums into the replica's rows before the reduce-scatter; an
// all-gather within the replica rebuilds its full [T, hidden] output.

import type { Kernels } from '../kernels/kernels.js';
import { type ForwardStage, waitAt } from './hand-over.js';
import { Moe } from './moe.js';
import type { Routing } from './moe-gate.js';
import { moeGroupPosition, type ParallelPlan, unevenCounts, unevenShare } from './parallel-plan.js';
import type { RankGroups } from './rank-groups.js';

/**
 * The MoE feed-forward of a data-parallel step in all-gather mode. `x`: [T, hidden] of this rank's
 * replica; `replicaTokens[r]`: tokens replica r runs this step (the same list on every rank). Calls
 * `onRouting` with the routing of this replica's tokens. Returns the full [T, hidden] output.
 */
export async function moeAllGatherDataParallel(
  kernels: Kernels,
  groups: RankGroups,
  /** The layer's name in hand-over points, e.g. `L3`. */
  label: string,
  plan: ParallelPlan,
  moe: Moe,
  x: Float32Array,
  T: number,
  hidden: number,
  replicaTokens: readonly number[],
  onRouting?: (routing: Routing, first: number) => void,
): Promise<Float32Array> {
  const group = moeGroupPosition(plan);
  const tp = plan.size;
  const d = hidden;
  // Rank w of the group contributes its tensor-parallel share of replica ⌊w / tp⌋'s tokens; in rank order
  // these are every replica's tokens, replica after replica.
  const counts = Array.from(
    { length: group.size },
    (_, w) => unevenShare(replicaTokens[Math.floor(w / tp)]!, w % tp, tp).count * d,
  );
  const G = replicaTokens.reduce((a, b) => a + b, 0);
  const first = replicaTokens.slice(0, group.dataParallelRank).reduce((a, b) => a + b, 0);
  const share = unevenShare(T, plan.rank, tp);
  const all = kernels.allocateActivations(G * d);
  // Communication point: all-gather of every replica's tokens over the MoE group.
  await waitAt(
    groups,
    `${label} tokens all-gather`,
    groups.world.allGather(all, x.subarray(share.start * d, (share.start + share.count) * d), counts),
  );

  const routing = moe.gate.route(kernels, all, G);
  onRouting?.(routing, first);
  const partial = kernels.allocateActivations(G * d);
  moe.runExperts(kernels, partial, all, Moe.assign(routing, G, moe.numExperts));
  moe.runShared(kernels, partial.subarray(first * d, (first + T) * d), x, T);
  const mine = kernels.allocateActivations(share.count * d);
  // Communication point: reduce-scatter of the partial sums onto the contributing shares.
  await waitAt(groups, `${label} moe reduce-scatter`, groups.world.reduceScatter(mine, partial, counts));
  if (tp === 1) return mine;
  const out = kernels.allocateActivations(T * d);
  // Communication point: all-gather of the replica's token shares into its full output.
  await waitAt(groups, `${label} all-gather`, groups.tp.allGather(out, mine, unevenCounts(T, tp, d)));
  return out;
}

/** The stages `moeAllGatherDataParallel` adds to a forward (see hand-over.ts), for layer `label`. */
export function moeAllGatherDataParallelStages(label: string, plan: ParallelPlan): ForwardStage[] {
  const out: ForwardStage[] = [
    { name: `${label} tokens all-gather`, end: 'collective' },
    { name: `${label} moe reduce-scatter`, end: 'collective' },
  ];
  if (plan.size > 1) out.push({ name: `${label} all-gather`, end: 'collective' });
  return out;
}
