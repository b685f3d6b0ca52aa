// When each benchmark request is sent: vLLM's arrival process. With --request-rate inf every request
// leaves at time 0; otherwise the gaps between requests are gamma-distributed with shape = --burstiness
// and mean 1/rate (burstiness 1: exponential gaps, a Poisson process; below 1 burstier, above 1 more
// regular; inf: evenly spaced). As vLLM does, the cumulative times are then rescaled so that the last
// request leaves at exactly num_requests / rate, which keeps throughput comparable across seeds.

import type { BenchRng } from './bench-rng.js';
import { BenchArgumentError } from './errors.js';

/** One gap between consecutive requests, in seconds: gamma(shape = burstiness, scale = 1/(rate·burstiness)). */
export function drawInterArrival(rng: BenchRng, requestRate: number, burstiness: number): number {
  if (requestRate === Number.POSITIVE_INFINITY) return 0;
  if (burstiness === Number.POSITIVE_INFINITY) return 1 / requestRate;
  return rng.gamma(burstiness, 1 / (requestRate * burstiness));
}

/**
 * The send time of each of `numRequests` requests, in seconds from the start of the run (non-decreasing;
 * the first request waits its own first gap, as in vLLM).
 */
export function arrivalSchedule(
  numRequests: number,
  requestRate: number,
  burstiness: number,
  rng: BenchRng,
): number[] {
  if (!(requestRate > 0)) {
    throw new BenchArgumentError(`--request-rate must be a positive number or inf, got ${requestRate}`);
  }
  if (!(burstiness > 0)) {
    throw new BenchArgumentError(`--burstiness must be a positive number, got ${burstiness}`);
  }
  const times: number[] = [];
  let t = 0;
  for (let i = 0; i < numRequests; i++) {
    t += drawInterArrival(rng, requestRate, burstiness);
    times.push(t);
  }
  const last = times[times.length - 1];
  if (last !== undefined && last !== 0 && Number.isFinite(requestRate)) {
    const factor = numRequests / requestRate / last;
    for (let i = 0; i < times.length; i++) times[i] = times[i]! * factor;
  }
  return times;
}
