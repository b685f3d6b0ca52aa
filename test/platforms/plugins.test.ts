// Plugin discovery with fixture packages in a temporary node_modules (test/helpers/plugin-fixtures.ts):
// the good platform is found, probed and preferred to `cpu`; the broken, wrong-version, malformed and
// unavailable ones are listed with their reason and never crash; DUET_PLUGINS / VLLM_PLUGINS filter;
// an unknown or unusable --device names the usable ones; a plugin registers a model architecture. End to
// end, in a process whose working directory is the fixture project: `duet env` lists all of it, and a
// -tp 2 generation with --device fixturecpu on the plugin's model architecture builds the plugin's kernels
// in the engine thread and in the rank worker, runs the plugin's model, and gives the golden tokens.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { ModelRegistry, registerModelPlugins } from '../../src/models/model-registry.js';
import { PlatformRegistry, UnknownDeviceError } from '../../src/platforms/platform-registry.js';
import { discoverPlugins } from '../../src/platforms/plugin-discovery.js';
import { fixtureDir, loadGolden } from '../helpers/golden.js';
import { FIXTURE_ARCHITECTURE, REPO_ROOT, writePluginFixtures } from '../helpers/plugin-fixtures.js';

const root = mkdtempSync(join(tmpdir(), 'duet-plugins-'));
writePluginFixtures(root);
after(() => rmSync(root, { recursive: true, force: true }));

/** Discovery over the fixture project only, with the given plugin filter environment. */
const discover = (env: Record<string, string> = {}) => PlatformRegistry.discover({ roots: [root], env });

describe('platform plugin discovery', () => {
  test('finds each fixture package and says why each platform is or is not usable', async () => {
    const reg = await discover();
    const status = (name: string) => reg.statuses.find((s) => s.name === name);
    assert.deepEqual(
      { usable: status('cpu')?.usable, source: status('cpu')?.source, priority: status('cpu')?.priority },
      { usable: true, source: 'built-in', priority: 0 },
    );
    assert.equal(status('fixturecpu')?.usable, true);
    assert.equal(status('fixturecpu')?.source, 'fixture-platform');
    assert.match(status('broken')!.reason, /failed to load.*fixture: this plugin cannot load/);
    assert.equal(status('broken')!.usable, false);
    assert.match(status('future')!.reason, /contract version 2; this Duet speaks version 1/);
    assert.equal(status('absent')!.usable, false);
    assert.match(status('absent')!.reason, /no such device/);
    const malformed = reg.discovered.skipped.find((s) => s.packageName === '@fixture/malformed');
    assert.match(malformed?.reason ?? '', /"duet" field is malformed \(contractVersion/);
    // The best usable platform first (fixturecpu's priority 5 beats cpu's 0; absent's 50 does not count).
    assert.deepEqual(reg.usableNames(), ['fixturecpu', 'cpu']);
    assert.equal((await reg.create(null)).name, 'fixturecpu');
    assert.equal((await reg.create('cpu')).name, 'cpu');
  });

  test('an unknown or unusable --device is an error naming the usable devices', async () => {
    const reg = await discover();
    await assert.rejects(reg.create('tpu'), (e: Error) => {
      assert.ok(e instanceof UnknownDeviceError);
      assert.equal(e.message, '--device tpu is not a known platform. Usable devices: fixturecpu, cpu');
      return true;
    });
    await assert.rejects(
      reg.create('absent'),
      /--device absent is not usable here: fixture: no such device on this machine\. Usable devices: fixturecpu, cpu/,
    );
    await assert.rejects(
      reg.create('broken'),
      /--device broken is not usable here: skipped: its entry module failed/,
    );
  });

  test('DUET_PLUGINS limits which plugins load (by platform or package name); VLLM_PLUGINS too', async () => {
    const only = await discover({ DUET_PLUGINS: 'fixturecpu' });
    assert.deepEqual(
      only.statuses.map((s) => s.name),
      ['cpu', 'fixturecpu'],
    );
    assert.ok(
      only.discovered.skipped.some((s) => s.name === 'broken' && /not listed in DUET_PLUGINS/.test(s.reason)),
    );
    const byPackage = await discover({ VLLM_PLUGINS: 'absent-platform' });
    assert.deepEqual(
      byPackage.statuses.map((s) => s.name),
      ['cpu', 'absent'],
    );
    assert.deepEqual(byPackage.usableNames(), ['cpu']);
    // DUET_PLUGINS wins over VLLM_PLUGINS; an empty list loads no plugin (the built-in cpu remains).
    const none = await discover({ DUET_PLUGINS: '', VLLM_PLUGINS: 'fixturecpu' });
    assert.deepEqual(none.usableNames(), ['cpu']);
    assert.deepEqual(none.discovered.allowed, []);
  });

  test('a plugin registers a model architecture; a wrong-version model entry is skipped', async () => {
    const found = discoverPlugins({ roots: [root], env: {} });
    assert.deepEqual(
      found.models.map((m) => m.name),
      [FIXTURE_ARCHITECTURE],
    );
    const models = new ModelRegistry();
    assert.equal(models.get(FIXTURE_ARCHITECTURE), undefined);
    const messages = await registerModelPlugins(models, found.models);
    assert.deepEqual(messages, [`model ${FIXTURE_ARCHITECTURE} registered by fixture-model`]);
    assert.equal(models.get(FIXTURE_ARCHITECTURE)?.configFormat, 'DeepseekV2ForCausalLM');
    const stale = await registerModelPlugins(new ModelRegistry(), [
      { ...found.models[0]!, contractVersion: 7 },
    ]);
    assert.match(stale[0]!, /skipped: contract version 7; this Duet speaks version 1/);
  });
});

describe('plugins end to end, in a project that installs them', () => {
  const duet = join(REPO_ROOT, 'bin', 'duet.js');
  // Only the fixture packages: discovery also walks Duet's own install, where this repository's real
  // plugins (packages/platform-onednn, when built) would outrank the fixtures.
  const FIXTURES_ONLY = [
    'fixture-platform',
    'broken-platform',
    'future-platform',
    'absent-platform',
    'fixture-model',
    '@fixture/malformed',
  ].join(',');
  const run = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, args, {
      cwd: root,
      encoding: 'utf8',
      timeout: 180_000,
      env: { ...process.env, DUET_LOG_LEVEL: 'info', DUET_PLUGINS: FIXTURES_ONLY, ...env },
    });

  test('duet env lists every platform found, why each is or is not usable, and the model architectures', () => {
    const r = run([duet, 'env']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /^ {2}fixturecpu +usable +priority 5 +fixture-platform: fixture: the CPU kernels renamed$/m,
    );
    assert.match(r.stdout, /^ {2}cpu +usable +priority 0 +built-in: WebAssembly SIMD/m);
    assert.match(r.stdout, /^ {2}broken +NOT usable .*failed to load/m);
    assert.match(r.stdout, /^ {2}future +NOT usable .*contract version 2/m);
    assert.match(r.stdout, /^ {2}absent +NOT usable .*no such device/m);
    assert.match(r.stdout, /^Default \(no --device\): fixturecpu$/m);
    assert.match(r.stdout, new RegExp(`^ {2}${FIXTURE_ARCHITECTURE} \\(fixture-model\\)$`, 'm'));
    const json = JSON.parse(run([duet, 'env', '--json']).stdout) as { defaultPlatform: string };
    assert.equal(json.defaultPlatform, 'fixturecpu');
  });

  test('an unknown --device fails start-up with the usable devices listed', () => {
    const r = run([duet, 'generate', '--device', 'tpu', '--prompt', 'hi']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /error: --device tpu is not a known platform\. Usable devices: fixturecpu, cpu/);
  });

  test('-tp 2 on --device fixturecpu runs the plugin in every rank thread, with the plugin model', () => {
    // The v2-tiny checkpoint under the plugin's architecture name.
    const model = join(root, 'model');
    mkdirSync(model);
    for (const f of [
      'model.safetensors',
      'tokenizer.json',
      'tokenizer_config.json',
      'generation_config.json',
    ])
      copyFileSync(join(fixtureDir('v2-tiny'), f), join(model, f));
    const config = JSON.parse(readFileSync(join(fixtureDir('v2-tiny'), 'config.json'), 'utf8'));
    writeFileSync(
      join(model, 'config.json'),
      JSON.stringify({ ...config, architectures: [FIXTURE_ARCHITECTURE] }),
    );
    const markers = join(root, 'markers');
    mkdirSync(markers);
    const golden = loadGolden('v2-tiny');
    const p = golden.prompts[0]!;
    const script = join(root, 'generate.mjs');
    writeFileSync(
      script,
      `import { LLM } from 'duet';
const llm = new LLM({ model: ${JSON.stringify(model)}, device: 'fixturecpu', tensorParallelSize: 2, numThreads: 2,
  blockSize: 16, kvCacheMemory: 8 * 2 ** 20, logger: { debug() {}, info: (m) => console.error(m), warn: console.error, error: console.error } });
const [out] = await llm.generate([{ prompt_token_ids: ${JSON.stringify(p.ids)} }], { temperature: 0, maxTokens: 16, ignoreEos: true });
console.log(JSON.stringify(out.outputs[0].token_ids));
await llm.close();
`,
    );
    const r = run([script], { FIXTURE_MARKER_DIR: markers });
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      /platform fixturecpu \(fixture-platform, --device fixturecpu\): fixture: the CPU kernels renamed/,
    );
    assert.match(
      r.stderr,
      /notice: platform broken \(broken-platform\) is not usable: skipped: its entry module failed/,
    );
    assert.deepEqual(JSON.parse(r.stdout.trim()), p.greedy.ids);
    // Kernels built by the plugin in two threads: the engine's (rank 0) and the rank-1 worker.
    const threads = new Set(readFileSync(join(markers, 'kernels'), 'utf8').trim().split('\n'));
    assert.equal(threads.size, 2, `kernel-building threads: ${[...threads].join(', ')}`);
    // The plugin's model ran the forwards, on both ranks.
    const forwards = new Set(readFileSync(join(markers, 'forwards'), 'utf8').trim().split('\n'));
    assert.equal(forwards.size, 2);
  });
});
