// The key of a load's prepared-weight cache (src/kernels/weight-cache.ts): the checkpoint's files as they
// are on disk (path, size, modification time) and every setting that changes what is prepared from them.
// A kernel set adds its own parts; any change to either makes the cache be rebuilt.

import { readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { CheckpointFileStamp, WeightCacheKey } from '../kernels/weight-cache.js';

/**
 * The version of what Duet's loader prepares from a checkpoint (fusions, stacking, scales): raise it when
 * a change to the loader makes the same checkpoint and settings give other weights.
 */
export const LOADER_WEIGHTS_VERSION = 1;

/** The files of a model folder that the weights come from: its safetensors and its JSON files. */
export function checkpointStamps(dir: string): CheckpointFileStamp[] {
  const abs = resolve(dir);
  return readdirSync(abs)
    .filter((f) => f.endsWith('.safetensors') || f.endsWith('.json'))
    .sort()
    .map((f) => {
      const s = statSync(join(abs, f));
      return { path: join(abs, f), size: s.size, mtimeMs: s.mtimeMs };
    });
}

/**
 * The key for the checkpoint in `dir` loaded with `settings` (everything that decides what is prepared:
 * quantization, weight dtype, the model config after overrides, this rank's share of the model).
 */
export function weightCacheKey(dir: string, settings: Readonly<Record<string, unknown>>): WeightCacheKey {
  return { files: checkpointStamps(dir), settings: { loader: LOADER_WEIGHTS_VERSION, ...settings } };
}
