// numpy's summary statistics as vLLM's benchmark uses them: mean, population standard deviation, median
// and percentiles with linear interpolation between closest ranks (numpy's default). An empty list
// summarizes as 0 everywhere, like vLLM's `np.mean(values or 0)`.

/** Arithmetic mean (0 for an empty list). */
export function mean(values: readonly number[]): number {
  if (values.length === 0) return 0;
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** Population standard deviation, numpy's `np.std` (ddof = 0); 0 for an empty list. */
export function std(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const m = mean(values);
  let sum = 0;
  for (const v of values) sum += (v - m) * (v - m);
  return Math.sqrt(sum / values.length);
}

/**
 * The p-th percentile (p in [0, 100]) as numpy's `np.percentile` computes it by default: the value at
 * rank (n − 1)·p/100 of the sorted values, interpolating linearly between neighbours; 0 for an empty list.
 */
export function percentile(values: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`a percentile must be in [0, 100], got ${p}`);
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = ((sorted.length - 1) * p) / 100;
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return a + (b - a) * (rank - lo);
}

/** The median (numpy's: the mean of the two middle values for an even count); 0 for an empty list. */
export function median(values: readonly number[]): number {
  return percentile(values, 50);
}
