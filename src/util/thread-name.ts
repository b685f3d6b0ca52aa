// Names the calling thread for the operating system (Linux: /proc/thread-self/comm), so that `top -H`,
// `ps -L` and bench/serve-overhead.ts can tell Duet's threads apart: duet-engine, duet-kernels-N,
// duet-tokenizer. Best effort: elsewhere, or where /proc is not writable, it does nothing. The main
// thread is left alone, since its name is the process's name in `ps`.

import { writeFileSync } from 'node:fs';

/** Longest thread name Linux keeps (16 bytes with the final NUL). */
const MAX_NAME_BYTES = 15;

/** Names the calling thread `name` (ASCII, cut to 15 characters); never throws. */
export function nameThisThread(name: string): void {
  if (process.platform !== 'linux') return;
  try {
    writeFileSync('/proc/thread-self/comm', name.slice(0, MAX_NAME_BYTES));
  } catch {
    // No /proc, or a sandbox that refuses it: the name is a convenience, not a need.
  }
}
