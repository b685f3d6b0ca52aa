// The model's input contract for one step: a flat batch of tokens from any number of sequences (prefills,
// prefill chunks and decodes mixed), where each sequence's KV lives in the paged latent cache.

/** The tokens of one sequence inside a `ForwardBatch`. */
export interface SequenceSlice {
  /** Index of the sequence's first token in the batch's token arrays. */
  readonly queryStart: number;
  /** Number of this step's tokens of the sequence (a prompt chunk, or 1 for a decode). */
  readonly queryLen: number;
  /** Cache block ids holding positions 0.. of the sequence: position p is in block blockTable[p / blockSize]. */
  readonly blockTable: Int32Array;
}

export interface ForwardBatch {
  /** Total tokens in the step. */
  readonly numTokens: number;
  /** [numTokens] token ids. */
  readonly tokenIds: Int32Array;
  /** [numTokens] absolute position of each token in its sequence. */
  readonly positions: Int32Array;
  /** [numTokens] cache slot (block · blockSize + offset) where each token's latent KV is written. */
  readonly slotMapping: Int32Array;
  /** The sequences, in token order; their query ranges tile [0, numTokens). */
  readonly seqs: readonly SequenceSlice[];
  /** Rows of the batch (token indices) whose logits are wanted, in the order they are returned. */
  readonly logitsIndices: Int32Array;
}

/** A malformed batch: says which field is wrong. */
export class ForwardBatchError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ForwardBatchError';
  }
}

/** Checks the batch's internal consistency (cheap; run once per step). */
export function validateForwardBatch(batch: ForwardBatch, vocabSize: number, maxPositions: number): void {
  const n = batch.numTokens;
  if (batch.tokenIds.length !== n || batch.positions.length !== n || batch.slotMapping.length !== n) {
    throw new ForwardBatchError(
      `tokenIds, positions and slotMapping must each have numTokens (${n}) entries`,
    );
  }
  let next = 0;
  for (const s of batch.seqs) {
    if (s.queryStart !== next || s.queryLen < 1) {
      throw new ForwardBatchError(
        `sequence query ranges must tile the batch in order; got start ${s.queryStart}`,
      );
    }
    next += s.queryLen;
  }
  if (next !== n) throw new ForwardBatchError(`sequences cover ${next} tokens but the batch has ${n}`);
  for (let i = 0; i < n; i++) {
    const id = batch.tokenIds[i]!;
    if (id < 0 || id >= vocabSize) {
      throw new ForwardBatchError(`token id ${id} is outside the vocabulary (0..${vocabSize - 1})`);
    }
    const p = batch.positions[i]!;
    if (p < 0 || p >= maxPositions) {
      throw new ForwardBatchError(`position ${p} is outside the model's range (0..${maxPositions - 1})`);
    }
  }
  for (const r of batch.logitsIndices) {
    if (r < 0 || r >= n) throw new ForwardBatchError(`logits index ${r} is outside the batch (0..${n - 1})`);
  }
}
