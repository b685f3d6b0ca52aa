// The prepared-weight cache contract, after vLLM's `sharded_state` load format (a model saved after its
// weights are processed, for fast reloads): a kernel set that lays weights out in a layout of its own may
// keep the prepared bytes of every linear weight in a file, written on a first load and mapped on the
// next loads of the same checkpoint with the same settings, so that they need neither reading, nor
// packing, nor fresh memory. The loader asks for each linear weight by id before reading it; the kernel
// set owns the file, its format and its checks (docs/platforms.md, "Weight cache").

import type { Kernels, LinearWeight, RawWeight } from './kernels.js';

/** One checkpoint file as the cache key sees it: a changed size or modification time is another checkpoint. */
export interface CheckpointFileStamp {
  /** Absolute path. */
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
}

/**
 * Everything outside the kernel set that changes the prepared bytes: the checkpoint's files, and the
 * settings that decide what is loaded how (quantization, weight dtype, the model config after overrides,
 * this rank's share of the model). The kernel set adds its own parts (its version, its library's version,
 * the instruction set, its build).
 */
export interface WeightCacheKey {
  readonly files: readonly CheckpointFileStamp[];
  readonly settings: Readonly<Record<string, unknown>>;
}

/** A message for the log about the cache: `warn` when it could not help and the load goes on uncached. */
export interface WeightCacheNotice {
  readonly level: 'info' | 'warn';
  readonly message: string;
}

/** One load's use of the cache, from `Kernels.openWeightCache`. */
export interface PreparedWeightCache {
  /** What the cache does in this load (read, written, or why neither), for the log. */
  readonly notice: WeightCacheNotice;
  /**
   * The prepared weight stored under `id` (a shape `[n, k]`), or null: then the caller reads the
   * weight, prepares it and hands it to `store`.
   */
  lookup(id: string, n: number, k: number): LinearWeight | null;
  /** Records a weight just prepared under `id` (a cache being written keeps its bytes; others ignore it). */
  store(id: string, weight: LinearWeight): void;
  /**
   * A float tensor kept as read (the embedding table), stored under `id` with `length` elements, as a
   * view of the cache (no copy, no fresh memory), or null: then the caller reads it and hands it to
   * `storeTensor`.
   */
  lookupTensor(id: string, length: number): RawWeight | null;
  /** Records a float tensor just read under `id` (a cache being written keeps a copy of its bytes). */
  storeTensor(id: string, raw: RawWeight): void;
  /** The load completed: a cache being written is finished and put in place. Returns a notice, if any. */
  commit(): WeightCacheNotice | null;
  /** The load failed: a cache being written is removed. */
  abandon(): void;
}

/** A kernel set that keeps a prepared-weight cache (an optional part of the kernel contract). */
export interface WeightCaching {
  /** The cache in folder `dir` for the checkpoint and settings `key`. */
  openWeightCache(dir: string, key: WeightCacheKey): PreparedWeightCache;
}

/** Whether kernel set `k` keeps a prepared-weight cache. */
export function canCacheWeights(k: Kernels): k is Kernels & WeightCaching {
  return typeof (k as Partial<WeightCaching>).openWeightCache === 'function';
}
