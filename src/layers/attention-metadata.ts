// Per-step attention metadata, built once per forward and shared by every layer: where each sequence's
// query tokens start and its block table as one row of a flat [numSeqs, maxBlocksPerSeq] table, the form
// the batched attention kernel takes (one call for the whole batch instead of one per sequence).

import type { ForwardBatch } from './forward-batch.js';

export interface AttentionMetadata {
  readonly numSeqs: number;
  /** [numSeqs + 1] first query token of each sequence; the last entry is numTokens. */
  readonly seqStarts: Int32Array;
  /** Blocks per row of `blockTables`: the most any sequence of the batch reads. */
  readonly maxBlocksPerSeq: number;
  /** [numSeqs, maxBlocksPerSeq] row s: the first blocks of sequence s's table (0 past what it reads). */
  readonly blockTables: Int32Array;
}

/** The metadata of a validated batch (sequences tile its tokens in order) over blocks of `blockSize`. */
export function buildAttentionMetadata(batch: ForwardBatch, blockSize: number): AttentionMetadata {
  const numSeqs = batch.seqs.length;
  const seqStarts = new Int32Array(numSeqs + 1);
  const blocksRead = new Int32Array(numSeqs);
  let maxBlocksPerSeq = 0;
  batch.seqs.forEach((s, i) => {
    seqStarts[i] = s.queryStart;
    let maxPos = 0;
    for (let t = s.queryStart; t < s.queryStart + s.queryLen; t++)
      maxPos = Math.max(maxPos, batch.positions[t]!);
    blocksRead[i] = Math.min(s.blockTable.length, Math.floor(maxPos / blockSize) + 1);
    maxBlocksPerSeq = Math.max(maxBlocksPerSeq, blocksRead[i]!);
  });
  seqStarts[numSeqs] = batch.numTokens;
  const blockTables = new Int32Array(numSeqs * maxBlocksPerSeq);
  batch.seqs.forEach((s, i) => {
    blockTables.set(s.blockTable.subarray(0, blocksRead[i]!), i * maxBlocksPerSeq);
  });
  return { numSeqs, seqStarts, maxBlocksPerSeq, blockTables };
}
