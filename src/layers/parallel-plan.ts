// How one rank's share of the model is laid out under tensor and expert parallelism, as vLLM does for
// DeepSeek: attention heads split across the tensor-parallel ranks (the latent down-projections
// replicated), dense MLPs and shared experts split by intermediate features, routed experts either split
// the same way (tensor parallel) or kept whole on one rank each (expert parallel), vocabulary split for
// the embedding and the LM head.

import type { Slice } from './weight-loading.js';

/** How MoE layers communicate: vLLM Ascend's `moe_comm` modes. */
export type MoeCommMode = 'allgather' | 'alltoall';

export interface ParallelPlan {
  /** This rank in the tensor-parallel group. */
  readonly rank: number;
  /** Tensor-parallel ranks. */
  readonly size: number;
  /** Routed experts split whole across the ranks instead of by intermediate features. */
  readonly expertParallel: boolean;
  /** With expert parallelism: all-gather/all-reduce, or all-to-all dispatch and combine of tokens. */
  readonly moeComm: MoeCommMode;
  /**
   * Data parallelism (vLLM's `--data-parallel-size`): this rank's engine replica and the number of
   * replicas (default 0 of 1). Each replica runs its own requests through attention, dense layers and the
   * LM head on its `size` tensor-parallel ranks; MoE layers are shared by all replicas: their experts are
   * spread over all dataParallelSize · size ranks (the expert-parallel group).
   */
  readonly dataParallelRank?: number;
  readonly dataParallelSize?: number;
}

/** Where a rank sits in the group that shares the MoE layers: every rank of every replica. */
export interface MoeGroupPosition {
  /** Index in the MoE group: dataParallelRank · size + rank. */
  readonly rank: number;
  /** dataParallelSize · size. */
  readonly size: number;
  readonly dataParallelRank: number;
  readonly dataParallelSize: number;
}

/** The rank's position in the MoE group (the whole world of ranks under data parallelism). */
export function moeGroupPosition(plan: ParallelPlan): MoeGroupPosition {
  const dataParallelRank = plan.dataParallelRank ?? 0;
  const dataParallelSize = plan.dataParallelSize ?? 1;
  return {
    rank: dataParallelRank * plan.size + plan.rank,
    size: dataParallelSize * plan.size,
    dataParallelRank,
    dataParallelSize,
  };
}

/** One rank: no sharding. */
export const SINGLE_RANK_PLAN: ParallelPlan = {
  rank: 0,
  size: 1,
  expertParallel: false,
  moeComm: 'allgather',
};

/** A sharding that the model's shape does not allow. */
export class ParallelPlanError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ParallelPlanError';
  }
}

/** Rank `rank`'s equal share of `n` items that must divide evenly (`what` names them in the error). */
export function evenShare(n: number, rank: number, size: number, what: string): Slice {
  if (n % size !== 0) {
    throw new ParallelPlanError(
      `${what} (${n}) must be divisible by the number of ranks sharing it (${size})`,
    );
  }
  const count = n / size;
  return { start: rank * count, count };
}

/** Rank `rank`'s share of `n` items split as evenly as possible (the first n % size ranks get one more). */
export function unevenShare(n: number, rank: number, size: number): Slice {
  const base = Math.floor(n / size);
  const extra = n % size;
  return { start: rank * base + Math.min(rank, extra), count: base + (rank < extra ? 1 : 0) };
}

/** Element counts of every rank's uneven share, for collectives. */
export function unevenCounts(n: number, size: number, scale = 1): number[] {
  return Array.from({ length: size }, (_, r) => unevenShare(n, r, size).count * scale);
}
