// The process groups one rank's forward communicates in. Without data parallelism there is one: the
// tensor-parallel group. With it (vLLM's --data-parallel-size), each engine replica has its own
// tensor-parallel group for attention, dense layers, shared experts, embedding and LM head, while the MoE
// layers' routed experts are shared by every rank of every replica. That group of all ranks (the world)
// also carries the batches' shapes, the DBO plan and the logits back to the driver.

import type { Communicator } from '../distributed/communicator.js';
import type { HandOverPoints } from './hand-over.js';

export interface RankGroups {
  /** The replica's tensor-parallel group. */
  readonly tp: Communicator;
  /**
   * Every rank of every replica (`tp` itself without data parallelism): shares the routed experts, and
   * carries the batches, the DBO plan and the logits.
   */
  readonly world: Communicator;
  /** The forward's hand-over points under dual-batch overlap (hand-over.ts); absent outside DBO. */
  readonly points?: HandOverPoints;
}

/** Groups of a rank without data parallelism: one group does everything. */
export function singleGroup(comm: Communicator): RankGroups {
  return { tp: comm, world: comm };
}
