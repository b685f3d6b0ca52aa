// The collective-communication contract a model's forward calls at its explicit communication points
// (after row-parallel projections, around MoE dispatch). Every call is asynchronous: while one
// micro-batch awaits its collective, the other can compute (dual-batch overlap).

export interface Communicator {
  /** This rank's index in the group. */
  readonly rank: number;
  /** Number of ranks in the group. */
  readonly worldSize: number;
  /** Sums `buf` element-wise across the group, in place. */
  allReduce(buf: Float32Array): Promise<void>;
}

/** The group of one: every collective is the identity. */
export class SingleRankCommunicator implements Communicator {
  readonly rank = 0;
  readonly worldSize = 1;
  async allReduce(_buf: Float32Array): Promise<void> {}
}
