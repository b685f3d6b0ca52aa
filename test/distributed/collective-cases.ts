// The correctness matrix a rank runs against its communicator: every collective for each size, with
// inputs every rank can regenerate for every other rank, so each rank computes the one-rank reference
// itself and reports mismatches. Integer-valued float32 inputs make sums exact in any order; the
// random-float all-reduce checks the reassociation tolerance and reports a hash so the test can assert
// that all ranks hold bitwise-identical sums.

import type { CommBuffer, Communicator } from '../../src/distributed/communicator.js';

export interface CaseResult {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
  /** FNV hash of the output bytes (for cross-rank identity checks), when relevant. */
  readonly hash?: number;
}

/** Integer-valued inputs in [-100, 100]: rank q, case salt c, element i. */
function intValue(q: number, c: number, i: number): number {
  return ((q * 7919 + i * 31 + c * 13) % 201) - 100;
}

type BufferCtor = Float32ArrayConstructor | Int32ArrayConstructor;

function intArray(ctor: BufferCtor, n: number, q: number, c: number): CommBuffer {
  const a = new ctor(n);
  for (let i = 0; i < n; i++) a[i] = intValue(q, c, i);
  return a;
}

/** A deterministic PRNG in [-1, 1) (mulberry32), for non-integer sums. */
function randomArray(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    a[i] = (((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1;
  }
  return a;
}

export function hashBytes(a: CommBuffer): number {
  const b = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
  return h >>> 0;
}

function firstDifference(got: CommBuffer, want: ArrayLike<number>): string {
  if (got.length !== want.length) return `length ${got.length}, expected ${want.length}`;
  for (let i = 0; i < got.length; i++)
    if (got[i] !== want[i]) return `element ${i}: got ${got[i]}, expected ${want[i]}`;
  return '';
}

/** Per-destination counts with zeros and unevenness: what rank `from` sends to rank `to`. */
export function allToAllCount(n: number, world: number, from: number, to: number): number {
  if (n === 0 || (from + to) % 3 === 2) return 0;
  return Math.floor(n / world) + from + 2 * to;
}

/** Per-rank counts for all-gather / reduce-scatter: uneven, rank 1 contributes nothing when n > 1. */
export function gatherCounts(n: number, world: number): number[] {
  return Array.from({ length: world }, (_, q) => (n > 1 && q === 1 ? 0 : n + q));
}

/** Cases per size (runCollectiveMatrix), plus the barrier and the two-in-flight case at the end. */
export const CASES_PER_SIZE = 9;
export const FINAL_CASES = 2;

/** Runs every collective for every size; returns one result per case. */
export async function runCollectiveMatrix(
  comm: Communicator,
  sizes: readonly number[],
): Promise<CaseResult[]> {
  const P = comm.worldSize;
  const me = comm.rank;
  const results: CaseResult[] = [];
  const record = (name: string, detail: string, hash?: number) =>
    results.push({ name, ok: detail === '', detail, hash });
  let salt = 0;

  for (const n of sizes) {
    // allReduce, integer-valued: exact.
    {
      const c = ++salt;
      const buf = intArray(Float32Array, n, me, c) as Float32Array;
      await comm.allReduce(buf).wait();
      const want = new Float32Array(n);
      for (let q = 0; q < P; q++) for (let i = 0; i < n; i++) want[i]! += intValue(q, c, i);
      record(`allReduce int n=${n}`, firstDifference(buf, want));
    }
    // allReduce, random floats: within reassociation bound, identical on all ranks.
    {
      const c = ++salt;
      const inputs = Array.from({ length: P }, (_, q) => randomArray(n, c * 1000 + q));
      const buf = inputs[me]!.slice();
      await comm.allReduce(buf).wait();
      let detail = '';
      for (let i = 0; i < n && detail === ''; i++) {
        let exact = 0;
        let magnitude = 0;
        for (const x of inputs) {
          exact += x[i]!;
          magnitude += Math.abs(x[i]!);
        }
        // Any float32 summation order of P terms errs by at most (P-1)·ε·Σ|x| (ε = 2^-24), plus the
        // final rounding of the float64 reference to float32.
        const bound = (P - 1) * 2 ** -24 * magnitude + 2 ** -24 * Math.abs(exact);
        if (Math.abs(buf[i]! - exact) > bound * 1.0001)
          detail = `element ${i}: got ${buf[i]}, exact ${exact}, bound ${bound}`;
      }
      record(`allReduce float n=${n}`, detail, hashBytes(buf));
    }
    // allGather, Float32 and Int32, uneven counts with a zero.
    for (const ctor of [Float32Array, Int32Array] as const) {
      const c = ++salt;
      const counts = gatherCounts(n, P);
      const total = counts.reduce((a, b) => a + b, 0);
      const out = new ctor(total);
      out.fill(-7);
      await comm.allGather(out, intArray(ctor, counts[me]!, me, c), counts).wait();
      const want: number[] = [];
      for (let q = 0; q < P; q++) for (let i = 0; i < counts[q]!; i++) want.push(intValue(q, c, i));
      record(`allGather ${ctor.name} n=${n}`, firstDifference(out, want));
    }
    // reduceScatter, uneven counts with a zero.
    {
      const c = ++salt;
      const counts = gatherCounts(n, P);
      const total = counts.reduce((a, b) => a + b, 0);
      const out = new Float32Array(counts[me]!);
      await comm.reduceScatter(out, intArray(Float32Array, total, me, c) as Float32Array, counts).wait();
      const at = counts.slice(0, me).reduce((a, b) => a + b, 0);
      const want = new Float32Array(counts[me]!);
      for (let q = 0; q < P; q++) for (let i = 0; i < want.length; i++) want[i]! += intValue(q, c, at + i);
      record(`reduceScatter n=${n}`, firstDifference(out, want));
    }
    // allToAll, Float32 and Int32, uneven counts including zeros.
    for (const ctor of [Float32Array, Int32Array] as const) {
      const c = ++salt;
      const send = Array.from({ length: P }, (_, to) => allToAllCount(n, P, me, to));
      const recv = Array.from({ length: P }, (_, from) => allToAllCount(n, P, from, me));
      const sendTotal = send.reduce((a, b) => a + b, 0);
      const out = new ctor(recv.reduce((a, b) => a + b, 0));
      await comm.allToAll(out, recv, intArray(ctor, sendTotal, me, c), send).wait();
      // Rank `from` sends to `me` the slice of its input starting after what it sends to lower ranks.
      const want: number[] = [];
      for (let from = 0; from < P; from++) {
        let at = 0;
        for (let to = 0; to < me; to++) at += allToAllCount(n, P, from, to);
        for (let i = 0; i < recv[from]!; i++) want.push(intValue(from, c, at + i));
      }
      record(`allToAll ${ctor.name} n=${n}`, firstDifference(out, want));
    }
    // broadcast from a root that varies with n, Float32 and Int32.
    for (const ctor of [Float32Array, Int32Array] as const) {
      const c = ++salt;
      const root = (n + c) % P;
      const buf = me === root ? intArray(ctor, n, root, c) : new ctor(n).fill(-3);
      await comm.broadcast(buf, root).wait();
      record(`broadcast ${ctor.name} n=${n} root=${root}`, firstDifference(buf, intArray(ctor, n, root, c)));
    }
  }
  await comm.barrier().wait();
  record('barrier', '');
  // Two collectives in flight at once (one per micro-batch), completing in issue order.
  {
    const a = intArray(Float32Array, 5000, me, 900) as Float32Array;
    const b = intArray(Float32Array, 300, me, 901) as Float32Array;
    const ha = comm.allReduce(a);
    const hb = comm.allReduce(b);
    await Promise.all([hb.wait(), ha.wait()]);
    const wa = new Float32Array(a.length);
    const wb = new Float32Array(b.length);
    for (let q = 0; q < P; q++) {
      for (let i = 0; i < wa.length; i++) wa[i]! += intValue(q, 900, i);
      for (let i = 0; i < wb.length; i++) wb[i]! += intValue(q, 901, i);
    }
    record('two in flight', firstDifference(a, wa) + firstDifference(b, wb));
  }
  return results;
}
