// The periodic stats line: throughput over the interval, queue sizes, KV cache usage and the prefix
// cache hit rate of the interval, in vLLM's wording.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { EngineStatsSnapshot } from '../../src/engine/async/protocol.js';
import { formatStatsLine } from '../../src/server/stats-logger.js';

const ZERO: EngineStatsSnapshot = {
  numRunning: 0,
  numWaiting: 0,
  numPreemptedWaiting: 0,
  kvCacheUsage: 0,
  prefixCacheQueries: 0,
  prefixCacheHits: 0,
  numPreemptions: 0,
  numPrefixCacheEvictions: 0,
  promptTokens: 0,
  generationTokens: 0,
  numFinished: 0,
  numSteps: 0,
  dboSteps: 0,
  dboSplitSteps: 0,
  dboOverlapMs: 0,
};

test('formatStatsLine reports the interval between two snapshots', () => {
  const cur = {
    ...ZERO,
    numRunning: 4,
    numWaiting: 1,
    kvCacheUsage: 0.125,
    prefixCacheQueries: 200,
    prefixCacheHits: 50,
    promptTokens: 1000,
    generationTokens: 250,
  };
  assert.equal(
    formatStatsLine(ZERO, cur, 10),
    'Avg prompt throughput: 100.0 tokens/s, Avg generation throughput: 25.0 tokens/s, Running: 4 reqs, ' +
      'Waiting: 1 reqs, KV cache usage: 12.5%, Prefix cache hit rate: 25.0%',
  );
  assert.match(
    formatStatsLine(cur, cur, 10),
    /Avg prompt throughput: 0\.0 tokens\/s.*Prefix cache hit rate: 0\.0%$/,
  );
});
