// The wire form of a ForwardBatch between ranks: one Int32Array, so that the driver rank can broadcast a
// step's batch to the other ranks with a plain collective.
//
// Layout: [numTokens, numSeqs, numLogits, tokenIds…, positions…, slotMapping…,
//          per sequence: queryStart, queryLen, blockTableLength, blockTable…, logitsIndices…]

import type { ForwardBatch, SequenceSlice } from '../layers/forward-batch.js';

export function encodeForwardBatch(batch: ForwardBatch): Int32Array {
  const T = batch.numTokens;
  let size = 3 + 3 * T + batch.logitsIndices.length;
  for (const s of batch.seqs) size += 3 + s.blockTable.length;
  const out = new Int32Array(size);
  out[0] = T;
  out[1] = batch.seqs.length;
  out[2] = batch.logitsIndices.length;
  let at = 3;
  for (const a of [batch.tokenIds, batch.positions, batch.slotMapping]) {
    out.set(a, at);
    at += T;
  }
  for (const s of batch.seqs) {
    out[at++] = s.queryStart;
    out[at++] = s.queryLen;
    out[at++] = s.blockTable.length;
    out.set(s.blockTable, at);
    at += s.blockTable.length;
  }
  out.set(batch.logitsIndices, at);
  return out;
}

export function decodeForwardBatch(data: Int32Array): ForwardBatch {
  const T = data[0]!;
  const numSeqs = data[1]!;
  const numLogits = data[2]!;
  let at = 3;
  const take = (n: number) => {
    const a = data.slice(at, at + n);
    at += n;
    return a;
  };
  const tokenIds = take(T);
  const positions = take(T);
  const slotMapping = take(T);
  const seqs: SequenceSlice[] = [];
  for (let i = 0; i < numSeqs; i++) {
    const queryStart = data[at++]!;
    const queryLen = data[at++]!;
    const blockTable = take(data[at++]!);
    seqs.push({ queryStart, queryLen, blockTable });
  }
  const logitsIndices = take(numLogits);
  return { numTokens: T, tokenIds, positions, slotMapping, seqs, logitsIndices };
}

/** Several replicas' batches (data parallelism) as one Int32Array: [count, then per batch its length and its encoding]. */
export function encodeReplicaBatches(batches: readonly ForwardBatch[]): Int32Array {
  const parts = batches.map(encodeForwardBatch);
  const out = new Int32Array(1 + parts.reduce((s, p) => s + 1 + p.length, 0));
  out[0] = parts.length;
  let at = 1;
  for (const p of parts) {
    out[at++] = p.length;
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function decodeReplicaBatches(data: Int32Array): ForwardBatch[] {
  const out: ForwardBatch[] = [];
  let at = 1;
  for (let i = 0; i < data[0]!; i++) {
    const n = data[at++]!;
    out.push(decodeForwardBatch(data.subarray(at, at + n)));
    at += n;
  }
  return out;
}
