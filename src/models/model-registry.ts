// The model registry (vLLM's ModelRegistry): which class runs each Hugging Face architecture name. Duet's
// own DeepSeek V2 / V3 are built in; a plugin package may register more (an architecture of its own that
// reads a DeepSeek-format config.json) or replace a built-in one, as the Ascend plugin registers its DBO
// DeepSeek. Built once per thread at start-up and passed down, never a module global.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DeepseekArchitecture, DeepseekConfig } from '../config/model-config.js';
import type { ForwardBatch } from '../layers/forward-batch.js';
import type { ForwardStage } from '../layers/hand-over.js';
import type { MlaKvCache } from '../layers/mla-kv-cache.js';
import type { RankGroups } from '../layers/rank-groups.js';
import { PLATFORM_CONTRACT_VERSION } from '../platforms/platform.js';
import type { PluginEntry } from '../platforms/plugin-discovery.js';
import { DeepseekForCausalLM, type DeepseekLoadOptions, type ForwardObserver } from './deepseek.js';

/** What the engine and the rank workers need of a model: its config and its forward. */
export interface CausalLM {
  readonly config: DeepseekConfig;
  /** Positions the model's rope tables cover. */
  readonly maxPositions: number;
  /**
   * Runs the batch, writing its tokens' latent KV into `cache`; returns the logits of the rows
   * `batch.logitsIndices`: [logitsIndices.length, vocab] (complete on every rank).
   */
  forward(
    batch: ForwardBatch,
    cache: MlaKvCache,
    observer?: ForwardObserver,
    groups?: RankGroups,
  ): Promise<Float32Array>;
  /** The forward's stages, each ending at a hand-over point (DBO's schedule; layers/hand-over.ts). */
  forwardStages(groups?: RankGroups): ForwardStage[];
}

/** One architecture the registry can build. */
export interface ModelArchitecture {
  /** The Hugging Face name in config.json's `architectures`, e.g. `DeepseekV3ForCausalLM`. */
  readonly architecture: string;
  /** The built-in architecture whose config.json format it reads (and whose MLA KV cache it uses). */
  readonly configFormat: DeepseekArchitecture;
  /** Builds the model on the given kernels, reading its weights from `opts.source`. */
  create(config: DeepseekConfig, opts: DeepseekLoadOptions): CausalLM;
}

/** What a model entry module of a plugin exports as `modelPlugin` (src/platforms/plugin.ts). */
export interface ModelPlugin extends ModelArchitecture {
  /** The contract version the plugin was written against (`PLATFORM_CONTRACT_VERSION`). */
  readonly contractVersion: number;
}

/** Types a model plugin object where it is written (no annotation needed, so the source is also plain JS). */
export function defineModelPlugin(plugin: ModelPlugin): ModelPlugin {
  return plugin;
}

/** Duet's own architectures. */
const BUILT_IN: readonly ModelArchitecture[] = (
  ['DeepseekV2ForCausalLM', 'DeepseekV3ForCausalLM'] as const
).map((architecture) => ({
  architecture,
  configFormat: architecture,
  create: (config, opts) => new DeepseekForCausalLM(config, opts),
}));

export class ModelRegistry {
  private readonly byName = new Map<string, { arch: ModelArchitecture; source: string }>();

  /** A registry of the built-in architectures. */
  constructor() {
    for (const a of BUILT_IN) this.byName.set(a.architecture, { arch: a, source: 'built-in' });
  }

  /** Registers (or replaces) an architecture; returns a notice when it replaced one. */
  register(arch: ModelArchitecture, source: string): string | null {
    const old = this.byName.get(arch.architecture);
    this.byName.set(arch.architecture, { arch, source });
    return old ? `${arch.architecture} of ${old.source} is replaced by ${source}'s` : null;
  }

  get(architecture: string): ModelArchitecture | undefined {
    return this.byName.get(architecture)?.arch;
  }

  /** `name (source)` of every registered architecture, for `duet env`. */
  describe(): string[] {
    return [...this.byName.entries()].map(([name, e]) => `${name} (${e.source})`);
  }

  /**
   * The architecture for a model folder: the first name in config.json's `architectures` (after
   * `hf-overrides`) that is registered. Null when none is (the config loader then says what is supported).
   */
  forModelFolder(dir: string, hfOverrides: Readonly<Record<string, unknown>>): ModelArchitecture | null {
    let names: unknown = hfOverrides.architectures;
    if (names === undefined) {
      try {
        names = (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { architectures?: unknown })
          .architectures;
      } catch {
        return null;
      }
    }
    if (!Array.isArray(names)) return null;
    for (const n of names) {
      const a = typeof n === 'string' ? this.get(n) : undefined;
      if (a) return a;
    }
    return null;
  }
}

/**
 * Imports each model plugin entry and registers it. Returns one message per entry that was registered
 * (or replaced a built-in) or skipped (failed to load, wrong contract version, malformed export).
 */
export async function registerModelPlugins(
  registry: ModelRegistry,
  entries: readonly PluginEntry[],
): Promise<string[]> {
  const messages: string[] = [];
  for (const e of entries) {
    const skip = (why: string) => messages.push(`model ${e.name} (${e.packageName}) skipped: ${why}`);
    if (e.contractVersion !== PLATFORM_CONTRACT_VERSION) {
      skip(`contract version ${e.contractVersion}; this Duet speaks version ${PLATFORM_CONTRACT_VERSION}`);
      continue;
    }
    let mod: Record<string, unknown>;
    try {
      mod = (await import(e.url)) as Record<string, unknown>;
    } catch (err) {
      skip(`its entry module failed to load (${(err as Error).message})`);
      continue;
    }
    const p = mod.modelPlugin as Partial<ModelPlugin> | undefined;
    if (!p || typeof p !== 'object' || typeof p.create !== 'function') {
      skip('its entry module exports no modelPlugin with create()');
    } else if (p.contractVersion !== PLATFORM_CONTRACT_VERSION) {
      skip(`its modelPlugin speaks contract version ${String(p.contractVersion)}`);
    } else if (p.architecture !== e.name) {
      skip(`its modelPlugin is ${String(p.architecture)}, its package.json says ${e.name}`);
    } else if (!BUILT_IN.some((b) => b.architecture === p.configFormat)) {
      skip(
        `configFormat ${String(p.configFormat)} is not one of ${BUILT_IN.map((b) => b.architecture).join(', ')}`,
      );
    } else {
      const replaced = registry.register(p as ModelPlugin, e.packageName);
      messages.push(replaced ?? `model ${e.name} registered by ${e.packageName}`);
    }
  }
  return messages;
}
