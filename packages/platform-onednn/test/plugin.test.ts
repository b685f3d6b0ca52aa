// The package as Duet's plugin loader sees it: the `duet` field of its package.json, the entry's
// `platformPlugin`, and the optional install: without a compiler or without the oneDNN headers the build
// step prints one line saying why it skipped, exits 0, and the probe reports that reason.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../dist/addon.js';
import { platformPlugin } from '../dist/index.js';
import { skipReason } from './onednn-available.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

describe('the onednn plugin', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'duet-onednn-'));
  after(() => rmSync(tmp, { recursive: true, force: true }));

  /** Runs the build script into a fresh folder with `cxx` as the compiler. */
  function build(cxx: string, name: string): { status: number | null; stdout: string; dir: string } {
    const dir = join(tmp, name);
    const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-addon.mjs'), '--out', dir], {
      env: { ...process.env, CXX: cxx },
      encoding: 'utf8',
    });
    return { status: r.status, stdout: r.stdout, dir };
  }

  it('declares the onednn platform in package.json, with an entry that exports it', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
    assert.equal(pkg.duet.contractVersion, 1);
    assert.deepEqual(
      pkg.duet.platforms.map((p: { name: string }) => p.name),
      ['onednn'],
    );
    assert.ok(existsSync(join(ROOT, pkg.duet.platforms[0].entry)), 'the entry module exists');
    assert.equal(platformPlugin.name, 'onednn');
    assert.equal(platformPlugin.contractVersion, 1);
  });

  it('skips the build without a compiler, says so in one line, and the probe gives the reason', () => {
    const r = build(join(tmp, 'no-such-compiler'), 'no-cxx');
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^duet-platform-onednn: skipped the native addon: no C\+\+ compiler .*\n$/);
    const load = loadAddon(r.dir);
    assert.ok('reason' in load && /no C\+\+ compiler/.test(load.reason), JSON.stringify(load));
  });

  it('skips the build without the oneDNN headers', () => {
    // A "compiler" that answers --version and fails everything else, as g++ without libdnnl-dev would.
    const fake = join(tmp, 'fake-cxx.sh');
    writeFileSync(fake, '#!/bin/sh\n[ "$1" = "--version" ] && exit 0\nexit 1\n');
    chmodSync(fake, 0o755);
    const r = build(fake, 'no-dnnl');
    assert.equal(r.status, 0);
    assert.match(
      r.stdout,
      /^duet-platform-onednn: skipped the native addon: no oneDNN headers .*libdnnl-dev.*\n$/,
    );
    const load = loadAddon(r.dir);
    assert.ok('reason' in load && /no oneDNN headers/.test(load.reason), JSON.stringify(load));
  });

  it('probes available and creates the onednn platform where the addon is built', {
    skip: skipReason(),
  }, async () => {
    const probe = await platformPlugin.probe();
    assert.equal(probe.available, true, probe.reason);
    assert.match(probe.reason, /^oneDNN \d+\.\d+/);
    const platform = await platformPlugin.create();
    assert.equal(platform.name, 'onednn');
    assert.match(platform.deviceName, /oneDNN/);
  });
});
