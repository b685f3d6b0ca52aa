// Finds plugin packages the way Python entry points let vLLM find its plugins: every installed package in
// the `node_modules` folders on the way up from the working directory and from Duet's own install, whose
// package.json has a `duet` field (src/platforms/plugin.ts). DUET_PLUGINS (or vLLM's VLLM_PLUGINS), a
// comma-separated list of platform names, model architectures or package names, limits which load.
// Nothing here imports a plugin's code; a package with a broken manifest is reported, never fatal.

import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type PluginManifest, pluginManifestSchema } from './plugin.js';

/** A package.json larger than this is not read (a plugin manifest is a few hundred bytes). */
const MAX_PACKAGE_JSON_BYTES = 1 << 20;

/** One entry module a plugin package declares. */
export interface PluginEntry {
  /** The platform name or model architecture it declares. */
  readonly name: string;
  /** The npm package declaring it. */
  readonly packageName: string;
  /** The package's folder. */
  readonly packageDir: string;
  /** The entry module, as an importable URL. */
  readonly url: string;
  /** The contract version the manifest declares. */
  readonly contractVersion: number;
}

/** A package or entry that was found but not taken, and why. */
export interface PluginSkip {
  readonly packageName: string;
  readonly name: string | null;
  readonly reason: string;
}

export interface DiscoveredPlugins {
  readonly platforms: readonly PluginEntry[];
  readonly models: readonly PluginEntry[];
  readonly skipped: readonly PluginSkip[];
  /** The filter in force (from DUET_PLUGINS / VLLM_PLUGINS), or null when every plugin may load. */
  readonly allowed: readonly string[] | null;
}

export interface DiscoveryOptions {
  /** Folders whose `node_modules` (and their parents') are searched; default: cwd and Duet's install. */
  readonly roots?: readonly string[];
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** The plugin filter of the environment: DUET_PLUGINS, else VLLM_PLUGINS; null when neither is set. */
export function allowedPlugins(env: Readonly<Record<string, string | undefined>>): string[] | null {
  const v = env.DUET_PLUGINS ?? env.VLLM_PLUGINS;
  if (v === undefined) return null;
  return v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** Duet's own package folder (dist/src/platforms/ → the root). */
function duetPackageDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
}

/** Every `node_modules` folder on the way up from each root, deduplicated, nearest first. */
function nodeModulesFolders(roots: readonly string[]): string[] {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const root of roots) {
    let dir = resolve(root);
    for (;;) {
      const nm = join(dir, 'node_modules');
      if (!seen.has(nm) && existsSync(nm)) {
        seen.add(nm);
        out.push(nm);
      }
      const up = dirname(dir);
      if (up === dir) break;
      dir = up;
    }
  }
  return out;
}

/** Package folders directly in a node_modules folder (scoped ones included). */
function packageFolders(nodeModules: string): string[] {
  const out: string[] = [];
  for (const name of safeReaddir(nodeModules)) {
    if (name.startsWith('.')) continue;
    const dir = join(nodeModules, name);
    if (name.startsWith('@')) for (const inner of safeReaddir(dir)) out.push(join(dir, inner));
    else out.push(dir);
  }
  return out;
}

function safeReaddir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/** The package's name and `duet` field, or null when it has none (or no readable package.json). */
function readManifest(dir: string): { name: string; duet: unknown } | null {
  const file = join(dir, 'package.json');
  try {
    if (statSync(file).size > MAX_PACKAGE_JSON_BYTES) return null;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; duet?: unknown };
    if (pkg === null || typeof pkg !== 'object' || pkg.duet === undefined) return null;
    return { name: typeof pkg.name === 'string' ? pkg.name : dir, duet: pkg.duet };
  } catch {
    return null;
  }
}

/** Finds the plugin packages installed around the roots and the entries they declare. */
export function discoverPlugins(opts: DiscoveryOptions = {}): DiscoveredPlugins {
  const env = opts.env ?? process.env;
  const allowed = allowedPlugins(env);
  const roots = opts.roots ?? [process.cwd(), duetPackageDir()];
  const platforms: PluginEntry[] = [];
  const models: PluginEntry[] = [];
  const skipped: PluginSkip[] = [];
  const seenPackages = new Set<string>();
  for (const nm of nodeModulesFolders(roots)) {
    for (const dir of packageFolders(nm)) {
      let real: string;
      try {
        real = realpathSync(dir);
      } catch {
        continue;
      }
      if (seenPackages.has(real)) continue;
      const found = readManifest(real);
      if (!found) continue;
      seenPackages.add(real);
      const parsed = pluginManifestSchema.safeParse(found.duet);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        skipped.push({
          packageName: found.name,
          name: null,
          reason: `its package.json "duet" field is malformed (${issue?.path.join('.') || 'duet'}: ${issue?.message})`,
        });
        continue;
      }
      collectEntries(found.name, real, parsed.data, allowed, platforms, models, skipped);
    }
  }
  return { platforms, models, skipped, allowed };
}

function collectEntries(
  packageName: string,
  packageDir: string,
  manifest: PluginManifest,
  allowed: readonly string[] | null,
  platforms: PluginEntry[],
  models: PluginEntry[],
  skipped: PluginSkip[],
): void {
  const declared = [
    ...manifest.platforms.map((p) => ({ name: p.name, entry: p.entry, into: platforms })),
    ...manifest.models.map((m) => ({ name: m.architecture, entry: m.entry, into: models })),
  ];
  for (const d of declared) {
    if (allowed !== null && !allowed.includes(d.name) && !allowed.includes(packageName)) {
      skipped.push({ packageName, name: d.name, reason: 'not listed in DUET_PLUGINS / VLLM_PLUGINS' });
      continue;
    }
    const file = resolve(packageDir, d.entry);
    if (!file.startsWith(packageDir + sep) || !existsSync(file)) {
      skipped.push({
        packageName,
        name: d.name,
        reason: `its entry ${d.entry} is not a file inside the package (not built?)`,
      });
      continue;
    }
    d.into.push({
      name: d.name,
      packageName,
      packageDir,
      url: pathToFileURL(file).href,
      contractVersion: manifest.contractVersion,
    });
  }
}
