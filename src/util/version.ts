// Duet's own version, read from its package.json (not from npm_package_version, which names whatever
// project runs Duet).

import { readFileSync } from 'node:fs';

/** Duet's version from package.json ('0.0.0' when it cannot be read). */
export function duetVersion(): string {
  try {
    // dist/src/util/version.js → the package root.
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
    return typeof pkg.version === 'string' ? pkg.version : '0.0.0';
  } catch {
    return '0.0.0';
  }
}
