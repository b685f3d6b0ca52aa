// A faster exp for the sampler's hot loops (softmax weights over 100k+ logits): about twice Math.exp's
// speed in V8, relative error below 3e-10, for arguments x <= 0 only (logit minus the row maximum).

const MAGIC_ROUND = 6755399441055744; // 1.5 · 2^52: adding and subtracting it rounds a double to an integer
/** 2^-i for i in [0, 1100): 2^-1074 is the smallest double; beyond, the table holds 0. */
const POW2_NEG = Float64Array.from({ length: 1100 }, (_, i) => 2 ** -i);

/**
 * exp(x) for x <= 0 (returns 0 below -745, where exp underflows). x = k·ln2 + r with |r| <= ln2/2;
 * exp(r) by its Taylor series to r^8 (error below 3e-10 relative), times 2^k from a table.
 */
export function expNonPositive(x: number): number {
  if (x < -745) return 0;
  const k = x * Math.LOG2E + MAGIC_ROUND - MAGIC_ROUND;
  const r = x - k * Math.LN2;
  const p =
    1 +
    r *
      (1 +
        r *
          (0.5 +
            r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (1 / 5040 + r * (1 / 40320))))))));
  return POW2_NEG[-k]! * p;
}
