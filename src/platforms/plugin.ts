// The plugin contract: what an installed npm package declares in its package.json (`duet` field) and what
// its entry modules export, so that Duet finds it without being told (as Python entry points let vLLM find
// vllm-ascend). See docs/platforms.md for a worked example.
//
//   package.json:  "duet": {
//                    "contractVersion": 1,
//                    "platforms": [{ "name": "onednn", "entry": "./dist/index.js" }],
//                    "models": [{ "architecture": "MyDeepseekForCausalLM", "entry": "./dist/model.js" }]
//                  }
//   platform entry module:  export const platformPlugin: PlatformPlugin
//   model entry module:     export const modelPlugin: ModelPlugin   (src/models/model-registry.ts)

import { z } from 'zod';
import type { Platform } from './platform.js';

/** Whether a platform can run on this machine, and why (shown by `duet env` and at start-up). */
export interface PlatformProbe {
  readonly available: boolean;
  /** One line: what was found (`oneDNN 2.6, avx512_core_bf16`) or what is missing. */
  readonly reason: string;
}

/** What a platform entry module exports as `platformPlugin`. */
export interface PlatformPlugin {
  /** The device name (`--device NAME`); must equal the name declared in package.json. */
  readonly name: string;
  /** The contract version the plugin was written against (`PLATFORM_CONTRACT_VERSION`). */
  readonly contractVersion: number;
  /**
   * Rank among available platforms when no `--device` is given: the highest wins. Default 10; the
   * WebAssembly CPU platform is 0, so any available plugin is preferred to it.
   */
  readonly priority?: number;
  /** Checks, cheaply and without side effects, whether the platform can run here. Must not throw. */
  probe(): Promise<PlatformProbe>;
  /** Builds the platform (called only after a passing probe). */
  create(): Promise<Platform>;
}

/** Types a plugin object where it is written (no annotation needed, so the source is also plain JS). */
export function definePlatformPlugin(plugin: PlatformPlugin): PlatformPlugin {
  return plugin;
}

/** The `duet` field of a plugin package's package.json. */
export const pluginManifestSchema = z.object({
  contractVersion: z.number().int(),
  platforms: z
    .array(z.object({ name: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/), entry: z.string().min(1) }))
    .default([]),
  models: z
    .array(
      z.object({ architecture: z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/), entry: z.string().min(1) }),
    )
    .default([]),
});

export type PluginManifest = z.infer<typeof pluginManifestSchema>;
