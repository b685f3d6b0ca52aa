// The platforms this process can run on: the built-in WebAssembly CPU platform plus every platform plugin
// discovered (src/platforms/plugin-discovery.ts), each loaded, checked against the contract version and
// probed. Picks one by name (`--device`) or the best available (highest priority; `cpu` last), and says
// for every platform why it is or is not usable (`duet env`, start-up logs). A plugin that fails to load,
// declares another contract version or throws in its probe is skipped with a reason, never a crash.

import { cpuPlatformPlugin } from './cpu/cpu-platform.js';
import { PLATFORM_CONTRACT_VERSION, type Platform } from './platform.js';
import type { PlatformPlugin } from './plugin.js';
import {
  type DiscoveredPlugins,
  type DiscoveryOptions,
  discoverPlugins,
  type PluginEntry,
} from './plugin-discovery.js';

/** Priority of a plugin that does not set one (the CPU platform's is 0). */
const DEFAULT_PLUGIN_PRIORITY = 10;

/** One platform found, usable or not. */
export interface PlatformStatus {
  readonly name: string;
  /** `built-in`, or the npm package that declares it. */
  readonly source: string;
  readonly usable: boolean;
  /** What the probe found, or why the platform was skipped. */
  readonly reason: string;
  readonly priority: number;
}

/** `--device` names no usable platform: says which are usable. */
export class UnknownDeviceError extends Error {
  constructor(device: string, statuses: readonly PlatformStatus[], usable: readonly string[]) {
    const found = statuses.find((s) => s.name === device);
    super(
      found
        ? `--device ${device} is not usable here: ${found.reason}. Usable devices: ${usable.join(', ')}`
        : `--device ${device} is not a known platform. Usable devices: ${usable.join(', ')}`,
    );
    this.name = 'UnknownDeviceError';
  }
}

/** The platforms found in this process, loaded and probed. */
export class PlatformRegistry {
  private constructor(
    private readonly plugins: ReadonlyMap<string, PlatformPlugin>,
    readonly statuses: readonly PlatformStatus[],
    readonly discovered: DiscoveredPlugins,
  ) {}

  /** Discovers, loads and probes every platform (the CPU platform always). */
  static async discover(opts: DiscoveryOptions = {}): Promise<PlatformRegistry> {
    const discovered = discoverPlugins(opts);
    const plugins = new Map<string, PlatformPlugin>();
    const statuses: PlatformStatus[] = [];
    const candidates: {
      plugin: PlatformPlugin | null;
      source: string;
      name: string;
      problem: string | null;
    }[] = [{ plugin: cpuPlatformPlugin, source: 'built-in', name: 'cpu', problem: null }];
    for (const entry of discovered.platforms) {
      const loaded = await loadPlatformPlugin(entry);
      candidates.push({
        plugin: 'plugin' in loaded ? loaded.plugin : null,
        source: entry.packageName,
        name: entry.name,
        problem: 'problem' in loaded ? loaded.problem : null,
      });
    }
    for (const c of candidates) {
      const priority = c.plugin?.priority ?? DEFAULT_PLUGIN_PRIORITY;
      if (plugins.has(c.name)) {
        statuses.push({
          name: c.name,
          source: c.source,
          usable: false,
          reason: `another package already provides a platform named ${c.name}`,
          priority,
        });
        continue;
      }
      if (!c.plugin) {
        statuses.push({ name: c.name, source: c.source, usable: false, reason: c.problem!, priority });
        continue;
      }
      const probe = await safeProbe(c.plugin);
      statuses.push({
        name: c.name,
        source: c.source,
        usable: probe.available,
        reason: probe.reason,
        priority,
      });
      if (probe.available) plugins.set(c.name, c.plugin);
    }
    return new PlatformRegistry(plugins, statuses, discovered);
  }

  /** Names of the usable platforms, best first. */
  usableNames(): string[] {
    return this.statuses
      .filter((s) => s.usable)
      .sort((a, b) => b.priority - a.priority || a.name.localeCompare(b.name))
      .map((s) => s.name);
  }

  /**
   * The platform named `device`, or the best usable one when null (or `auto`). Calls its per-thread
   * setup. Throws `UnknownDeviceError` for a name that is not usable.
   */
  async create(device: string | null): Promise<Platform> {
    const name = device === null || device === 'auto' ? this.usableNames()[0]! : device;
    const plugin = this.plugins.get(name);
    if (!plugin) throw new UnknownDeviceError(name, this.statuses, this.usableNames());
    const platform = await plugin.create();
    if (platform.name !== name) {
      throw new Error(`platform plugin ${name} created a platform named ${platform.name}`);
    }
    platform.prepareThread();
    return platform;
  }

  /** One line per platform and per skipped plugin: what start-up logs and `duet env` prints. */
  describe(): string[] {
    const lines = this.statuses.map(
      (s) => `${s.name} (${s.source}): ${s.usable ? 'usable' : 'not usable'} — ${s.reason}`,
    );
    for (const s of this.discovered.skipped)
      lines.push(`${s.name ?? '(package)'} (${s.packageName}): skipped — ${s.reason}`);
    return lines;
  }
}

/** Imports a platform entry and checks it against the contract, or says why it cannot be used. */
async function loadPlatformPlugin(
  entry: PluginEntry,
): Promise<{ plugin: PlatformPlugin } | { problem: string }> {
  if (entry.contractVersion !== PLATFORM_CONTRACT_VERSION) {
    return {
      problem: `skipped: ${entry.packageName} declares contract version ${entry.contractVersion}; this Duet speaks version ${PLATFORM_CONTRACT_VERSION}`,
    };
  }
  let mod: Record<string, unknown>;
  try {
    mod = (await import(entry.url)) as Record<string, unknown>;
  } catch (e) {
    return { problem: `skipped: its entry module failed to load (${(e as Error).message})` };
  }
  const plugin = mod.platformPlugin as Partial<PlatformPlugin> | undefined;
  if (
    !plugin ||
    typeof plugin !== 'object' ||
    typeof plugin.probe !== 'function' ||
    typeof plugin.create !== 'function'
  ) {
    return { problem: 'skipped: its entry module exports no platformPlugin with probe() and create()' };
  }
  if (plugin.contractVersion !== PLATFORM_CONTRACT_VERSION) {
    return {
      problem: `skipped: its platformPlugin speaks contract version ${String(plugin.contractVersion)}; this Duet speaks version ${PLATFORM_CONTRACT_VERSION}`,
    };
  }
  if (plugin.name !== entry.name) {
    return {
      problem: `skipped: its platformPlugin is named ${String(plugin.name)}, its package.json says ${entry.name}`,
    };
  }
  return { plugin: plugin as PlatformPlugin };
}

/** The plugin's probe, with a throw or a malformed answer turned into "not available". */
async function safeProbe(plugin: PlatformPlugin): Promise<{ available: boolean; reason: string }> {
  try {
    const r = await plugin.probe();
    if (typeof r?.available !== 'boolean') return { available: false, reason: 'its probe gave no answer' };
    return { available: r.available, reason: String(r.reason ?? '') };
  } catch (e) {
    return { available: false, reason: `its probe failed: ${(e as Error).message}` };
  }
}
