#!/usr/bin/env node
// Builds the Node-API addon (native/onednn-addon.cc → build/duet_onednn.node) with the system C++ compiler
// against Debian's oneDNN (libdnnl-dev) and the Node-API headers of the npm packages node-api-headers and
// node-addon-api; nothing is downloaded. It runs as the package's install step and is optional: without a
// compiler or the oneDNN headers it prints one line saying why it skipped, records the reason in
// build/status.json (which the platform's probe reports) and exits 0, so that `npm ci` works anywhere;
// the package's tests then skip, or fail under DUET_REQUIRE_ONEDNN=1 (CI). CXX names the compiler
// (default g++); `--out DIR` builds into DIR instead of build/.

import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outArg = process.argv.indexOf('--out');
const buildDir = outArg > 0 && process.argv[outArg + 1] ? process.argv[outArg + 1] : join(root, 'build');
const require = createRequire(join(root, 'package.json'));
const cxx = process.env.CXX || 'g++';

function finish(built, reason) {
  mkdirSync(buildDir, { recursive: true });
  writeFileSync(join(buildDir, 'status.json'), `${JSON.stringify({ built, reason }, null, 2)}\n`);
  if (built) {
    console.log(`duet-platform-onednn: built ${join(buildDir, 'duet_onednn.node')}`);
    process.exit(0);
  }
  console.log(`duet-platform-onednn: skipped the native addon: ${reason}`);
  process.exit(0);
}

function run(args, input) {
  return spawnSync(cxx, args, { input, encoding: 'utf8' });
}

if (run(['--version']).status !== 0) {
  finish(false, `no C++ compiler (${cxx}; set CXX or install g++)`);
}
if (run(['-x', 'c++', '-E', '-o', '/dev/null', '-'], '#include <oneapi/dnnl/dnnl.hpp>\n').status !== 0) {
  finish(false, 'no oneDNN headers (oneapi/dnnl/dnnl.hpp; on Debian: apt-get install libdnnl-dev)');
}
let napiInclude;
let addonInclude;
try {
  napiInclude = require('node-api-headers').include_dir;
  addonInclude = dirname(require.resolve('node-addon-api/napi.h'));
} catch {
  finish(false, 'no Node-API headers (npm packages node-api-headers and node-addon-api: run npm install)');
}
mkdirSync(buildDir, { recursive: true });
const flags = [
  '-std=c++17',
  '-O3',
  '-march=native',
  // The W8A8 dequantization must round like Duet's reference: no fused multiply-add.
  '-ffp-contract=off',
  '-fPIC',
  '-shared',
  '-fopenmp',
  '-fvisibility=hidden',
  '-DNAPI_VERSION=8',
  '-DNAPI_CPP_EXCEPTIONS',
  // A worker thread terminated during a native call (the engine thread when `duet serve` shuts down or its
  // engine dies) makes every later Node-API call fail; without this, node-addon-api turns the failure of
  // re-throwing that error into a C++ exception no one catches, and the whole process aborts.
  '-DNODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS',
  '-DNODE_ADDON_API_DISABLE_DEPRECATED',
  `-I${napiInclude}`,
  `-I${addonInclude}`,
  '-o',
  join(buildDir, 'duet_onednn.node'),
  join(root, 'native', 'onednn-addon.cc'),
  '-ldnnl',
];
const r = run(flags);
if (r.status !== 0) {
  const log = `${r.stdout ?? ''}${r.stderr ?? r.error ?? ''}`;
  writeFileSync(join(buildDir, 'build.log'), log);
  if (process.env.DUET_REQUIRE_ONEDNN === '1') process.stderr.write(log.slice(0, 4000));
  finish(false, `${cxx} failed to compile the addon (see ${join(buildDir, 'build.log')})`);
}
finish(true, undefined);
