// A Platform whose kernel sets pass through a wrapper (for benchmarks that time kernel calls); every other
// member of the platform is its own.

import type { Kernels } from '../src/kernels/kernels.js';
import type { Platform } from '../src/platforms/platform.js';

/** `platform` whose `createKernels` returns `wrap` of the kernel set it made. */
export function withWrappedKernels(platform: Platform, wrap: (kernels: Kernels) => Kernels): Platform {
  const createKernels: Platform['createKernels'] = async (opts) => wrap(await platform.createKernels(opts));
  return new Proxy(platform, {
    get(target, prop) {
      if (prop === 'createKernels') return createKernels;
      const value = Reflect.get(target, prop, target) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}
