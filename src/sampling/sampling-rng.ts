// A small seeded pseudo-random generator for sampling (xoshiro128**, seeded through splitmix32). Each
// request owns one, so its samples depend only on its seed, never on which requests share its batch.

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

/** A seeded random stream. Not cryptographic. */
export class SamplingRng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  /** Seeds from any safe integer (negative and above 2^32 included: both 32-bit halves are mixed in). */
  constructor(seed: number) {
    const lo = seed >>> 0;
    const hi = Math.floor(seed / TWO_POW_32) >>> 0;
    let x = (lo ^ Math.imul(hi, 0x27d4eb2d)) | 0;
    const next = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next() ^ hi;
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** The next 32 random bits, as an unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / TWO_POW_53;
  }

  /** A seed for another generator (e.g. an unseeded request's, drawn from the engine's generator). */
  nextSeed(): number {
    return this.nextUint32() * TWO_POW_32 + this.nextUint32();
  }
}

/**
 * The generator of a new request: from its own seed when it has one, else seeded by a draw from the
 * engine's generator (itself seeded by the engine seed), so runs with the same arrivals repeat exactly.
 */
export function createRequestRng(seed: number | null, engineRng: SamplingRng): SamplingRng {
  return new SamplingRng(seed ?? engineRng.nextSeed());
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
