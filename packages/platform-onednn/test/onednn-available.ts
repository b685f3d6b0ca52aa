// Whether the package's tests can run: they need the native addon. Where it was not built they are
// skipped with the reason, except under DUET_REQUIRE_ONEDNN=1 (CI, whose .ci/run builds it), where they
// run and fail on the missing addon instead.

import { loadAddon } from '../dist/addon.js';

/** The reason to skip the oneDNN tests, or undefined to run them. */
export function skipReason(): string | undefined {
  if (process.env.DUET_REQUIRE_ONEDNN === '1') return undefined;
  const load = loadAddon();
  return 'addon' in load ? undefined : `${load.reason} (DUET_REQUIRE_ONEDNN=1 makes this a failure)`;
}
