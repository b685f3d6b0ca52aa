// Plugin packages for the discovery tests, written into a temporary project's node_modules: a good platform
// (the CPU kernels under the name `fixturecpu`, recording each thread that builds kernels), one whose entry
// throws on import, one declaring contract version 2, one whose probe says the device is missing, a scoped
// one that the filter tests name, and one registering a model architecture (DeepSeek under another name,
// counting its forwards). `duet` itself is linked in, so the plugins import it as a real dependency would.

import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtureDir } from './golden.js';

/** The repository root (the `duet` package the fixtures import). */
export const REPO_ROOT = join(fixtureDir('v2-tiny'), '..', '..', '..');

/** The model architecture the model fixture registers. */
export const FIXTURE_ARCHITECTURE = 'FixtureDeepseekForCausalLM';

function writePackage(root: string, name: string, duet: unknown, files: Record<string, string>): void {
  const dir = join(root, 'node_modules', ...name.split('/'));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', type: 'module', duet }));
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text);
}

/**
 * Writes the fixture packages under `root/node_modules`. The good platform appends `<threadId>\n` to
 * `$FIXTURE_MARKER_DIR/kernels` each time it builds kernels; the model appends to `.../forwards`.
 */
export function writePluginFixtures(root: string): void {
  mkdirSync(join(root, 'node_modules'), { recursive: true });
  symlinkSync(REPO_ROOT, join(root, 'node_modules', 'duet'), 'dir');
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));

  const marker = `
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
const mark = (file) => {
  const dir = process.env.FIXTURE_MARKER_DIR;
  if (dir) appendFileSync(join(dir, file), threadId + '\\n');
};
`;
  writePackage(
    root,
    'fixture-platform',
    { contractVersion: 1, platforms: [{ name: 'fixturecpu', entry: './index.js' }] },
    {
      'index.js': `${marker}
import { CpuPlatform } from 'duet';
class FixturePlatform extends CpuPlatform {
  name = 'fixturecpu';
  createKernels(opts) {
    mark('kernels');
    return super.createKernels(opts);
  }
}
export const platformPlugin = {
  name: 'fixturecpu',
  contractVersion: 1,
  priority: 5,
  async probe() { return { available: true, reason: 'fixture: the CPU kernels renamed' }; },
  async create() { return new FixturePlatform(); },
};
`,
    },
  );
  writePackage(
    root,
    'broken-platform',
    { contractVersion: 1, platforms: [{ name: 'broken', entry: './index.js' }] },
    { 'index.js': "throw new Error('fixture: this plugin cannot load');\n" },
  );
  writePackage(
    root,
    'future-platform',
    { contractVersion: 2, platforms: [{ name: 'future', entry: './index.js' }] },
    { 'index.js': "export const platformPlugin = { name: 'future', contractVersion: 2 };\n" },
  );
  writePackage(
    root,
    'absent-platform',
    { contractVersion: 1, platforms: [{ name: 'absent', entry: './index.js' }] },
    {
      'index.js': `export const platformPlugin = {
  name: 'absent',
  contractVersion: 1,
  priority: 50,
  async probe() { return { available: false, reason: 'fixture: no such device on this machine' }; },
  async create() { throw new Error('never called: the probe failed'); },
};
`,
    },
  );
  writePackage(root, '@fixture/malformed', { contractVersion: 'one', platforms: 'all of them' }, {});
  writePackage(
    root,
    'fixture-model',
    { contractVersion: 1, models: [{ architecture: FIXTURE_ARCHITECTURE, entry: './model.js' }] },
    {
      'model.js': `${marker}
import { DeepseekForCausalLM } from 'duet';
export const modelPlugin = {
  architecture: '${FIXTURE_ARCHITECTURE}',
  contractVersion: 1,
  configFormat: 'DeepseekV2ForCausalLM',
  create(config, opts) {
    const model = new DeepseekForCausalLM(config, opts);
    return {
      config: model.config,
      maxPositions: model.maxPositions,
      forward(...args) {
        mark('forwards');
        return model.forward(...args);
      },
    };
  },
};
`,
    },
  );
}
