// `duet env` (after vLLM's collect-env): what Duet finds on this machine — Node and V8, the CPU and its
// vector features, WebAssembly SIMD, the plugin filter, every platform (built in or from a plugin package)
// and why each is or is not usable, the default choice and its memory, and the model architectures.

import { readFileSync } from 'node:fs';
import os from 'node:os';
import { Command } from 'commander';
import { modelRegistryFrom } from '../executor/platform-loader.js';
import { hasRelaxedSimd } from '../platforms/cpu/wasm-features.js';
import { PlatformRegistry, type PlatformStatus } from '../platforms/platform-registry.js';
import type { PluginSkip } from '../platforms/plugin-discovery.js';

/** CPU flags worth knowing for the kernels (x86 vector extensions, Arm SIMD). */
const INTERESTING_CPU_FLAGS = [
  'sse4_2',
  'avx2',
  'fma',
  'avx512f',
  'avx512bw',
  'avx512_vnni',
  'avx512_bf16',
  'amx_bf16',
  'amx_int8',
  'asimd',
  'sve',
] as const;

export interface EnvReport {
  readonly node: string;
  readonly v8: string;
  readonly os: string;
  readonly cpu: string;
  readonly cores: number;
  readonly cpuFlags: readonly string[];
  readonly memoryBytes: { readonly total: number; readonly free: number };
  readonly wasm: { readonly relaxedSimd: boolean };
  /** DUET_PLUGINS / VLLM_PLUGINS as read (null: unset, every plugin may load). */
  readonly pluginFilter: readonly string[] | null;
  readonly platforms: readonly PlatformStatus[];
  readonly skippedPlugins: readonly PluginSkip[];
  /** The platform chosen without --device, or null when none is usable. */
  readonly defaultPlatform: string | null;
  readonly modelArchitectures: readonly string[];
}

/** The vector-extension flags of /proc/cpuinfo (Linux); empty elsewhere. */
function cpuFlags(): string[] {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const line = /^(flags|Features)\s*:\s*(.*)$/m.exec(info);
    const flags = new Set((line?.[2] ?? '').split(/\s+/));
    return INTERESTING_CPU_FLAGS.filter((f) => flags.has(f));
  } catch {
    return [];
  }
}

/** Gathers the report (loads and probes every plugin; builds no kernels). */
export async function collectEnv(): Promise<EnvReport> {
  const registry = await PlatformRegistry.discover();
  const models = await modelRegistryFrom(registry.discovered);
  // The relaxed-SIMD answer is the CPU platform's, after its per-thread setup.
  const cpuPlatform = await registry.create('cpu');
  return {
    node: process.version,
    v8: process.versions.v8,
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.availableParallelism(),
    cpuFlags: cpuFlags(),
    memoryBytes: { total: cpuPlatform.totalMemoryBytes(), free: cpuPlatform.availableMemoryBytes() },
    wasm: { relaxedSimd: hasRelaxedSimd() },
    pluginFilter: registry.discovered.allowed,
    platforms: registry.statuses,
    skippedPlugins: registry.discovered.skipped,
    defaultPlatform: registry.usableNames()[0] ?? null,
    modelArchitectures: models.describe(),
  };
}

const GiB = 2 ** 30;

/** The report as text, one fact per line. */
export function formatEnv(r: EnvReport): string {
  const lines = [
    `Node.js: ${r.node} (V8 ${r.v8})`,
    `OS: ${r.os}`,
    `CPU: ${r.cpu}, ${r.cores} cores`,
    `CPU features: ${r.cpuFlags.join(' ') || '(none found)'}`,
    `Memory: ${(r.memoryBytes.total / GiB).toFixed(1)} GiB, ${(r.memoryBytes.free / GiB).toFixed(1)} GiB free`,
    `WebAssembly relaxed SIMD: ${r.wasm.relaxedSimd ? 'yes' : 'no'}`,
    `Plugin filter (DUET_PLUGINS / VLLM_PLUGINS): ${r.pluginFilter === null ? 'unset (all plugins load)' : r.pluginFilter.join(',') || '(empty: no plugins)'}`,
    '',
    'Platforms:',
    ...r.platforms.map(
      (p) =>
        `  ${p.name.padEnd(10)} ${(p.usable ? 'usable' : 'NOT usable').padEnd(11)} priority ${String(p.priority).padEnd(4)} ${p.source}: ${p.reason}`,
    ),
    ...r.skippedPlugins.map(
      (s) => `  ${(s.name ?? '-').padEnd(10)} skipped     ${s.packageName}: ${s.reason}`,
    ),
    `Default (no --device): ${r.defaultPlatform ?? 'none'}`,
    '',
    'Model architectures:',
    ...r.modelArchitectures.map((m) => `  ${m}`),
  ];
  return `${lines.join('\n')}\n`;
}

export function envCommand(): Command {
  return new Command('env')
    .description(
      'list the platforms found (built in and plugins), why each is or is not usable, and this machine',
    )
    .option('--json', 'print the report as JSON')
    .action(async (o: { json?: boolean }) => {
      const report = await collectEnv();
      process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatEnv(report));
    });
}
