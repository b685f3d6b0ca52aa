// The batch builder of one engine replica: turns the scheduler's plan for a step (SchedulerOutput) into one
// flat ForwardBatch over the paged latent cache — token ids, positions, slot mapping, block tables, which
// rows need logits — and, once the executor has run it, hands back the logits rows each request needs (for
// sampling, and for prompt log-probs when asked).

import type { SchedulerOutput } from '../core/scheduler-output.js';
import type { ForwardBatch, SequenceSlice } from '../layers/forward-batch.js';

/** What the builder must know of a request beyond the scheduler's plan. */
export interface BatchRequestInfo {
  readonly numPromptTokens: number;
  /** Whether logits of prompt positions are wanted (prompt_logprobs). */
  readonly wantsPromptLogits: boolean;
}

/** Logits rows of prompt positions computed this step: row i predicts prompt token firstTarget + i. */
export interface PromptLogits {
  /** Index of the prompt token the first row predicts (≥ 1). */
  readonly firstTarget: number;
  /** Rows in this step. */
  readonly count: number;
  /** [count, vocab] */
  readonly rows: Float32Array;
}

export interface BatchLogits {
  /** For each request that samples this step: the logits row of its last scheduled position, [vocab]. */
  readonly sampleLogits: ReadonlyMap<string, Float32Array>;
  /** For requests that want prompt log-probs and computed prompt positions this step. */
  readonly promptLogits: ReadonlyMap<string, PromptLogits>;
  /** Tokens computed. */
  readonly numTokens: number;
}

/** A step's batch and where each request's logits rows will be in the result. */
export interface PreparedStep {
  readonly batch: ForwardBatch;
  /** Per request that samples: its row. */
  readonly samplePlan: readonly (readonly [string, number])[];
  /** Per request with prompt rows: its first row, row count and first predicted prompt token. */
  readonly promptPlan: readonly (readonly [string, number, number, number])[];
}

export class BatchBuilder {
  private readonly requests = new Map<string, BatchRequestInfo>();

  constructor(
    /** Logits per row. */
    private readonly vocabSize: number,
    /** Tokens per KV cache block. */
    private readonly blockSize: number,
  ) {}

  addRequest(requestId: string, info: BatchRequestInfo): void {
    this.requests.set(requestId, info);
  }

  removeRequest(requestId: string): void {
    this.requests.delete(requestId);
  }

  /** Builds the step's batch from the scheduler's plan (an empty batch when nothing is scheduled). */
  prepare(plan: SchedulerOutput): PreparedStep {
    for (const id of plan.finishedRequestIds) this.requests.delete(id);
    const T = plan.totalNumScheduledTokens;
    const bs = this.blockSize;
    const tokenIds = new Int32Array(T);
    const positions = new Int32Array(T);
    const slotMapping = new Int32Array(T);
    const seqs: SequenceSlice[] = [];
    const logitsRows: number[] = [];
    /** Per request: [index into logitsRows of its first prompt row, count, firstTarget]. */
    const promptPlan: [string, number, number, number][] = [];
    const samplePlan: [string, number][] = [];

    let at = 0;
    for (const r of plan.scheduledRequests) {
      const blockTable = Int32Array.from(r.blockIds);
      const n = r.numScheduledTokens;
      for (let i = 0; i < n; i++) {
        const pos = r.startPosition + i;
        tokenIds[at + i] = r.tokenIds[i]!;
        positions[at + i] = pos;
        slotMapping[at + i] = blockTable[Math.floor(pos / bs)]! * bs + (pos % bs);
      }
      seqs.push({ queryStart: at, queryLen: n, blockTable });

      const info = this.requests.get(r.requestId);
      if (info?.wantsPromptLogits) {
        // Position p's logits predict token p + 1; prompt targets are 1 .. numPromptTokens - 1.
        const last = Math.min(r.startPosition + n, info.numPromptTokens - 1);
        const count = last - r.startPosition;
        if (count > 0) {
          promptPlan.push([r.requestId, logitsRows.length, count, r.startPosition + 1]);
          for (let i = 0; i < count; i++) logitsRows.push(at + i);
        }
      }
      if (r.samplesToken) {
        samplePlan.push([r.requestId, logitsRows.length]);
        logitsRows.push(at + n - 1);
      }
      at += n;
    }

    const batch: ForwardBatch = {
      numTokens: T,
      tokenIds,
      positions,
      slotMapping,
      seqs,
      logitsIndices: Int32Array.from(logitsRows),
    };
    return { batch, samplePlan, promptPlan };
  }

  /** Maps the executed batch's logits ([rows, vocab]) back to the requests. */
  collect(step: PreparedStep, logits: Float32Array): BatchLogits {
    const V = this.vocabSize;
    const sampleLogits = new Map<string, Float32Array>();
    for (const [id, row] of step.samplePlan) sampleLogits.set(id, logits.subarray(row * V, (row + 1) * V));
    const promptLogits = new Map<string, PromptLogits>();
    for (const [id, row, count, firstTarget] of step.promptPlan) {
      promptLogits.set(id, { firstTarget, count, rows: logits.subarray(row * V, (row + count) * V) });
    }
    return { sampleLogits, promptLogits, numTokens: step.batch.numTokens };
  }
}
