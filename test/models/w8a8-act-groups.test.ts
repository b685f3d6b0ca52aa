// W8A8 with activation scales per token and group of k (compressed-tensors `input_activations.strategy:
// "group"`, vLLM's per-token-group int8) on the golden tiny checkpoints and the trained V3-style embedded
// model, on every kernel set (the TypeScript reference, the cpu platform, and each usable platform plugin
// such as onednn, which hands these weights to the WebAssembly kernels): a compressed-tensors checkpoint
// written from the float weights with groups of 16 and 32 (the tiny models' k is 32 to 384, so both cut
// every k into two or more groups but the smallest at 32), argmax at every prompt position against the
// float reference.
// Floor asserted: 0.85 of positions, the existing W8A8 tests' (issue 11). Measured (every kernel set
// alike): see docs/int8.md's accuracy section; per-token W8A8 gives 0.955 / 0.938 / 0.993 on
// v2-lite-tiny / v2-tiny / V3-style.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Kernels } from '../../src/kernels/kernels.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { openModelWeights } from '../../src/loader/model-folder.js';
import { DeepseekForCausalLM } from '../../src/models/deepseek.js';
import { deepseekCheckpointLayout } from '../../src/models/deepseek-weights.js';
import { embeddedModelDir } from '../../src/models/model-loader.js';
import { argmaxAgreement, fixtureDir, loadGolden } from '../helpers/golden.js';
import { kernelSetsToTest } from '../helpers/platforms.js';
import { prefillAll } from '../helpers/prefill.js';
import { writeW8A8Checkpoint } from '../helpers/w8a8-checkpoint.js';

const W8A8_FLOOR = 0.85;
const GROUPS = [16, 32] as const;

interface Case {
  readonly name: string;
  readonly dir: string;
  readonly prompts: { ids: number[]; argmax: number[] }[];
}

const speaking = JSON.parse(readFileSync(join(fixtureDir('speaking-model'), 'reference.json'), 'utf8')) as {
  prompts: { ids: number[]; argmax: number[] }[];
};

const CASES: Case[] = [
  { name: 'v2-lite-tiny', dir: fixtureDir('v2-lite-tiny'), prompts: loadGolden('v2-lite-tiny').prompts },
  { name: 'v2-tiny', dir: fixtureDir('v2-tiny'), prompts: loadGolden('v2-tiny').prompts },
  { name: 'V3-style (embedded model)', dir: embeddedModelDir(), prompts: speaking.prompts },
];

const dirs = new Map<string, string>();
after(() => {
  for (const d of dirs.values()) rmSync(d, { recursive: true, force: true });
});

/** The group-activation checkpoint of case `c` with groups of `g` (written once). */
function checkpoint(c: Case, g: number): string {
  const key = `${c.name} ${g}`;
  let dir = dirs.get(key);
  if (dir === undefined) {
    dir = mkdtempSync(join(tmpdir(), 'duet-w8a8-groups-'));
    writeW8A8Checkpoint(c.dir, dir, 'compressed-tensors', undefined, { actGroupSize: g });
    dirs.set(key, dir);
  }
  return dir;
}

for (const [setName, make] of await kernelSetsToTest(2)) {
  describe(`W8A8 with activation groups, ${setName}`, () => {
    let kernels: Kernels;
    before(async () => {
      kernels = await make();
    });
    after(() => kernels.dispose());

    for (const c of CASES) {
      for (const g of GROUPS) {
        test(`${c.name}, groups of ${g}: argmax at >= ${W8A8_FLOOR} of positions`, async () => {
          const dir = checkpoint(c, g);
          const cfg = loadDeepseekConfig(dir);
          const weights = openModelWeights(dir, cfg, deepseekCheckpointLayout(cfg), 'auto');
          assert.equal(weights.format?.actGroupSize, g);
          const model = new DeepseekForCausalLM(cfg, {
            kernels,
            source: weights.source,
            linears: weights.linears,
            weightDType: 'f32',
          });
          weights.source.close();
          const a = argmaxAgreement(
            await prefillAll(cfg, kernels, model, c.prompts),
            c.prompts,
            cfg.vocabSize,
          );
          console.log(
            `# ${setName} ${c.name}: W8A8, activations in groups of ${g}: argmax agreement ${a.toFixed(4)}`,
          );
          assert.ok(a >= W8A8_FLOOR, `argmax agreement ${a}`);
        });
      }
    }
  });
}
