// The one engine-config builder: the CLI and the offline `LLM` get the same config from the same
// settings, and a setting left out takes DEFAULT_ENGINE_CONFIG's value.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { addEngineOptions, engineConfigFromOptions } from '../../src/cli/engine-args.js';
import { DEFAULT_ENGINE_CONFIG, EngineConfigError } from '../../src/config/engine-config.js';
import { buildEngineConfig } from '../../src/config/engine-options.js';
import { engineConfigFromLLMOptions } from '../../src/engine/llm.js';

const NO_ENV = {};

function cliConfig(argv: string[]) {
  const cmd = addEngineOptions(new Command()).exitOverride();
  cmd.parse(argv, { from: 'user' });
  return buildEngineConfig(cmd.opts(), NO_ENV);
}

test('no settings and no environment give DEFAULT_ENGINE_CONFIG', () => {
  assert.deepEqual(buildEngineConfig({}, NO_ENV), DEFAULT_ENGINE_CONFIG);
});

test('the CLI with no flags gives the defaults too (commander defaults agree with the config)', () => {
  assert.deepEqual(cliConfig([]), DEFAULT_ENGINE_CONFIG);
});

test('the CLI and LLM build the same config from the same settings', () => {
  const cli = cliConfig([
    '--block-size',
    '16',
    '--no-enable-prefix-caching',
    '--enable-expert-parallel',
    '--tensor-parallel-size',
    '2',
    '--dist-timeout',
    '5',
    '--dbo-auto-off',
    'false',
  ]);
  const llm = buildEngineConfig(
    {
      blockSize: 16,
      enablePrefixCaching: false,
      enableExpertParallel: true,
      tensorParallelSize: 2,
      distTimeout: 5,
      dboAutoOff: false,
    },
    NO_ENV,
  );
  assert.deepEqual(cli, llm);
  assert.equal(llm.parallel.moeComm, 'alltoall', 'expert parallelism defaults to alltoall');
  assert.equal(llm.parallel.distTimeoutMs, 5000);
});

test('moe_comm: the option, else --additional-config, else the expert-parallel rule', () => {
  assert.equal(buildEngineConfig({ enableExpertParallel: true }, NO_ENV).parallel.moeComm, 'alltoall');
  assert.equal(buildEngineConfig({}, NO_ENV).parallel.moeComm, 'allgather');
  const extra = { additionalConfig: { moe_comm: 'allgather' }, enableExpertParallel: true };
  assert.equal(buildEngineConfig(extra, NO_ENV).parallel.moeComm, 'allgather');
  assert.equal(buildEngineConfig({ ...extra, moeComm: 'alltoall' }, NO_ENV).parallel.moeComm, 'alltoall');
  assert.throws(
    () => buildEngineConfig({ additionalConfig: { moe_comm: 'ring' } }, NO_ENV),
    (e: unknown) =>
      e instanceof EngineConfigError && /moe_comm must be "allgather" or "alltoall"/.test(e.message),
  );
});

test('the environment variables the flags document fill settings left out', () => {
  const env = { DUET_ENABLE_DBO: '1', DUET_TRACE_DIR: '/tmp/t', DUET_CLUSTER_SECRET: 's' };
  const c = buildEngineConfig({}, env);
  assert.equal(c.dbo.enabled, true);
  assert.equal(c.dbo.traceDir, '/tmp/t');
  assert.equal(c.parallel.clusterSecret, 's');
  assert.equal(buildEngineConfig({ enableDbo: false }, env).dbo.enabled, false, 'the option wins');
});

test('the weight cache is off unless --weight-cache-dir or DUET_WEIGHT_CACHE_DIR names a folder', () => {
  assert.equal(buildEngineConfig({}, NO_ENV).model.weightCacheDir, null);
  const env = { DUET_WEIGHT_CACHE_DIR: '/tmp/wc-env' };
  assert.equal(buildEngineConfig({}, env).model.weightCacheDir, '/tmp/wc-env');
  assert.equal(
    buildEngineConfig({ weightCacheDir: '/tmp/wc-flag' }, env).model.weightCacheDir,
    '/tmp/wc-flag',
  );
});

test('engineConfigFromOptions and engineConfigFromLLMOptions are the builder', () => {
  const settings = { blockSize: 32, maxNumSeqs: 8 };
  assert.deepEqual(engineConfigFromOptions(settings), buildEngineConfig(settings));
  assert.deepEqual(engineConfigFromLLMOptions(settings), buildEngineConfig(settings));
});
