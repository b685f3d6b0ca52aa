// The layering check of `npm run lint` (dependency-cruiser, .dependency-cruiser.cjs): today's src/ passes,
// and a copy of src/ with planted violations (an upward import, a cycle, a Node built-in in the
// scheduling core, an engine import in the benchmark client) fails, naming each broken rule.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  appendFileSync,
  copyFileSync,
  cpSync,
  mkdtempSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DEPCRUISE = join(ROOT, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

/** Runs the lint's layering check in `dir`; its exit status and report. */
function cruise(dir: string): { status: number | null; report: string } {
  const r = spawnSync(
    process.execPath,
    [DEPCRUISE, 'src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'],
    { cwd: dir, encoding: 'utf8', timeout: 120_000 },
  );
  return { status: r.status, report: `${r.stdout}${r.stderr}` };
}

test('src/ as it is passes the layering check', () => {
  const { status, report } = cruise(ROOT);
  assert.equal(status, 0, report);
  assert.match(report, /no dependency violations found/);
});

test('planted violations fail the check, each named by its rule', () => {
  const dir = mkdtempSync(join(tmpdir(), 'duet-layering-'));
  try {
    cpSync(join(ROOT, 'src'), join(dir, 'src'), { recursive: true });
    for (const f of ['tsconfig.json', '.dependency-cruiser.cjs']) copyFileSync(join(ROOT, f), join(dir, f));
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    // A model reaching up into the engine.
    appendFileSync(
      join(dir, 'src/models/deepseek.ts'),
      "\nexport type { LLMEngine as Planted } from '../engine/llm-engine.js';\n",
    );
    // Two files importing each other.
    writeFileSync(
      join(dir, 'src/util/planted-a.ts'),
      "export { b } from './planted-b.js';\nexport const a = 1;\n",
    );
    writeFileSync(
      join(dir, 'src/util/planted-b.ts'),
      "export { a } from './planted-a.js';\nexport const b = 2;\n",
    );
    // A Node built-in in the pure scheduling core.
    appendFileSync(join(dir, 'src/core/block-pool.ts'), "\nexport { cpus as plantedCpus } from 'node:os';\n");
    // The benchmark client importing the engine.
    appendFileSync(
      join(dir, 'src/bench/metrics.ts'),
      "\nexport { LLM as PlantedLLM } from '../engine/llm.js';\n",
    );

    const { status, report } = cruise(dir);
    assert.notEqual(status, 0, `the planted violations passed:\n${report}`);
    for (const [rule, file] of [
      ['layering-models', 'src/models/deepseek.ts'],
      ['no-cycle', 'src/util/planted-a.ts'],
      ['core-is-pure', 'src/core/block-pool.ts'],
      ['layering-bench', 'src/bench/metrics.ts'],
    ] as const) {
      assert.match(report, new RegExp(`error ${rule}: ${file.replace(/[.]/g, '\\.')}`), report);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
