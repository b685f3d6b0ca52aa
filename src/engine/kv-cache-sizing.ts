// How many KV cache blocks the engine allocates: from --num-gpu-blocks-override, --kv-cache-memory, or
// --gpu-memory-utilization of the memory left after the weights (vLLM's rules, with the machine's RAM as
// device memory), capped by what one WebAssembly memory can hold.

import type { CacheSettings } from '../config/engine-config.js';

/** Most bytes the KV cache may take: it lives in one wasm32 memory beside activation scratch. */
export const MAX_KV_CACHE_BYTES = 2 * 2 ** 30;

export interface KvCacheSizing {
  readonly numBlocks: number;
  readonly bytes: number;
  /** Why this size: which setting decided it. */
  readonly reason: string;
}

export class KvCacheSizingError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KvCacheSizingError';
  }
}

/**
 * @param bytesPerBlock bytes of one block over all layers
 * @param totalMemory the device's memory in bytes
 * @param usedMemory bytes already used (weights and runtime) when the cache is sized
 * @param ranksOnHost ranks of this host, each with its own cache of the returned size: they share the
 *   --gpu-memory-utilization budget (--kv-cache-memory and --num-gpu-blocks-override are per rank, as in vLLM)
 */
export function sizeKvCache(
  settings: CacheSettings,
  bytesPerBlock: number,
  totalMemory: number,
  usedMemory: number,
  ranksOnHost = 1,
): KvCacheSizing {
  const maxBlocks = Math.floor(MAX_KV_CACHE_BYTES / bytesPerBlock);
  let numBlocks: number;
  let reason: string;
  if (settings.numGpuBlocksOverride !== null) {
    numBlocks = settings.numGpuBlocksOverride;
    reason = '--num-gpu-blocks-override';
    if (numBlocks > maxBlocks) {
      throw new KvCacheSizingError(
        `--num-gpu-blocks-override ${numBlocks} needs ${numBlocks * bytesPerBlock} bytes; at most ${maxBlocks} ` +
          `blocks (${MAX_KV_CACHE_BYTES} bytes) fit in the CPU platform's KV cache memory`,
      );
    }
  } else {
    let budget: number;
    if (settings.kvCacheMemory !== null) {
      budget = settings.kvCacheMemory;
      reason = '--kv-cache-memory';
    } else {
      budget = (totalMemory * settings.gpuMemoryUtilization - usedMemory) / ranksOnHost;
      reason = `--gpu-memory-utilization ${settings.gpuMemoryUtilization}${ranksOnHost > 1 ? ` shared by ${ranksOnHost} ranks` : ''}`;
    }
    numBlocks = Math.floor(budget / bytesPerBlock);
    if (numBlocks > maxBlocks) {
      numBlocks = maxBlocks;
      reason += `, capped at ${MAX_KV_CACHE_BYTES} bytes (one WebAssembly memory)`;
    }
  }
  if (numBlocks < 1) {
    throw new KvCacheSizingError(
      `no memory is left for the KV cache (${reason}): one block needs ${bytesPerBlock} bytes; ` +
        'raise --gpu-memory-utilization, or set --kv-cache-memory or --num-gpu-blocks-override',
    );
  }
  return { numBlocks, bytes: numBlocks * bytesPerBlock, reason };
}
