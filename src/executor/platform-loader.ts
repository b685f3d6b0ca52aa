// Start-up of a thread that runs the model (the engine's and every rank worker's): discovers the plugins,
// picks the platform (`--device` by name, else the best usable one), runs its per-thread setup, and builds
// the model registry with the architectures plugins register. Rank workers call it with the name the head
// chose, so a plugin's platform runs in every rank thread.

import { ModelRegistry, registerModelPlugins } from '../models/model-registry.js';
import type { Platform } from '../platforms/platform.js';
import { PlatformRegistry } from '../platforms/platform-registry.js';
import {
  type DiscoveredPlugins,
  type DiscoveryOptions,
  discoverPlugins,
} from '../platforms/plugin-discovery.js';
import { type Logger, silentLogger } from '../util/logger.js';

export interface LoadedPlatform {
  readonly platform: Platform;
  /** Built-in architectures plus those plugins registered. */
  readonly models: ModelRegistry;
}

/**
 * Loads the platform named `device` (null or `auto`: the best usable one) and the model registry. Logs
 * the choice, every plugin skipped and every model registered. Throws `UnknownDeviceError` when `device`
 * is not usable here.
 */
export async function loadPlatform(
  device: string | null,
  log: Logger = silentLogger,
  discovery: DiscoveryOptions = {},
): Promise<LoadedPlatform> {
  const registry = await PlatformRegistry.discover(discovery);
  const platform = await registry.create(device);
  const chosen = registry.statuses.find((s) => s.name === platform.name)!;
  const why = device === null || device === 'auto' ? 'the best usable platform' : `--device ${device}`;
  log.info(`platform ${platform.name} (${chosen.source}, ${why}): ${chosen.reason}`);
  for (const s of registry.statuses) {
    if (!s.usable) log.info(`notice: platform ${s.name} (${s.source}) is not usable: ${s.reason}`);
  }
  for (const s of registry.discovered.skipped) {
    log.info(`notice: plugin ${s.name ?? s.packageName} (${s.packageName}) skipped: ${s.reason}`);
  }
  if (platform.name === 'cpu' && registry.statuses.length > 1 && (device === null || device === 'auto')) {
    log.info('notice: no plugin platform is usable; running on the WebAssembly CPU platform');
  }
  const models = await modelRegistryFrom(registry.discovered, log);
  return { platform, models };
}

/** The model registry with the architectures of the discovered model plugins (default: discover now). */
export async function modelRegistryFrom(
  discovered: DiscoveredPlugins = discoverPlugins(),
  log: Logger = silentLogger,
): Promise<ModelRegistry> {
  const models = new ModelRegistry();
  for (const m of await registerModelPlugins(models, discovered.models)) log.info(`notice: ${m}`);
  return models;
}
