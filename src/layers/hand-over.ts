// A forward's hand-over points: the places where, under dual-batch overlap, one micro-batch may hand the
// compute thread to the other. Each point ends a named stage of the forward. Most are collectives (the
// micro-batch waits for its data to move while the other computes); a pause is a point without
// communication, where the schedule may switch micro-batch to put long compute under the other's
// collective. Outside DBO a forward has no hand-over points (`RankGroups.points` is absent) and these
// helpers only wait.

import type { CollectiveHandle } from '../distributed/communicator.js';

/** What carries a forward's hand-over points (its RankGroups). */
interface WithPoints {
  readonly points?: HandOverPoints;
}

/** How a stage of the forward ends. */
export type StageEnd = 'collective' | 'pause' | 'done';

/** One stage of a forward: compute up to a named hand-over point. */
export interface ForwardStage {
  /** The hand-over point that ends the stage, e.g. `L3 attn all-reduce`, `L3 experts 1/2`, `done`. */
  readonly name: string;
  readonly end: StageEnd;
}

/** The hand-over points of one micro-batch's forward (given by the DBO scheduler). */
export interface HandOverPoints {
  /** The collective waited on next ends stage `name`. */
  collective(name: string): void;
  /** Ends stage `name` without communication: resolves when this micro-batch may compute again. */
  pause(name: string): Promise<void>;
}

/** Waits on `handle`, the collective that ends stage `name`. */
export async function waitAt(groups: WithPoints, name: string, handle: CollectiveHandle): Promise<void> {
  groups.points?.collective(name);
  await handle.wait();
}

/** Ends stage `name` at a pause (only under DBO; otherwise nothing happens). */
export async function pauseAt(groups: WithPoints, name: string): Promise<void> {
  if (groups.points) await groups.points.pause(name);
}
