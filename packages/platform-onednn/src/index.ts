// The package's entry (package.json `duet.platforms[0].entry`): the `onednn` platform plugin, available
// where the native addon was built and loads.

import { loadAddon } from './addon.js';
import type { PlatformPlugin } from './duet.js';
import { OnednnPlatform } from './onednn-platform.js';

export { type Bf16Math, OnednnKernels, OnednnKernelsError } from './onednn-kernels.js';
export { bf16MathFromEnv, OnednnPlatform } from './onednn-platform.js';

export const platformPlugin: PlatformPlugin = {
  name: 'onednn',
  contractVersion: 1,
  async probe() {
    const load = loadAddon();
    if (!('addon' in load)) return { available: false, reason: load.reason };
    const info = load.addon.describe();
    return { available: true, reason: `oneDNN ${info.version}, ${info.isa} kernels` };
  },
  async create() {
    const load = loadAddon();
    if (!('addon' in load)) throw new Error(`the onednn platform is not available: ${load.reason}`);
    return new OnednnPlatform(load.addon);
  },
};
