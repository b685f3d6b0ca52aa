// Entry point of a test rank, as a worker thread (config in workerData, results by postMessage) or as a
// process (config as a JSON argument, results as `@@`-prefixed JSON lines on stdout). It connects to the
// group, runs the named scenario and reports its result.

import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { type ConnectOptions, connectCommunicator } from '../../src/distributed/connect.js';
import type { GroupDescriptor } from '../../src/distributed/group.js';
import { scenarios } from './rank-scenarios.js';

/** What the test passes to each rank. */
export interface RankConfig {
  readonly descriptor: GroupDescriptor;
  readonly rank: number;
  readonly scenario: string;
  readonly params: Record<string, unknown>;
  readonly options: ConnectOptions;
}

/** A message from a rank to the test. */
export type RankMessage =
  | { readonly type: 'event'; readonly rank: number; readonly event: Record<string, unknown> }
  | { readonly type: 'result'; readonly rank: number; readonly value: unknown }
  | { readonly type: 'error'; readonly rank: number; readonly message: string };

function send(message: RankMessage): void {
  if (isMainThread) process.stdout.write(`@@${JSON.stringify(message)}\n`);
  else parentPort!.postMessage(message);
}

async function main(config: RankConfig): Promise<void> {
  const { rank } = config;
  try {
    const scenario = scenarios[config.scenario];
    if (!scenario) throw new Error(`unknown scenario ${config.scenario}`);
    const comm = await connectCommunicator(config.descriptor, rank, config.options);
    send({ type: 'event', rank, event: { event: 'connected' } });
    const value = await scenario({
      comm,
      params: config.params,
      report: (event) => send({ type: 'event', rank, event }),
    });
    send({ type: 'result', rank, value });
  } catch (e) {
    send({ type: 'error', rank, message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
  }
}

const config = (isMainThread ? JSON.parse(process.argv[2] ?? '{}') : workerData) as RankConfig;
void main(config);
