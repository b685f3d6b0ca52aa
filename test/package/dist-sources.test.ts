// A build holds compiled copies of today's sources only: every .js that tsc wrote under dist/ has its .ts
// beside the repository's sources (a deleted or moved test must not keep running from a stale copy).

import assert from 'node:assert/strict';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { fixtureDir } from '../helpers/golden.js';

const ROOT = join(fixtureDir('v2-tiny'), '..', '..', '..');
const DIST = join(ROOT, 'dist');

function compiledFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...compiledFiles(p));
    else if (name.endsWith('.js')) out.push(p);
  }
  return out;
}

test('every compiled file in dist/ has its TypeScript source', () => {
  // dist/kernels holds the WebAssembly kernels (scripts/build-kernels.mjs), not tsc output.
  const roots = readdirSync(DIST).filter((d) => d !== 'kernels' && statSync(join(DIST, d)).isDirectory());
  const files = roots.flatMap((d) => compiledFiles(join(DIST, d)));
  assert.ok(files.length > 100, `dist/ holds the build (${files.length} compiled files)`);
  const stale = files
    .map((f) => relative(DIST, f).replace(/\.js$/, '.ts'))
    .filter((source) => !existsSync(join(ROOT, source)));
  assert.deepEqual(stale, [], 'compiled files whose source is gone');
});
