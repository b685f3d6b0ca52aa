// The benchmark's progress bar (vLLM's tqdm): a cli-progress bar on stderr counting finished requests,
// or nothing with --disable-tqdm.

import cliProgress from 'cli-progress';

/** Counts finished requests. */
export interface Progress {
  increment(): void;
  stop(): void;
}

/** A progress bar over `total` requests on stderr, or a silent counter when disabled. */
export function createProgress(total: number, enabled: boolean): Progress {
  if (!enabled) return { increment() {}, stop() {} };
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: '{percentage}%|{bar}| {value}/{total} [{duration_formatted}<{eta_formatted}]',
      hideCursor: false,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0);
  return {
    increment: () => bar.increment(),
    stop: () => bar.stop(),
  };
}
