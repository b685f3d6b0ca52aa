// Joining a group: each rank (a worker thread, a process, or a process on another host) calls
// `connectCommunicator(descriptor, rank)`, which starts the rank's communication thread, waits until
// every rank of the group is reachable, and returns the rank's communicator.

import { MessageChannel, Worker } from 'node:worker_threads';
import type { CommThreadData } from './comm-thread.js';
import { InvalidCollectiveError } from './communicator.js';
import type { GroupDescriptor } from './group.js';
import { allocateChannel } from './op.js';
import { type ConnectedCommunicator, StreamCommunicator } from './stream-communicator.js';

/** Default failure-detection timeout (the engine's `--dist-timeout`). */
export const DEFAULT_TIMEOUT_MS = 60_000;

export interface ConnectOptions {
  /**
   * A collective that waits this long on one peer without progress (no data from it, or it reads none,
   * or it never arrives) fails the group with a CollectiveError naming the peer. Default 60 000 ms.
   */
  readonly timeoutMs?: number;
  /** How long to wait for every rank to join (listen, dial, handshake). Default: `timeoutMs`. */
  readonly connectTimeoutMs?: number;
  /**
   * Shared memory only: a peer whose communication thread shows no sign of life (it beats every 50 ms)
   * for this long is declared dead without waiting for `timeoutMs`. Default: min(timeoutMs, 5000).
   */
  readonly heartbeatTimeoutMs?: number;
}

function positive(name: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0)
    throw new InvalidCollectiveError(`${name} must be a positive number of milliseconds, got ${value}`);
  return value;
}

/**
 * Connects rank `rank` of the group. Resolves once every rank has joined; rejects with a CollectiveError
 * if they do not within `connectTimeoutMs` (or a peer refuses: other group, other world size).
 */
export async function connectCommunicator(
  descriptor: GroupDescriptor,
  rank: number,
  options: ConnectOptions = {},
): Promise<ConnectedCommunicator> {
  if (!Number.isInteger(rank) || rank < 0 || rank >= descriptor.worldSize)
    throw new InvalidCollectiveError(`rank ${rank} is not in this group of ${descriptor.worldSize} ranks`);
  const timeoutMs = positive('timeoutMs', options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const timeouts = {
    timeoutMs,
    connectTimeoutMs: positive('connectTimeoutMs', options.connectTimeoutMs ?? timeoutMs),
    heartbeatTimeoutMs: positive(
      'heartbeatTimeoutMs',
      options.heartbeatTimeoutMs ?? Math.min(timeoutMs, 5000),
    ),
  };
  const channel = allocateChannel();
  const { port1, port2 } = new MessageChannel();
  const data: CommThreadData = { descriptor, rank, timeouts, channel, port: port2 };
  const worker = new Worker(new URL('./comm-thread.js', import.meta.url), {
    workerData: data,
    transferList: [port2],
  });
  const comm = new StreamCommunicator(rank, descriptor.worldSize, descriptor.kind, channel, port1, worker);
  try {
    await comm.ready;
  } catch (e) {
    await comm.close();
    throw e;
  }
  return comm;
}
