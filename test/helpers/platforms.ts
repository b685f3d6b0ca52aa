// The platforms the shared suites run on: every platform usable here, found the way `duet` finds them
// (the built-in `cpu`, plus any plugin package installed or built in this repository, such as
// packages/platform-onednn). The golden, batch-invariance, parallel and DBO suites iterate over these, so a
// new platform is tested by the same assertions as the CPU one.

import type { Kernels } from '../../src/kernels/kernels.js';
import { ReferenceKernels } from '../../src/kernels/reference/reference-kernels.js';
import { PlatformRegistry } from '../../src/platforms/platform-registry.js';

/** Names of the usable platforms, best first (today at least `cpu`). */
export async function usablePlatforms(): Promise<string[]> {
  return (await PlatformRegistry.discover()).usableNames();
}

/** A kernel set to run a suite on: a name for test titles and its factory. */
export type KernelSetFactory = readonly [name: string, make: () => Promise<Kernels>];

/**
 * The TypeScript reference kernels, then each usable platform's kernels with `numThreads` threads
 * (named like `cpu x2`).
 */
export async function kernelSetsToTest(numThreads = 2): Promise<KernelSetFactory[]> {
  const registry = await PlatformRegistry.discover();
  const sets: KernelSetFactory[] = [['reference', async () => new ReferenceKernels()]];
  for (const name of registry.usableNames()) {
    sets.push([
      `${name} x${numThreads}`,
      async () => (await registry.create(name)).createKernels({ numThreads }),
    ]);
  }
  return sets;
}
