// DBO orders as data: the sequence in which two micro-batches run the stages of their forwards. A forward
// is a list of stages, each ending at a hand-over point (layers/hand-over.ts: a collective, or a pause
// without communication); an order is a list of turns "micro-batch X runs its stage k". The executor
// (dbo-scheduler.ts) follows the list; since every rank follows the same list, every rank issues its
// collectives in the same order, which the collectives require.
//
// Two orders, the stages of an allgather-mode MoE layer being `attn` (ends at the attention all-reduce),
// `experts 1/2` (a pause) and `moe` (ends at the MoE all-reduce):
//
//   alternate   A attn, B attn, A experts 1/2 + moe, B experts 1/2 + moe, (next layer) A attn, ...
//               Each collective runs under the other micro-batch's next stage: A's attention all-reduce
//               under B's attention (short), A's MoE all-reduce under B's MoE (long).
//   staggered   A attn, B experts 2/2 + moe (previous layer), A experts 1/2, B attn, A experts 2/2 + moe,
//               B experts 1/2, (next layer) A attn, ...
//               B runs half a MoE behind A, so every collective runs under half a MoE of the other
//               micro-batch: A's attention all-reduce under B's second expert half, B's MoE all-reduce
//               under A's first, B's attention all-reduce under A's second, A's MoE all-reduce under B's
//               first. Pays when attention is shorter than half the MoE (prefill of short prompts).
//
// A stage that ends at a pause is followed by the same micro-batch's next stage in `alternate` (a pause
// costs nothing); `staggered` uses the first pause to fall half a MoE behind and keeps alternating turns
// from there. Without pauses (dense layers only, alltoall mode) the two orders are the same. In alltoall
// mode the layer's stages are `attn`, `dispatch`, `combine`, `shared reduce-scatter`, `all-gather`, and
// `alternate` gives DeepSeek's overlap: A's dispatch under B's attention and gate, B's dispatch under A's
// experts, A's combine under B's experts, and so on.

import type { ForwardStage } from '../layers/hand-over.js';

/** The orders DBO knows. */
export const DBO_ORDERS = ['alternate', 'staggered'] as const;
export type DboOrderName = (typeof DBO_ORDERS)[number];

/** Which order split steps use: one of them, or `auto` (chosen per step from measured stage times). */
export type DboOrderSetting = DboOrderName | 'auto';

/** One turn of an order: micro-batch `mb` (0 = A, 1 = B) runs its stage `stage` (an index). */
export interface Turn {
  readonly mb: 0 | 1;
  readonly stage: number;
}

/** The turns of `name` for two micro-batches with the same stage list `stages` (the last ends `done`). */
export function buildOrder(name: DboOrderName, stages: readonly ForwardStage[]): Turn[] {
  const n = stages.length;
  const turns: Turn[] = [];
  const next = [0, 0];
  // Runs micro-batch mb's next stage, and the ones after it while they end at a pause (in alternate).
  const run = (mb: 0 | 1, throughPauses: boolean): void => {
    while (next[mb]! < n) {
      const k = next[mb]!++;
      turns.push({ mb, stage: k });
      if (!(throughPauses && stages[k]!.end === 'pause')) return;
    }
  };
  if (name === 'alternate') {
    while (next[0]! < n || next[1]! < n) {
      run(0, true);
      run(1, true);
    }
    return turns;
  }
  // staggered: alternate up to A's first pause, run A through it, then alternate one stage at a time.
  const firstPause = stages.findIndex((s) => s.end === 'pause');
  if (firstPause < 0) return buildOrder('alternate', stages);
  while (next[0]! < firstPause) {
    run(0, true);
    if (next[1]! < firstPause) run(1, true);
  }
  run(0, false);
  while (next[0]! < n || next[1]! < n) {
    run(0, false);
    run(1, false);
  }
  return turns;
}

/** An order as text, one operation per turn: `A L0 attn all-reduce, B L0 attn all-reduce, ...`. */
export function formatOrder(turns: readonly Turn[], stages: readonly ForwardStage[]): string {
  return turns.map((t) => `${t.mb === 0 ? 'A' : 'B'} ${stages[t.stage]!.name}`).join(', ');
}

/** Thrown when a micro-batch reaches a hand-over point its order did not expect (a bug, not bad input). */
export class DboOrderError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DboOrderError';
  }
}
