// What `duet --help`, `duet serve --help`, `duet generate --help` and `duet --version` tell a user: every
// engine default shown is the one the config holds (DEFAULT_ENGINE_CONFIG, or the engine's own default
// where the config leaves it open), the block-size range in the help is the one the validation enforces,
// `generate` lists no server-only flag, and the version is Duet's own, whatever project runs it.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import type { Command } from 'commander';
import { EngineConfigError, engineConfigFromOptions } from '../../src/cli/engine-args.js';
import { buildProgram } from '../../src/cli/main.js';
import { DEFAULT_ENGINE_CONFIG, DEFAULT_MAX_NUM_BATCHED_TOKENS } from '../../src/config/engine-config.js';
import { fixtureDir } from '../helpers/golden.js';

const ROOT = join(fixtureDir('v2-tiny'), '..', '..', '..');
const BIN = join(ROOT, 'bin', 'duet.js');

function subcommand(name: string): Command {
  const cmd = buildProgram().commands.find((c) => c.name() === name);
  assert.ok(cmd, `duet has a ${name} subcommand`);
  return cmd;
}

/** Each option's one-line help text (description plus commander's choices/default), by long flag. */
function optionHelp(cmd: Command): Map<string, string> {
  const help = cmd.createHelp();
  return new Map(cmd.options.map((o) => [o.long ?? o.flags, help.optionDescription(o)]));
}

const d = DEFAULT_ENGINE_CONFIG;
const onOff = (v: boolean) => (v ? 'on' : 'off');
/** The default each engine flag must show, from the config (not from literals in this test). */
const ENGINE_DEFAULTS: readonly [string, string | number | boolean][] = [
  ['--dtype', d.model.dtype],
  ['--load-format', d.model.loadFormat],
  ['--seed', d.model.seed],
  ['--generation-config', d.model.generationConfig],
  ['--block-size', d.cache.blockSize],
  ['--gpu-memory-utilization', d.cache.gpuMemoryUtilization],
  ['--enable-prefix-caching', onOff(d.cache.enablePrefixCaching)],
  ['--enable-chunked-prefill', onOff(d.scheduler.enableChunkedPrefill)],
  ['--max-num-seqs', d.scheduler.maxNumSeqs],
  ['--max-num-batched-tokens', DEFAULT_MAX_NUM_BATCHED_TOKENS],
  ['--tensor-parallel-size', d.parallel.tensorParallelSize],
  ['--data-parallel-size', d.parallel.dataParallelSize],
  ['--enable-expert-parallel', onOff(d.parallel.enableExpertParallel)],
  ['--nnodes', d.parallel.nnodes],
  ['--node-rank', d.parallel.nodeRank],
  ['--master-addr', d.parallel.masterAddr],
  ['--master-port', d.parallel.masterPort],
  ['--dist-timeout', d.parallel.distTimeoutMs / 1000],
  ['--enable-dbo', onOff(d.dbo.enabled)],
  ['--dbo-prefill-token-threshold', d.dbo.prefillTokenThreshold],
  ['--dbo-decode-token-threshold', d.dbo.decodeTokenThreshold],
  ['--dbo-auto-off', d.dbo.autoOff],
];

describe('engine flag help', () => {
  for (const name of ['serve', 'generate']) {
    test(`duet ${name} --help shows every engine default, read from the config`, () => {
      const help = optionHelp(subcommand(name));
      for (const [flag, value] of ENGINE_DEFAULTS) {
        const text = help.get(flag);
        assert.ok(text !== undefined, `${name} has ${flag}`);
        // commander quotes string defaults it applies itself ("auto"); defaults written into the text do not.
        const shown = [`default: ${value}`, `default: ${JSON.stringify(value)}`];
        assert.ok(
          shown.some((s) => text.includes(s)),
          `${flag}: "${text}" shows ${shown[0]}`,
        );
      }
      const extra = help.get('--additional-config') ?? '';
      for (const [key, value] of [
        ['dbo_auto_off_min_gain', d.dbo.autoOffMinGain],
        ['dbo_auto_off_max_loss', d.dbo.autoOffMaxLoss],
        ['dbo_auto_off_min_comm_share', d.dbo.autoOffMinCommShare],
        ['dbo_auto_off_probe_interval', d.dbo.autoOffProbeInterval],
      ] as const) {
        assert.ok(extra.includes(`${key} ${value}`), `--additional-config help shows ${key} ${value}`);
      }
    });
  }

  test('the block-size range in the help is the one the validation enforces', () => {
    const text = optionHelp(subcommand('serve')).get('--block-size') ?? '';
    const range = /\((\d+)\.\.(\d+);/.exec(text);
    assert.ok(range, `--block-size help states a range: "${text}"`);
    const [min, max] = [Number(range[1]), Number(range[2])];
    const config = (blockSize: number) => engineConfigFromOptions({ blockSize });
    assert.equal(config(min).cache.blockSize, min);
    assert.equal(config(max).cache.blockSize, max);
    for (const bad of [min - 1, max + 1]) {
      assert.throws(
        () => config(bad),
        (e: unknown) => e instanceof EngineConfigError && e.message.includes(`${min}..${max}`),
        `--block-size ${bad} is refused, naming ${min}..${max}`,
      );
    }
  });

  test('duet generate lists no server-only flag, and refuses one', () => {
    const generate = optionHelp(subcommand('generate'));
    const serve = optionHelp(subcommand('serve'));
    for (const flag of ['--served-model-name', '--headless', '--host', '--port', '--api-key']) {
      assert.ok(serve.has(flag), `serve has ${flag}`);
      assert.ok(!generate.has(flag), `generate does not list ${flag}`);
    }
    const r = spawnSync(process.execPath, [BIN, 'generate', '--served-model-name', 'x', '--prompt', 'hi'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /unknown option '--served-model-name'/);
  });
});

test("duet --version prints Duet's version, not the version of the project it runs in", () => {
  const own = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version as string;
  // npm sets npm_package_version to the enclosing project's version when it runs a script there.
  const r = spawnSync(process.execPath, [BIN, '--version'], {
    encoding: 'utf8',
    cwd: tmpdir(),
    env: { ...process.env, npm_package_version: '99.98.97' },
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), own);
});
