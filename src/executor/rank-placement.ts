// Where a global rank sits under tensor and data parallelism, and how it joins its groups. Ranks are
// numbered replica after replica: global rank g is tensor-parallel rank g mod tp of data-parallel replica
// ⌊g / tp⌋. Every rank joins the world group (which carries the step's batches and the MoE layers'
// collectives); with data parallelism and tp > 1 it also joins its replica's tensor-parallel group.

import type { EngineConfig } from '../config/engine-config.js';
import { SingleRankCommunicator } from '../distributed/communicator.js';
import { connectCommunicator } from '../distributed/connect.js';
import type { GroupDescriptor } from '../distributed/group.js';
import type { ConnectedCommunicator } from '../distributed/stream-communicator.js';
import type { ParallelPlan } from '../layers/parallel-plan.js';
import type { RankGroups } from '../layers/rank-groups.js';

/** Global rank `rank`'s share of the model. */
export function planForRank(config: EngineConfig, rank: number): ParallelPlan {
  const tp = config.parallel.tensorParallelSize;
  return {
    rank: rank % tp,
    size: tp,
    expertParallel: config.parallel.enableExpertParallel,
    moeComm: config.parallel.moeComm,
    dataParallelRank: Math.floor(rank / tp),
    dataParallelSize: config.parallel.dataParallelSize,
  };
}

/** A rank's connected groups; `world` is the communicator whose faults report the group's health. */
export interface ConnectedRankGroups {
  readonly groups: RankGroups;
  readonly world: ConnectedCommunicator;
}

/**
 * Joins global rank `rank` to the world group and, when `replicaGroups` is given (data parallelism with
 * tp > 1), to its replica's tensor-parallel group.
 */
export async function connectRankGroups(
  config: EngineConfig,
  world: GroupDescriptor,
  replicaGroups: readonly (GroupDescriptor | null)[] | null,
  rank: number,
): Promise<ConnectedRankGroups> {
  const timeoutMs = config.parallel.distTimeoutMs;
  const tp = config.parallel.tensorParallelSize;
  const worldComm = await connectCommunicator(world, rank, { timeoutMs });
  if (config.parallel.dataParallelSize === 1)
    return { groups: { tp: worldComm, world: worldComm }, world: worldComm };
  if (tp === 1) return { groups: { tp: new SingleRankCommunicator(), world: worldComm }, world: worldComm };
  const replica = replicaGroups?.[Math.floor(rank / tp)];
  if (!replica) {
    await worldComm.close();
    throw new RangeError(`no tensor-parallel group for rank ${rank}'s replica`);
  }
  try {
    const tpComm = await connectCommunicator(replica, rank % tp, { timeoutMs });
    return { groups: { tp: tpComm, world: worldComm }, world: worldComm };
  } catch (e) {
    await worldComm.close();
    throw e;
  }
}
