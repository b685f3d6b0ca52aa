#!/usr/bin/env node
// Removes the package's compiled output (dist/, dist-test/) before a build, so renamed or deleted sources
// leave no stale modules or tests behind.
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
for (const dir of ['dist', 'dist-test']) rmSync(join(root, dir), { recursive: true, force: true });
