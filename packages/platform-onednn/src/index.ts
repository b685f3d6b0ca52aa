// The package's entry (package.json `duet.platforms[0].entry`): the `onednn` platform plugin, available
// where the native addon was built and loads.

import { loadAddon } from './addon.js';
import type { PlatformPlugin } from './duet.js';
import { createOnednnPlatform } from './onednn-platform.js';

export { type Bf16Math, type OnednnKernels, OnednnKernelsError } from './onednn-kernels.js';
export { bf16MathFor, createOnednnPlatform, type OnednnPlatform } from './onednn-platform.js';

export const platformPlugin: PlatformPlugin = {
  name: 'onednn',
  contractVersion: 1,
  // Above the CPU platform (0) and a plugin's default (10): where it runs, it is the default device.
  priority: 20,
  async probe() {
    const load = loadAddon();
    if (!('addon' in load)) return { available: false, reason: load.reason };
    try {
      const info = load.addon.describe();
      return { available: true, reason: `oneDNN ${info.version}, ${info.isa} kernels` };
    } catch (e) {
      return { available: false, reason: `the native addon does not answer: ${(e as Error).message}` };
    }
  },
  async create() {
    const load = loadAddon();
    if (!('addon' in load)) throw new Error(`the onednn platform is not available: ${load.reason}`);
    return createOnednnPlatform(load.addon);
  },
};
