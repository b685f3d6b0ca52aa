// Temporary folders for tests, removed with their contents when the test (or file) that made them ends, so
// that a run of the suite leaves nothing behind in the system's temporary folder.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

/**
 * A fresh folder under the system's temporary folder, named `prefix` plus random characters; removed
 * after the test it is made in (at a file's top level or in a `describe`: after those tests).
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
