// The DBO splitter cuts every per-step input field consistently and the join restores the original exactly
// (issue 6, acceptance 2), for the batch shapes a step can have: decode-only, balanced prefills, imbalanced
// prefills, a single long request, requests with prefix-cache hits (positions starting mid-sequence) and
// chunked-prefill continuations, mixed with decodes. For each shape: the split decision is where the
// policy says (request boundary within 10% of balance, else inside the straddling prefill, balanced by
// attention cost); A's fields followed by B's give back tokenIds, positions and slotMapping; A's and B's
// sequences, re-merged, give back the sequences with their block tables; every micro-batch is a valid
// batch on its own whose slots agree with its block tables; the logits rows map back; and joinLogits puts
// the rows back in the original order. Everything is integer bookkeeping: equality is exact.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  BOUNDARY_TOLERANCE,
  DEFAULT_DBO_THRESHOLDS,
  decideSplit,
  joinLogits,
  LINEAR_COST_PER_TOKEN,
  type MicroBatches,
  splitForwardBatch,
} from '../../src/dbo/micro-batch.js';
import {
  type ForwardBatch,
  type SequenceSlice,
  validateForwardBatch,
} from '../../src/layers/forward-batch.js';

const BLOCK = 16;
const VOCAB = 1000;
const MAX_POS = 1 << 16;

/** One request's share of a step: `len` tokens at positions start .. start + len - 1. */
interface Req {
  /** First position computed this step (> 0: a prefix-cache hit, an earlier chunk, or a decode). */
  readonly start: number;
  readonly len: number;
  /** Logits rows wanted: the last token (sampling), every token (prompt log-probs) or none (mid-chunk). */
  readonly rows?: 'last' | 'all' | 'none';
}

/** Builds a step's batch; each request owns its own blocks (ids interleaved so that tables differ). */
function buildBatch(reqs: readonly Req[]): ForwardBatch {
  const tokenIds: number[] = [];
  const positions: number[] = [];
  const slots: number[] = [];
  const rows: number[] = [];
  const seqs: SequenceSlice[] = [];
  reqs.forEach((r, i) => {
    const numBlocks = Math.ceil((r.start + r.len) / BLOCK);
    const blockTable = Int32Array.from({ length: numBlocks }, (_, b) => b * reqs.length + i + 1);
    const queryStart = tokenIds.length;
    seqs.push({ queryStart, queryLen: r.len, blockTable });
    for (let p = r.start; p < r.start + r.len; p++) {
      tokenIds.push((p * 7919 + i * 104729) % VOCAB);
      positions.push(p);
      slots.push(blockTable[Math.floor(p / BLOCK)]! * BLOCK + (p % BLOCK));
    }
    const rowsOf = r.rows ?? 'last';
    if (rowsOf === 'last') rows.push(tokenIds.length - 1);
    else if (rowsOf === 'all') for (let t = queryStart; t < tokenIds.length; t++) rows.push(t);
  });
  return {
    numTokens: tokenIds.length,
    tokenIds: Int32Array.from(tokenIds),
    positions: Int32Array.from(positions),
    slotMapping: Int32Array.from(slots),
    seqs,
    logitsIndices: Int32Array.from(rows),
  };
}

const concat = (x: Int32Array, y: Int32Array) => Int32Array.from([...x, ...y]);

/** The batch's sequences as plain data (block tables as arrays) for deep comparison. */
const plainSeqs = (seqs: readonly SequenceSlice[]) =>
  seqs.map((s) => ({ queryStart: s.queryStart, queryLen: s.queryLen, blockTable: [...s.blockTable] }));

/** A's sequences then B's (shifted back by the split point), the straddling request's two parts merged. */
function rejoinSeqs(mb: MicroBatches, at: number): ReturnType<typeof plainSeqs> {
  const a = plainSeqs(mb.a.seqs);
  const b = plainSeqs(mb.b.seqs).map((s) => ({ ...s, queryStart: s.queryStart + at }));
  const lastA = a[a.length - 1]!;
  const firstB = b[0]!;
  // The two parts of one request: the same block table and B starting right where A ended.
  if (
    firstB.queryStart === lastA.queryStart + lastA.queryLen &&
    mb.b.positions[0] === mb.a.positions[mb.a.numTokens - 1]! + 1 &&
    mb.b.seqs[0]!.blockTable === mb.a.seqs[mb.a.seqs.length - 1]!.blockTable
  ) {
    return [...a.slice(0, -1), { ...lastA, queryLen: lastA.queryLen + firstB.queryLen }, ...b.slice(1)];
  }
  return [...a, ...b];
}

/** Every token's slot is where its block table puts its position. */
function assertSlotsFollowBlockTables(batch: ForwardBatch, what: string): void {
  for (const s of batch.seqs) {
    for (let t = s.queryStart; t < s.queryStart + s.queryLen; t++) {
      const p = batch.positions[t]!;
      assert.equal(batch.slotMapping[t], s.blockTable[Math.floor(p / BLOCK)]! * BLOCK + (p % BLOCK), what);
    }
  }
}

/** Fake logits: row for batch token t holds t·vocab + v, so any misplaced row shows. */
function fakeLogits(mbRows: Int32Array, offset: number, vocab: number): Float32Array {
  const out = new Float32Array(mbRows.length * vocab);
  mbRows.forEach((t, i) => {
    for (let v = 0; v < vocab; v++) out[i * vocab + v] = (t + offset) * vocab + v;
  });
  return out;
}

/** Cost of tokens [from, to) as the policy defines it: linear work plus attended positions. */
function cost(batch: ForwardBatch, from: number, to: number): number {
  let c = 0;
  for (let t = from; t < to; t++) c += LINEAR_COST_PER_TOKEN + batch.positions[t]! + 1;
  return c;
}

/** Splits at `at` and checks every field, the sequences, the logits mapping and the join. */
function assertSplitRoundTrip(batch: ForwardBatch, at: number): MicroBatches {
  const mb = splitForwardBatch(batch, at);
  const { a, b } = mb;
  assert.ok(a.numTokens >= 1 && b.numTokens >= 1, 'no empty micro-batch');
  assert.equal(a.numTokens, at);
  assert.equal(a.numTokens + b.numTokens, batch.numTokens);
  assert.deepEqual(concat(a.tokenIds, b.tokenIds), batch.tokenIds, 'tokenIds');
  assert.deepEqual(concat(a.positions, b.positions), batch.positions, 'positions');
  assert.deepEqual(concat(a.slotMapping, b.slotMapping), batch.slotMapping, 'slotMapping');
  assert.deepEqual(rejoinSeqs(mb, at), plainSeqs(batch.seqs), 'sequences and block tables');
  for (const [name, part] of [
    ['A', a],
    ['B', b],
  ] as const) {
    validateForwardBatch(part, VOCAB, MAX_POS);
    assertSlotsFollowBlockTables(part, `micro-batch ${name}: slots follow the block tables`);
  }
  // Each original logits row is found again, in its micro-batch, at the same token.
  assert.equal(mb.logitsOrigin.length, batch.logitsIndices.length);
  mb.logitsOrigin.forEach(([which, row], i) => {
    const token = which === 0 ? a.logitsIndices[row]! : b.logitsIndices[row]! + at;
    assert.equal(token, batch.logitsIndices[i], `logits row ${i}`);
  });
  assert.equal(a.logitsIndices.length + b.logitsIndices.length, batch.logitsIndices.length);
  // joinLogits restores the whole batch's rows in order.
  const V = 5;
  const joined = joinLogits(mb, fakeLogits(a.logitsIndices, 0, V), fakeLogits(b.logitsIndices, at, V), V);
  assert.deepEqual(joined, fakeLogits(batch.logitsIndices, 0, V), 'joined logits in the original order');
  return mb;
}

describe('split every field and join back exactly', () => {
  test('decode-only: split at the request boundary nearest balance; both halves decode-only', () => {
    // 40 decodes with contexts from 10 to 1180: the boundary balances attention cost, not count.
    const reqs = Array.from({ length: 40 }, (_, i) => ({ start: 10 + i * 30, len: 1 }));
    const batch = buildBatch(reqs);
    const d = decideSplit(batch, DEFAULT_DBO_THRESHOLDS);
    assert.ok(d.split);
    assert.match(d.reason, /request boundary/);
    assert.ok(d.splitToken > 20, `longer contexts come later: more decodes in A (${d.splitToken})`);
    assert.equal(d.costA, cost(batch, 0, d.splitToken));
    assert.equal(d.costB, cost(batch, d.splitToken, batch.numTokens));
    assert.ok(Math.abs(d.costA - d.costB) <= 2 * BOUNDARY_TOLERANCE * (d.costA + d.costB));
    const mb = assertSplitRoundTrip(batch, d.splitToken);
    assert.ok([...mb.a.seqs, ...mb.b.seqs].every((s) => s.queryLen === 1));
    assert.equal(mb.a.seqs.length + mb.b.seqs.length, 40);
    // Below the decode threshold the step stays whole.
    assert.equal(decideSplit(buildBatch(reqs.slice(0, 31)), DEFAULT_DBO_THRESHOLDS).split, false);
  });

  test('balanced prefills: split exactly between the middle two requests', () => {
    const batch = buildBatch(Array.from({ length: 4 }, () => ({ start: 0, len: 100 })));
    const d = decideSplit(batch, DEFAULT_DBO_THRESHOLDS);
    assert.equal(d.splitToken, 200);
    assert.equal(d.costA, d.costB);
    const mb = assertSplitRoundTrip(batch, 200);
    assert.deepEqual(
      [mb.a.seqs.length, mb.b.seqs.length],
      [2, 2],
      'whole requests on each side, none straddling',
    );
  });

  test('imbalanced prefills: no boundary within 10%, so the long prefill is split inside', () => {
    const batch = buildBatch([
      { start: 0, len: 30 },
      { start: 0, len: 400 },
      { start: 0, len: 20 },
    ]);
    const d = decideSplit(batch, DEFAULT_DBO_THRESHOLDS);
    assert.match(d.reason, /inside a prefill/);
    assert.ok(d.splitToken > 30 && d.splitToken < 430);
    assert.ok(Math.abs(d.costA - d.costB) / (d.costA + d.costB) < 0.01, 'balanced to within one token');
    const mb = assertSplitRoundTrip(batch, d.splitToken);
    // B continues request 1 from the next position, with the same block table (its KV is written by A).
    const cont = mb.b.seqs[0]!;
    assert.equal(cont.queryStart, 0);
    assert.equal(mb.b.positions[0], d.splitToken - 30);
    assert.equal(cont.blockTable, batch.seqs[1]!.blockTable);
    // Same split at every possible point: the round trip holds wherever the cut falls.
    for (const at of [1, 29, 30, 31, 229, 429, 430, 449]) assertSplitRoundTrip(batch, at);
  });

  test('a single long request: split inside, after the middle (later tokens attend to more)', () => {
    const batch = buildBatch([{ start: 0, len: 1000 }]);
    const d = decideSplit(batch, DEFAULT_DBO_THRESHOLDS);
    assert.match(d.reason, /inside a prefill at token \d+ of 1000/);
    assert.ok(d.splitToken > 500 && d.splitToken < 1000);
    assert.ok(Math.abs(d.costA - d.costB) / (d.costA + d.costB) < 0.002);
    const mb = assertSplitRoundTrip(batch, d.splitToken);
    assert.deepEqual([mb.a.seqs.length, mb.b.seqs.length], [1, 1]);
  });

  test('prefix-cache hits: positions start mid-sequence; costs and slots follow the positions', () => {
    // Two prompts of 300 new tokens each; the first had 512 cached tokens (32 blocks) before them.
    const hit = buildBatch([
      { start: 512, len: 300 },
      { start: 0, len: 300 },
    ]);
    const d = decideSplit(hit, DEFAULT_DBO_THRESHOLDS);
    // The cached prefix makes request 0 dearer: no boundary within 10%, split inside request 0.
    assert.match(d.reason, /inside a prefill/);
    assert.ok(d.splitToken < 300, `split inside the prefix-hit request (${d.splitToken})`);
    assert.equal(d.costA, cost(hit, 0, d.splitToken));
    assertSplitRoundTrip(hit, d.splitToken);
    assert.ok(
      hit.seqs[0]!.blockTable.length === Math.ceil(812 / BLOCK),
      'the table covers the cached blocks',
    );
    // With both prefixes cached the boundary is balanced again.
    const both = buildBatch([
      { start: 512, len: 300 },
      { start: 512, len: 300 },
    ]);
    assert.equal(decideSplit(both, DEFAULT_DBO_THRESHOLDS).splitToken, 300);
    assertSplitRoundTrip(both, 300);
  });

  test('chunked-prefill continuations mixed with decodes and a new prompt, prompt log-probs wanted', () => {
    // A request continuing its prefill (chunk 3 of a long prompt: positions 256..511, no logits: the chunk
    // does not end the prompt), 20 decodes, and a new prompt asking for prompt log-probs (every row).
    const batch = buildBatch([
      { start: 256, len: 256, rows: 'none' },
      ...Array.from({ length: 20 }, (_, i) => ({ start: 40 + i, len: 1 })),
      { start: 0, len: 120, rows: 'all' },
    ]);
    assert.equal(batch.logitsIndices.length, 20 + 120);
    const d = decideSplit(batch, DEFAULT_DBO_THRESHOLDS);
    assert.ok(d.split);
    const mb = assertSplitRoundTrip(batch, d.splitToken);
    assert.match(d.reason, /inside a prefill at token \d+ of 256/);
    // The continuation's second part starts where the first ended, in the same blocks.
    assert.equal(mb.b.positions[0], 256 + d.splitToken);
    // Every split point, including ones inside the prompt whose rows are all wanted.
    for (let at = 1; at < batch.numTokens; at += 7) assertSplitRoundTrip(batch, at);
  });

  test('logits rows in any order come back in that order', () => {
    const batch = {
      ...buildBatch([
        { start: 0, len: 50 },
        { start: 0, len: 50 },
      ]),
    };
    const shuffled: ForwardBatch = { ...batch, logitsIndices: Int32Array.of(99, 3, 49, 50, 0, 75, 49) };
    for (const at of [1, 25, 50, 51, 99]) assertSplitRoundTrip(shuffled, at);
  });
});
