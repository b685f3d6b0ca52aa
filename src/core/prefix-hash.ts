// Content hash of one full KV block for prefix caching: hash(parent block's hash, the block's token ids).
// Chaining through the parent makes a block's hash stand for the whole prefix up to and including it.
// The hash is only a bucket key: the block pool confirms every hit by comparing token ids and the parent
// block, so a collision costs a missed hit, never a wrong KV.

import { fmix32 } from '../util/fmix32.js';

/** A 64-bit block hash as 16 lowercase hex digits. */
export type BlockHash = string;

const TWO_POW_32 = 4294967296;

function rotl32(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/** Two independent murmur3-style lanes; together a 64-bit state. */
class HashState {
  private a: number;
  private b: number;
  private length = 0;

  constructor(seedA: number, seedB: number) {
    this.a = seedA | 0;
    this.b = seedB | 0;
  }

  /** Feeds one 32-bit word. */
  word(k: number): void {
    let ka = Math.imul(k | 0, 0xcc9e2d51);
    ka = Math.imul(rotl32(ka, 15), 0x1b873593);
    this.a = (Math.imul(rotl32(this.a ^ ka, 13), 5) + 0xe6546b64) | 0;
    let kb = Math.imul(k | 0, 0x85ebca77);
    kb = Math.imul(rotl32(kb, 17), 0xc2b2ae3d);
    this.b = (Math.imul(rotl32(this.b ^ kb, 11), 9) + 0x27d4eb2f) | 0;
    this.length++;
  }

  /** Feeds a non-negative integer up to 2^53 (token ids are far smaller; the high word is usually 0). */
  integer(x: number): void {
    this.word(x >>> 0);
    this.word(Math.floor(x / TWO_POW_32) >>> 0);
  }

  digest(): BlockHash {
    let a = (this.a ^ this.length) >>> 0;
    let b = (this.b ^ this.length) >>> 0;
    a = fmix32((a + b) >>> 0);
    b = fmix32((b + a) >>> 0);
    return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
  }
}

/** Seeds for the first block of a sequence (no parent). */
const ROOT_SEED_A = 0x5bd1e995;
const ROOT_SEED_B = 0x1b873593;

/**
 * Hash of the full block `tokenIds[start, end)` whose preceding block hashed to `parent` (null for the
 * first block of a sequence). Deterministic across runs and processes.
 */
export function hashBlockTokens(
  parent: BlockHash | null,
  tokenIds: readonly number[],
  start: number,
  end: number,
): BlockHash {
  const state = new HashState(ROOT_SEED_A, ROOT_SEED_B);
  if (parent !== null) {
    state.word(Number.parseInt(parent.slice(0, 8), 16));
    state.word(Number.parseInt(parent.slice(8, 16), 16));
  } else {
    state.word(0xffffffff);
  }
  for (let i = start; i < end; i++) {
    state.integer(tokenIds[i]!);
  }
  return state.digest();
}

/**
 * Extends `hashes` (the hashes of the first `hashes.length` full blocks of `tokenIds`) with the hashes of
 * every further full block. A trailing partial block gets no hash.
 */
export function extendBlockHashes(hashes: BlockHash[], tokenIds: readonly number[], blockSize: number): void {
  const numFullBlocks = Math.floor(tokenIds.length / blockSize);
  for (let i = hashes.length; i < numFullBlocks; i++) {
    const parent = i === 0 ? null : hashes[i - 1]!;
    hashes.push(hashBlockTokens(parent, tokenIds, i * blockSize, (i + 1) * blockSize));
  }
}
