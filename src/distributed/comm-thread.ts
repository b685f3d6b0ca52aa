// Entry point of a rank's communication thread (its communication stream). It receives ops from the
// compute thread, runs them in issue order on the group's transport, and reports each completion in the
// shared channel (for synchronous polling) and by a message (to wake the compute thread's event loop).
// The shared-memory transport blocks this thread between Atomics waits; the TCP transport lives on this
// thread's event loop.

import { readlinkSync } from 'node:fs';
import { type MessagePort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { CollectiveError } from './communicator.js';
import type { GroupDescriptor } from './group.js';
import {
  CH_CLOSE,
  CH_COMPLETED,
  CH_FAULT_MSG_BYTES,
  CH_FAULT_PEER,
  CH_FAULTED,
  CH_SUBMITTED,
  channelMessageArea,
  type FromCommThread,
  type OpMessage,
  type ToCommThread,
  writeSharedText,
} from './op.js';
import { HEARTBEAT_PERIOD_MS } from './shm-layout.js';
import { ShmTransport, type TransportTimeouts } from './shm-transport.js';
import { TcpTransport } from './tcp-transport.js';

/** What the compute thread passes as workerData. */
export interface CommThreadData {
  readonly descriptor: GroupDescriptor;
  readonly rank: number;
  readonly timeouts: TransportTimeouts;
  readonly channel: SharedArrayBuffer;
  readonly port: MessagePort;
}

/** Reports completions and the (single, final) fault of this communicator to the compute thread. */
class Reporter {
  private readonly ctl: Int32Array;
  faulted = false;

  constructor(
    private readonly channel: SharedArrayBuffer,
    private readonly port: MessagePort,
  ) {
    this.ctl = new Int32Array(channel, 0, 16);
  }

  post(message: FromCommThread): void {
    this.port.postMessage(message);
  }

  done(seq: number): void {
    Atomics.store(this.ctl, CH_COMPLETED, (seq + 1) | 0);
    this.post({ type: 'done', seq });
  }

  fault(error: unknown): void {
    if (this.faulted) return;
    this.faulted = true;
    const e =
      error instanceof CollectiveError
        ? error
        : new CollectiveError(`communication thread error: ${error instanceof Error ? error.stack : error}`);
    Atomics.store(this.ctl, CH_FAULT_MSG_BYTES, writeSharedText(channelMessageArea(this.channel), e.message));
    Atomics.store(this.ctl, CH_FAULT_PEER, e.peerRank ?? -1);
    Atomics.store(this.ctl, CH_FAULTED, 1);
    this.post({ type: 'fault', message: e.message, peerRank: e.peerRank });
  }

  get closeRequested(): boolean {
    return Atomics.load(this.ctl, CH_CLOSE) === 1;
  }
}

/** This thread's Linux thread id (from /proc/thread-self), or undefined where there is no /proc. */
function linuxThreadId(): number | undefined {
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    return Number.isInteger(tid) && tid > 0 ? tid : undefined;
  } catch {
    return undefined;
  }
}

/** Shared memory: one blocking loop; ops arrive by receiveMessageOnPort, wake-ups through CH_SUBMITTED. */
function runSharedMemory(data: CommThreadData, reporter: Reporter): void {
  const { descriptor, rank, timeouts, channel, port } = data;
  if (descriptor.kind !== 'shm') return;
  const ctl = new Int32Array(channel, 0, 16);
  const transport = new ShmTransport(descriptor, rank, timeouts, ctl);
  try {
    transport.join();
    reporter.post({ type: 'ready', threadId: linuxThreadId() });
    for (;;) {
      const submitted = Atomics.load(ctl, CH_SUBMITTED);
      for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
        const message = m.message as ToCommThread;
        if (message.type === 'close') break;
        if (reporter.faulted) continue;
        try {
          transport.execute(message);
          reporter.done(message.seq);
        } catch (e) {
          if (!reporter.closeRequested) reporter.fault(e);
        }
      }
      if (reporter.closeRequested) break;
      if (!reporter.faulted) {
        try {
          transport.idleCheck();
        } catch (e) {
          reporter.fault(e);
        }
      }
      Atomics.wait(ctl, CH_SUBMITTED, submitted, HEARTBEAT_PERIOD_MS);
    }
  } catch (e) {
    reporter.fault(e);
  } finally {
    transport.leave();
    reporter.post({ type: 'closed' });
    port.close();
  }
}

/** TCP: ops queue up and run one after another on this thread's event loop, next to the sockets. */
async function runTcp(data: CommThreadData, reporter: Reporter): Promise<void> {
  const { descriptor, rank, timeouts, port } = data;
  if (descriptor.kind !== 'tcp') return;
  const transport = new TcpTransport(descriptor, rank, timeouts);
  const queue: OpMessage[] = [];
  let wake: (() => void) | undefined;
  let closing = false;
  port.on('message', (message: ToCommThread) => {
    if (message.type === 'close') {
      closing = true;
      transport.interrupt();
    } else queue.push(message);
    wake?.();
  });
  transport.onFault((e) => reporter.fault(e));
  try {
    await transport.connect(() => reporter.closeRequested);
    reporter.post({ type: 'ready', threadId: linuxThreadId() });
    while (!closing) {
      const op = queue.shift();
      if (op === undefined) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      if (reporter.faulted) continue;
      try {
        await transport.execute(op);
        reporter.done(op.seq);
      } catch (e) {
        if (!closing) reporter.fault(e);
      }
    }
  } catch (e) {
    reporter.fault(e);
  } finally {
    await transport.close();
    reporter.post({ type: 'closed' });
    port.close();
  }
}

const data = workerData as CommThreadData;
const reporter = new Reporter(data.channel, data.port);
if (data.descriptor.kind === 'shm') runSharedMemory(data, reporter);
else void runTcp(data, reporter);
