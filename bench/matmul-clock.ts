// A Platform wrapper for benchmarks that measures how much of a step is matrix products: its kernel sets
// add the seconds spent in `linear` and `headLinear` to a MatmulClock; everything else passes through.

import type { Kernels } from '../src/kernels/kernels.js';
import type { Platform } from '../src/platforms/platform.js';
import { withWrappedKernels } from './wrap-kernels.js';

/** Seconds spent in matrix products so far. */
export class MatmulClock {
  seconds = 0;
}

const TIMED: ReadonlySet<PropertyKey> = new Set(['linear', 'headLinear']);

/** `kernels` with `linear` and `headLinear` timed into `clock`. */
function timeKernels(kernels: Kernels, clock: MatmulClock): Kernels {
  return new Proxy(kernels, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      if (!TIMED.has(prop)) return value.bind(target);
      return (...args: unknown[]) => {
        const t = performance.now();
        try {
          return value.apply(target, args);
        } finally {
          clock.seconds += (performance.now() - t) / 1000;
        }
      };
    },
  });
}

/** `platform` whose kernel sets time their matrix products into `clock`; every other member is its own. */
export function withMatmulClock(platform: Platform, clock: MatmulClock): Platform {
  return withWrappedKernels(platform, (kernels) => timeKernels(kernels, clock));
}
