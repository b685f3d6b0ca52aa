// `duet serve` under a cluster launcher: where --nnodes and --node-rank are absent, the launcher's
// environment (launcher-env.ts) gives them, with the head's address; the head (node 0) serves and every
// other node runs headless. --master-addr / --master-port on the command line still win, and with
// --nnodes or --node-rank given the environment is not read at all (the plain flags of docs/parallel.md).

import { type EngineConfig, EngineConfigError } from '../config/engine-config.js';
import type { Logger } from '../util/logger.js';
import { engineConfigFromOptions } from './engine-args.js';
import { type Env, LauncherEnvError, type LauncherPlacement, placementFromEnv } from './launcher-env.js';

/** Says whether the command line gave the option `key` (commander's camelCase key). */
export type IsGiven = (key: string) => boolean;

/** The launcher's placement for these options, or null where flags or the environment say none. */
export function launcherPlacement(
  o: Readonly<Record<string, unknown>>,
  isGiven: IsGiven,
  env: Env,
): LauncherPlacement | null {
  if (isGiven('nnodes') || isGiven('nodeRank')) return null;
  const placement = placementFromEnv(env, {
    ...(isGiven('masterAddr') ? { masterAddr: o.masterAddr as string } : {}),
    ...(isGiven('masterPort') ? { masterPort: o.masterPort as number } : {}),
  });
  if (placement !== null && placement.nodeRank === 0 && o.headless === true) {
    throw new LauncherEnvError(
      `--headless contradicts the ${placement.launcher} environment (${placement.source}): process 0 is ` +
        'the head, which serves; drop --headless',
    );
  }
  return placement;
}

/**
 * The options with the placement's node rank, node count, address and role filled in. Several processes
 * on one host share its cores: without --num-threads each takes `cores / processes on this host`.
 */
export function optionsWithPlacement(
  o: Readonly<Record<string, unknown>>,
  p: LauncherPlacement,
  cores: number,
): Record<string, unknown> {
  const local = p.numLocalProcesses;
  return {
    ...o,
    nnodes: p.nnodes,
    nodeRank: p.nodeRank,
    masterAddr: p.masterAddr,
    masterPort: p.masterPort,
    headless: p.nodeRank !== 0,
    ...(o.numThreads === undefined && local !== null && local > 1
      ? { numThreads: Math.max(1, Math.floor(cores / local)) }
      : {}),
  };
}

/**
 * `duet serve`'s engine config: from the options, completed by the launcher's environment where the
 * rank flags are absent (logged in one line). A setting the launcher's numbers make invalid (3 processes
 * for `-tp 2`) is an error naming the variables it came from.
 */
export function engineConfigUnderLauncher(
  o: Readonly<Record<string, unknown>>,
  isGiven: IsGiven,
  env: Env,
  cores: number,
  log: Logger,
): EngineConfig {
  const placement = launcherPlacement(o, isGiven, env);
  if (placement === null) return engineConfigFromOptions({ ...o });
  log.info(
    `${placement.launcher} started this process (${placement.source}): node ${placement.nodeRank} of ` +
      `${placement.nnodes}, ${placement.nodeRank === 0 ? 'the head, serving' : 'headless'}; rendezvous at ` +
      `${placement.masterAddr}:${placement.masterPort}`,
  );
  for (const note of placement.notes) log.info(note);
  try {
    return engineConfigFromOptions(optionsWithPlacement(o, placement, cores));
  } catch (e) {
    if (!(e instanceof EngineConfigError)) throw e;
    throw new EngineConfigError(
      `${e.message} (--nnodes ${placement.nnodes} and --node-rank ${placement.nodeRank} came from the ` +
        `${placement.launcher} environment: ${placement.source})`,
    );
  }
}
