// Validation of the data-parallel settings: whole replicas per host, the mp backend, the rank limit; each
// refusal names the flag and what is allowed.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_ENGINE_CONFIG,
  type EngineConfig,
  EngineConfigError,
  validateEngineConfig,
} from '../../src/config/engine-config.js';

function withParallel(p: Partial<EngineConfig['parallel']>): EngineConfig {
  return { ...DEFAULT_ENGINE_CONFIG, parallel: { ...DEFAULT_ENGINE_CONFIG.parallel, ...p } };
}

test('data-parallel replicas with and without tensor parallelism, on one host or several, are accepted', () => {
  validateEngineConfig(withParallel({ dataParallelSize: 2 }));
  validateEngineConfig(withParallel({ dataParallelSize: 2, tensorParallelSize: 2, nnodes: 2, nodeRank: 0 }));
  validateEngineConfig(
    withParallel({ dataParallelSize: 4, tensorParallelSize: 2, enableExpertParallel: true }),
  );
});

test('bad data-parallel settings are refused with the flag and what is allowed', () => {
  const cases: [Partial<EngineConfig['parallel']>, RegExp][] = [
    [{ dataParallelSize: 0 }, /--data-parallel-size must be a positive integer/],
    [{ dataParallelSize: 1.5 }, /--data-parallel-size must be a positive integer/],
    [{ dataParallelSize: 16, tensorParallelSize: 8 }, /× --tensor-parallel-size ≤ 64, got 16 \(× 8\)/],
    [{ dataParallelSize: 2, distributedExecutorBackend: 'uni' }, /uni runs one rank/],
    [
      { dataParallelSize: 2, tensorParallelSize: 2, nnodes: 4, nodeRank: 0 },
      /each host must hold whole data-parallel replicas: 1 ranks per host is not a multiple of --tensor-parallel-size 2/,
    ],
    [
      { dataParallelSize: 2, nnodes: 3, nodeRank: 0 },
      /--nnodes must be a positive integer dividing the number of ranks \(2 × 1\), got 3/,
    ],
  ];
  for (const [p, message] of cases) {
    assert.throws(
      () => validateEngineConfig(withParallel(p)),
      (e: Error) => {
        assert.ok(e instanceof EngineConfigError);
        assert.match(e.message, message);
        return true;
      },
    );
  }
});
