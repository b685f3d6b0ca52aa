// The engine flags of DBO's automatic off-switch: --dbo-auto-off and its --additional-config keys, their
// defaults, and the errors for values out of range.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { addEngineOptions, EngineConfigError, engineConfigFromOptions } from '../../src/cli/engine-args.js';
import type { DboSettings } from '../../src/config/engine-config.js';

function dboOf(argv: string[]): DboSettings {
  const cmd = addEngineOptions(new Command()).exitOverride();
  cmd.parse(argv, { from: 'user' });
  return engineConfigFromOptions(cmd.opts()).dbo;
}

test('the off-switch is on by default, with its default tuning', () => {
  const dbo = dboOf(['--enable-dbo']);
  assert.equal(dbo.autoOff, true);
  assert.equal(dbo.autoOffMinGain, 0.02);
  assert.equal(dbo.autoOffMaxLoss, 0.02);
  assert.equal(dbo.autoOffMinCommShare, 0.05);
  assert.equal(dbo.autoOffProbeInterval, 64);
});

test('--dbo-auto-off false, or dbo_auto_off in --additional-config, turns it off; the flag wins', () => {
  assert.equal(dboOf(['--dbo-auto-off', 'false']).autoOff, false);
  assert.equal(dboOf(['--dbo-auto-off', 'true']).autoOff, true);
  assert.equal(dboOf(['--additional-config', '{"dbo_auto_off": false}']).autoOff, false);
  assert.equal(
    dboOf(['--dbo-auto-off', 'true', '--additional-config', '{"dbo_auto_off": false}']).autoOff,
    true,
  );
  assert.throws(() => dboOf(['--dbo-auto-off', 'maybe']), /--dbo-auto-off takes true or false/);
});

test('the tuning comes from --additional-config and is validated', () => {
  const dbo = dboOf([
    '--additional-config',
    '{"dbo_auto_off_min_gain": 0.05, "dbo_auto_off_min_comm_share": 0.1, "dbo_auto_off_probe_interval": 8}',
  ]);
  assert.deepEqual([dbo.autoOffMinGain, dbo.autoOffMinCommShare, dbo.autoOffProbeInterval], [0.05, 0.1, 8]);
  assert.throws(
    () => dboOf(['--additional-config', '{"dbo_auto_off_probe_interval": 0}']),
    (e: unknown) =>
      e instanceof EngineConfigError && /probe_interval must be a positive integer, got 0/.test(e.message),
  );
  assert.throws(
    () => dboOf(['--additional-config', '{"dbo_auto_off_min_gain": "high"}']),
    /dbo_auto_off_min_gain must be a number/,
  );
  assert.throws(() => dboOf(['--additional-config', '{"dbo_auto_off": "no"}']), /must be true or false/);
});

test('--weight-cache-dir reaches the model settings', () => {
  const cmd = addEngineOptions(new Command()).exitOverride();
  cmd.parse(['--weight-cache-dir', '/tmp/duet-wc'], { from: 'user' });
  assert.equal(engineConfigFromOptions(cmd.opts()).model.weightCacheDir, '/tmp/duet-wc');
});
