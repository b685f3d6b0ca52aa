#!/usr/bin/env node
// Installs node-llama-cpp (the benchmark peer of bench:vs-llamacpp) on demand, without saving it: it is
// not in package.json because the registry this project installs from lacks its macOS and Windows builds,
// and a lockfile naming them fails `npm ci`. package.json's config `nodeLlamaCppPostinstall: skip` keeps its
// install step from building or downloading llama.cpp: the prebuilt CPU build in its package is used.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';

const VERSION = '3.22.1';
const require = createRequire(import.meta.url);
try {
  require.resolve('node-llama-cpp/package.json');
} catch {
  console.error(`need-llamacpp: installing node-llama-cpp@${VERSION} (not saved to package.json)`);
  const r = spawnSync(
    'npm',
    ['install', '--no-save', '--no-audit', '--no-fund', `node-llama-cpp@${VERSION}`],
    {
      stdio: 'inherit',
    },
  );
  if (r.status !== 0) process.exit(r.status ?? 1);
}
