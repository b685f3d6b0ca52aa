#!/usr/bin/env node
import { spawnSync } from 'node:child_process';
// Runs every compiled test file (dist/test/**/*.test.js, and packages/*/dist-test/**/*.test.js of the
// workspace packages) with Node's own test runner.
// Usage: node scripts/run-tests.mjs [substring filter...]
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const roots = ['dist/test', ...readdirSync('packages').map((p) => join('packages', p, 'dist-test'))];
const files = roots
  .filter((dir) => existsSync(dir))
  .flatMap(walk)
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}
const res = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(res.status ?? 1);
