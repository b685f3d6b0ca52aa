// Seeded random draws for the serving benchmark: uniform integers (dataset lengths and token ids), normal
// and gamma variates (request inter-arrival times). Built on the engine's xoshiro128** stream so that a
// --seed repeats a run exactly; the streams differ from numpy's, so prompts are not vLLM's byte for byte.

import { SamplingRng } from '../sampling/sampling-rng.js';

/** A seeded source of the draws the benchmark needs. Not cryptographic. */
export class BenchRng {
  private readonly rng: SamplingRng;

  /**
   * @param seed the user's --seed.
   * @param stream which independent stream of that seed (the dataset and the arrivals use different ones,
   *   so that prompt lengths and inter-arrival times are not drawn from the same numbers).
   */
  constructor(seed: number, stream = 0) {
    this.rng = new SamplingRng(seed + stream * 2 ** 32);
  }

  /** A uniform double in [0, 1). */
  float(): number {
    return this.rng.nextFloat();
  }

  /** A uniform integer in [low, high] (both included), as numpy's `integers(low, high + 1)`. */
  integer(low: number, high: number): number {
    if (!Number.isInteger(low) || !Number.isInteger(high) || high < low) {
      throw new RangeError(`integer(low, high) needs integers with low <= high, got ${low}, ${high}`);
    }
    return low + Math.floor(this.rng.nextFloat() * (high - low + 1));
  }

  /** A standard normal variate (Box–Muller). */
  normal(): number {
    const u1 = 1 - this.rng.nextFloat(); // in (0, 1]: log(u1) is finite
    const u2 = this.rng.nextFloat();
    return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  }

  /**
   * A gamma variate of the given shape k > 0 and scale θ > 0 (mean kθ, variance kθ²), by Marsaglia and
   * Tsang's method; shapes below 1 use the boost gamma(k) = gamma(k + 1)·U^(1/k). Shape 1 is exponential.
   */
  gamma(shape: number, scale: number): number {
    if (!(shape > 0) || !(scale > 0) || !Number.isFinite(shape) || !Number.isFinite(scale)) {
      throw new RangeError(
        `gamma(shape, scale) needs finite shape > 0 and scale > 0, got ${shape}, ${scale}`,
      );
    }
    if (shape < 1) {
      const u = 1 - this.rng.nextFloat();
      return this.gamma(shape + 1, scale) * u ** (1 / shape);
    }
    const d = shape - 1 / 3;
    const c = 1 / Math.sqrt(9 * d);
    for (;;) {
      const x = this.normal();
      const t = 1 + c * x;
      if (t <= 0) continue;
      const v = t * t * t;
      const u = 1 - this.rng.nextFloat();
      if (u < 1 - 0.0331 * x ** 4) return d * v * scale;
      if (Math.log(u) < 0.5 * x * x + d * (1 - v + Math.log(v))) return d * v * scale;
    }
  }
}
