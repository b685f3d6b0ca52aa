#!/usr/bin/env node
// Removes what `tsc` wrote under dist/ (everything but the WebAssembly kernels in dist/kernels, which
// scripts/build-kernels.mjs rebuilds only when their sources change), so that a build holds compiled
// copies of today's sources only: a deleted or moved test or module leaves nothing behind that still runs.
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const DIST = 'dist';
const KEEP = new Set(['kernels']);

let entries = [];
try {
  entries = readdirSync(DIST);
} catch {
  // No dist/ yet: nothing to clean.
}
for (const name of entries) {
  if (!KEEP.has(name)) rmSync(join(DIST, name), { recursive: true, force: true });
}
