// Loads the native addon (build/duet_onednn.node, built at install by scripts/build-addon.mjs) and types
// its functions. When the build was skipped or the addon does not load, says why instead.

import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Kernels } from './duet.js';

/** Kinds of prepared weight, as the addon numbers them. */
export const NativeKind = { f32: 0, bf16: 1, int8: 2 } as const;
export type NativeKind = (typeof NativeKind)[keyof typeof NativeKind];

/** A prepared weight owned by the addon (opaque). */
export type NativeWeight = { readonly __nativeWeight: unique symbol };

/** A file the addon mapped private, copy-on-write (opaque): the weight cache's. */
export type NativeMapping = { readonly __nativeMapping: unique symbol };

/** The operators between the products that the addon runs, with Duet's Kernels contract's signatures. */
export type NativeOps = Pick<Kernels, 'rmsNorm' | 'siluAndMul' | 'add' | 'copyRows' | 'weightedScatterAdd'>;

/**
 * One oneDNN engine, stream, primitive cache and scratch, used from one thread. Its `NativeOps` check every
 * length, row index and array type in native code before memory is touched (a RangeError or TypeError).
 */
export interface NativeContext extends NativeOps {
  /** Reorders `data` [n, k] row-major into oneDNN's preferred layout (copied: data may be dropped). */
  prepare(kind: NativeKind, data: Float32Array | Uint16Array | Int8Array, n: number, k: number): NativeWeight;
  free(w: NativeWeight): void;
  /**
   * A weight whose reordered bytes lie in `file` at `offset` (64-byte aligned), `bytes` long, as
   * `writePacked` wrote them: used in place, the mapping kept while the weight lives. Throws when oneDNN
   * lays such a weight out in another number of bytes here. `wsum` (int8 only): `int8RowSums` of it.
   */
  adopt(
    file: NativeMapping,
    offset: number,
    bytes: number,
    kind: NativeKind,
    n: number,
    k: number,
    wsum: Int32Array | null,
  ): NativeWeight;
  /** Bytes of oneDNN's layout of a `[n, k]` weight of `kind` here. */
  packedSize(kind: NativeKind, n: number, k: number): number;
  /** Writes the weight's reordered bytes to file descriptor `fd` at `position`; returns their checksum. */
  writePacked(w: NativeWeight, fd: number, position: number): string;
  /** An int8 weight's row sums Σ_c w[j, c], [n] (a copy). */
  int8RowSums(w: NativeWeight): Int32Array;
  /** out[m, n] = x[m, k] · w[n, k]ᵀ, float32 throughout. */
  linearF32(out: Float32Array, x: Float32Array, w: NativeWeight, m: number): void;
  /** As linearF32 for a bf16 weight; `split`: x as a bf16 head plus tail (float32-grade), else x rounded to bf16. */
  linearBf16(out: Float32Array, x: Float32Array, w: NativeWeight, m: number, split: boolean): void;
  /** W8A8 with dynamic per-token quantization (scheme 0); weightScale [n]. */
  linearInt8(
    out: Float32Array,
    x: Float32Array,
    w: NativeWeight,
    m: number,
    scheme: 0,
    weightScale: Float32Array,
  ): void;
  /** W8A8 with static per-tensor quantization (scheme 1); inv = f32(1 / inputScale). */
  linearInt8(
    out: Float32Array,
    x: Float32Array,
    w: NativeWeight,
    m: number,
    scheme: 1,
    inv: number,
    inputOffset: number,
    quantBias: Int32Array,
    deqScale: Float32Array,
  ): void;
  /** acc[m, n] = Σ_c xq[m, k] · w[n, k] in int32 (tests compare it with the reference). */
  int8Sums(acc: Int32Array, xq: Int8Array, w: NativeWeight, m: number): void;
  /** Name of the oneDNN implementation that multiplies m rows by w, e.g. `brg:avx512_core_bf16`. */
  implInfo(w: NativeWeight, m: number): string;
  /** Matmul primitives cached so far. */
  numCached(): number;
}

export interface NativeAddon {
  Context: new (numThreads: number) => NativeContext;
  /**
   * The oneDNN version, the instruction set its kernels use, whether its int8 sums are exact (a VNNI dot)
   * and whether it has a bf16 matmul here (AVX-512 or newer).
   */
  describe(): {
    version: string;
    isa: string;
    int8Exact: boolean;
    bf16: boolean;
    maxThreads: number;
    /** When the addon was compiled. */
    build: string;
  };
  /**
   * Maps a whole file private (copy-on-write: never written back; pages entered at once); a string saying
   * why when it cannot be opened or mapped.
   */
  mapFile(path: string): NativeMapping | string;
  /** Bytes of a mapped file. */
  mappedSize(file: NativeMapping): number;
  /** Drops the caller's share of a mapping (weights over it keep theirs). */
  unmap(file: NativeMapping): void;
  /**
   * The checksum of a sample of bytes [offset, offset + bytes) of a mapped file (256 bytes every 64 KiB
   * and the last 256), as `writePacked` returns it.
   */
  checksum(file: NativeMapping, offset: number, bytes: number): string;
  /** The same checksum of an array's bytes. */
  checksumOf(bytes: Uint8Array): string;
  /** Bytes [offset, offset + bytes) of a mapped file without a copy (writes stay in this process). */
  view(file: NativeMapping, offset: number, bytes: number): ArrayBuffer;
}

export type AddonLoad = { readonly addon: NativeAddon } | { readonly reason: string };

const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** This package's version (package.json): part of the weight cache's key. */
export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string })
    .version;
}

/**
 * Loads the addon from `buildDir` (default: the package's build/); the reason says why it is not there
 * (the build's own reason from status.json when the install step skipped it).
 */
export function loadAddon(buildDir = join(PACKAGE_ROOT, 'build')): AddonLoad {
  const file = join(buildDir, 'duet_onednn.node');
  const status = join(buildDir, 'status.json');
  if (!existsSync(file)) {
    let reason = 'the native addon was not built (run: npm run build:addon -w duet-platform-onednn)';
    try {
      const s = JSON.parse(readFileSync(status, 'utf8')) as { built?: boolean; reason?: string };
      if (s.built === false && s.reason) reason = `the native addon was not built: ${s.reason}`;
    } catch {
      // No readable status: the install step never ran here.
    }
    return { reason };
  }
  try {
    return { addon: withOpenMpDefaults(() => createRequire(import.meta.url)(file) as NativeAddon) };
  } catch (e) {
    return { reason: `the native addon does not load: ${(e as Error).message}` };
  }
}

/**
 * Runs `load` with OMP_WAIT_POLICY=passive unless the user set the OpenMP wait policy or spin count.
 * libgomp reads them once, as it loads with the addon; the environment is restored afterwards, so child
 * processes (llama.cpp in bench:vs-llamacpp) do not inherit it. Passive: an OpenMP thread with no work
 * sleeps at once instead of spinning, which leaves the cores to the WebAssembly kernels' own threads
 * between products and keeps a busy machine from stalling at every fork (docs/platforms.md).
 */
function withOpenMpDefaults<T>(load: () => T): T {
  const env = process.env;
  if (env.OMP_WAIT_POLICY !== undefined || env.GOMP_SPINCOUNT !== undefined) return load();
  env.OMP_WAIT_POLICY = 'passive';
  try {
    return load();
  } finally {
    delete env.OMP_WAIT_POLICY;
  }
}
