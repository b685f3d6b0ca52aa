// murmur3's 32-bit finaliser, shared by the prefix-cache block hash and the dummy-weight seeding.

/** A bijective mix of a 32-bit word: every input bit spreads over the whole output (unsigned). */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
