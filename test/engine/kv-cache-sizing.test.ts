// KV cache sizing: vLLM's rules over the host's memory, the wasm32 cap, and the budget shared by the
// ranks of one host (tensor / data parallelism), each of which allocates a cache of the returned size.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_KV_CACHE_BYTES, sizeKvCache } from '../../src/engine/kv-cache-sizing.js';

const GiB = 2 ** 30;
const settings = {
  blockSize: 16,
  gpuMemoryUtilization: 0.5,
  kvCacheMemory: null,
  numGpuBlocksOverride: null,
  enablePrefixCaching: true,
};

test('--gpu-memory-utilization: the memory left after what is used, split among the ranks of the host', () => {
  const one = sizeKvCache(settings, 2 ** 20, 4 * GiB, 1 * GiB);
  assert.equal(one.numBlocks, 1024); // (4 GiB · 0.5 − 1 GiB) / 1 MiB
  const four = sizeKvCache(settings, 2 ** 20, 4 * GiB, 1 * GiB, 4);
  assert.equal(four.numBlocks, 256);
  assert.match(four.reason, /shared by 4 ranks/);
});

test('--kv-cache-memory and --num-gpu-blocks-override are per rank; the wasm32 cap holds', () => {
  const s = sizeKvCache({ ...settings, kvCacheMemory: 64 * 2 ** 20 }, 2 ** 20, 4 * GiB, 0, 4);
  assert.equal(s.numBlocks, 64);
  const o = sizeKvCache({ ...settings, numGpuBlocksOverride: 7 }, 2 ** 20, 4 * GiB, 0, 4);
  assert.equal(o.numBlocks, 7);
  const capped = sizeKvCache(settings, 2 ** 20, 64 * GiB, 0);
  assert.equal(capped.numBlocks, MAX_KV_CACHE_BYTES / 2 ** 20);
});
