// A Platform wrapper for benchmarks that times every call of every kernel-set member (`linear`,
// `rmsNorm`, `mlaAttention`, …) into a KernelProfile, so that a step's time can be split by kernel.

import type { Kernels, LinearWeight } from '../src/kernels/kernels.js';
import type { Platform } from '../src/platforms/platform.js';
import { withWrappedKernels } from './wrap-kernels.js';

/** Seconds and calls per kernel member since the last `reset`. */
export class KernelProfile {
  readonly seconds = new Map<string, number>();
  readonly calls = new Map<string, number>();

  add(member: string, s: number): void {
    this.seconds.set(member, (this.seconds.get(member) ?? 0) + s);
    this.calls.set(member, (this.calls.get(member) ?? 0) + 1);
  }

  reset(): void {
    this.seconds.clear();
    this.calls.clear();
  }

  /** Seconds spent in all members. */
  total(): number {
    let s = 0;
    for (const v of this.seconds.values()) s += v;
    return s;
  }
}

/** Members that only prepare or hand out memory: not timed (they run at load, not in a step). */
const UNTIMED: ReadonlySet<PropertyKey> = new Set([
  'name',
  'allocate',
  'allocateActivations',
  'allocateIndices',
  'free',
]);

/** The profile's key of a call: the member, and for matrix products the weight's dtype and shape. */
function memberKey(member: string, args: readonly unknown[]): string {
  const w = member === 'linear' ? args[2] : member === 'headLinear' ? args[6] : undefined;
  if (typeof w !== 'object' || w === null || !('dtype' in w)) return member;
  const lw = w as LinearWeight;
  return `${member} ${lw.dtype} [${lw.n}, ${lw.k}]`;
}

function profileKernels(kernels: Kernels, profile: KernelProfile): Kernels {
  return new Proxy(kernels, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      if (UNTIMED.has(prop) || typeof prop !== 'string' || prop.startsWith('prepare'))
        return value.bind(target);
      return (...args: unknown[]) => {
        const t = performance.now();
        try {
          return value.apply(target, args);
        } finally {
          profile.add(memberKey(prop, args), (performance.now() - t) / 1000);
        }
      };
    },
  });
}

/** `platform` whose kernel sets time every member call into `profile`. */
export function withKernelProfile(platform: Platform, profile: KernelProfile): Platform {
  return withWrappedKernels(platform, (kernels) => profileKernels(kernels, profile));
}
