// The compute-thread side of a connected communicator. Each collective copies the caller's input into a
// shared staging buffer, posts the op to the rank's communication thread (the communication stream) and
// returns a handle at once; the handle completes — and copies the result into the caller's buffers —
// when the communication thread reports the op done through the shared channel. Nothing here blocks.

import { type MessagePort, receiveMessageOnPort, type Worker } from 'node:worker_threads';
import {
  CollectiveError,
  type CollectiveHandle,
  type CommBuffer,
  type Communicator,
  InvalidCollectiveError,
} from './communicator.js';
import {
  CH_CLOSE,
  CH_COMPLETED,
  CH_FAULT_MSG_BYTES,
  CH_FAULT_PEER,
  CH_FAULTED,
  CH_SUBMITTED,
  channelMessageArea,
  type FromCommThread,
  hasPassed,
  OpKind,
  type OpMessage,
  offsetsOf,
  opName,
  readSharedText,
  sumOf,
} from './op.js';
import { StagingPool } from './staging-pool.js';

/** A communicator connected to a real group (shared memory or TCP), with its health visible. */
export interface ConnectedCommunicator extends Communicator {
  /** How this rank reaches its peers. */
  readonly transport: 'shm' | 'tcp';
  /** The error that broke the group, once it failed (peer death or stall, mismatch); undefined while healthy. */
  readonly fault: CollectiveError | undefined;
  /**
   * Calls `listener` once when the group fails, even with no collective in flight (e.g. a TCP peer's
   * connection closed), so an engine can report itself unhealthy at once.
   */
  onFault(listener: (error: CollectiveError) => void): void;
  /**
   * The communication thread's Linux thread id once the group formed (its CPU time is in
   * /proc/self/task/ID), or undefined where the platform has no /proc; for measurements only.
   */
  readonly commThreadId: number | undefined;
}

enum State {
  Pending = 0,
  Done = 1,
  Failed = 2,
}

/** A handle whose state is settled by its communicator; `isDone` polls the shared channel. */
class OpHandle implements CollectiveHandle {
  private state = State.Pending;
  private error: CollectiveError | undefined;
  private promise: Promise<void> | undefined;
  private resolve: (() => void) | undefined;
  private reject: ((e: Error) => void) | undefined;

  constructor(private readonly poll: () => void) {}

  get isDone(): boolean {
    if (this.state === State.Pending) this.poll();
    return this.state !== State.Pending;
  }

  wait(): Promise<void> {
    if (this.promise === undefined) {
      if (this.state === State.Done) this.promise = Promise.resolve();
      else if (this.state === State.Failed) this.promise = Promise.reject(this.error);
      else
        this.promise = new Promise<void>((resolve, reject) => {
          this.resolve = resolve;
          this.reject = reject;
        });
    }
    return this.promise;
  }

  settle(error?: CollectiveError): void {
    if (this.state !== State.Pending) return;
    if (error) {
      this.state = State.Failed;
      this.error = error;
      this.reject?.(error);
    } else {
      this.state = State.Done;
      this.resolve?.();
    }
  }
}

interface PendingOp {
  readonly seq: number;
  readonly kind: number;
  readonly staging: SharedArrayBuffer | null;
  /** Copies the result from staging into the caller's buffers. */
  readonly finish: ((staging: SharedArrayBuffer) => void) | null;
  readonly handle: OpHandle;
}

function bytesOf(a: CommBuffer): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function isCommBuffer(a: unknown): a is CommBuffer {
  return a instanceof Float32Array || a instanceof Int32Array;
}

/** The part of a communicator that lives on the rank's compute thread. */
export class StreamCommunicator implements ConnectedCommunicator {
  private nextSeq = 0;
  private readonly pending: PendingOp[] = [];
  private readonly pool = new StagingPool();
  private readonly ctl: Int32Array;
  private readonly listeners: ((e: CollectiveError) => void)[] = [];
  private faultError: CollectiveError | undefined;
  private closing: Promise<void> | undefined;
  private exited = false;
  private readonly exit: Promise<void>;
  private readonly poller = () => this.poll();
  /** Settles when the communication thread reports the group formed (or fails to form). */
  readonly ready: Promise<void>;
  commThreadId: number | undefined;

  constructor(
    readonly rank: number,
    readonly worldSize: number,
    readonly transport: 'shm' | 'tcp',
    private readonly channel: SharedArrayBuffer,
    private readonly port: MessagePort,
    private readonly worker: Worker,
  ) {
    this.ctl = new Int32Array(channel, 0, 16);
    let readyResolve!: () => void;
    let readyReject!: (e: Error) => void;
    this.ready = new Promise<void>((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    const onMessage = (m: FromCommThread) => {
      if (m.type === 'ready') {
        this.commThreadId = m.threadId;
        readyResolve();
      } else if (m.type === 'fault') {
        const error = new CollectiveError(m.message, { peerRank: m.peerRank });
        readyReject(error);
        this.setFault(error);
      } else this.poll();
    };
    port.on('message', onMessage);
    this.exit = new Promise<void>((resolve) => {
      worker.once('exit', (code) => {
        this.exited = true;
        // The thread's last messages (its fault) may still be queued behind the exit event.
        for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) onMessage(m.message);
        const error = new CollectiveError(
          `rank ${rank}: the communication thread exited unexpectedly (exit code ${code})`,
        );
        readyReject(error);
        if (this.closing === undefined) this.setFault(error);
        resolve();
      });
    });
    worker.on('error', (e: Error) => {
      const error = new CollectiveError(`rank ${rank}: the communication thread failed: ${e.message}`);
      readyReject(error);
      this.setFault(error);
    });
    // Keep the process alive only while the group forms or collectives are in flight.
    void this.ready.then(
      () => this.updateRef(),
      () => this.updateRef(),
    );
    worker.unref();
  }

  get fault(): CollectiveError | undefined {
    return this.faultError;
  }

  onFault(listener: (error: CollectiveError) => void): void {
    if (this.faultError) listener(this.faultError);
    else this.listeners.push(listener);
  }

  allReduce(buf: Float32Array): CollectiveHandle {
    if (!(buf instanceof Float32Array))
      throw new InvalidCollectiveError('allReduce sums Float32Array buffers only');
    return this.issue(
      OpKind.allReduce,
      buf.byteLength,
      (s) => new Uint8Array(s, 0, buf.byteLength).set(bytesOf(buf)),
      { numElements: buf.length },
      (s) => bytesOf(buf).set(new Uint8Array(s, 0, buf.byteLength)),
    );
  }

  allGather<T extends CommBuffer>(out: T, input: T, counts: readonly number[]): CollectiveHandle {
    this.checkPair('allGather', out, input);
    this.checkCounts('allGather', counts, 'counts');
    if (input.length !== counts[this.rank])
      throw new InvalidCollectiveError(
        `allGather: input has ${input.length} elements but counts[${this.rank}] is ${counts[this.rank]}`,
      );
    const total = sumOf(counts);
    if (out.length !== total)
      throw new InvalidCollectiveError(
        `allGather: out has ${out.length} elements; Σ counts = ${total} required`,
      );
    const at = offsetsOf(counts)[this.rank]! * 4;
    return this.issue(
      OpKind.allGather,
      total * 4,
      (s) => new Uint8Array(s, at, input.byteLength).set(bytesOf(input)),
      { counts: [...counts] },
      (s) => bytesOf(out).set(new Uint8Array(s, 0, total * 4)),
    );
  }

  reduceScatter(out: Float32Array, input: Float32Array, counts: readonly number[]): CollectiveHandle {
    if (!(out instanceof Float32Array) || !(input instanceof Float32Array))
      throw new InvalidCollectiveError('reduceScatter sums Float32Array buffers only');
    this.checkCounts('reduceScatter', counts, 'counts');
    const total = sumOf(counts);
    if (input.length !== total)
      throw new InvalidCollectiveError(
        `reduceScatter: input has ${input.length} elements; Σ counts = ${total} required`,
      );
    if (out.length !== counts[this.rank])
      throw new InvalidCollectiveError(
        `reduceScatter: out has ${out.length} elements but counts[${this.rank}] is ${counts[this.rank]}`,
      );
    const at = offsetsOf(counts)[this.rank]! * 4;
    return this.issue(
      OpKind.reduceScatter,
      total * 4,
      (s) => new Uint8Array(s, 0, total * 4).set(bytesOf(input)),
      { counts: [...counts] },
      (s) => bytesOf(out).set(new Uint8Array(s, at, out.byteLength)),
    );
  }

  allToAll<T extends CommBuffer>(
    out: T,
    recvCounts: readonly number[],
    input: T,
    sendCounts: readonly number[],
  ): CollectiveHandle {
    this.checkPair('allToAll', out, input);
    this.checkCounts('allToAll', sendCounts, 'sendCounts');
    this.checkCounts('allToAll', recvCounts, 'recvCounts');
    const sendTotal = sumOf(sendCounts);
    const recvTotal = sumOf(recvCounts);
    if (input.length !== sendTotal)
      throw new InvalidCollectiveError(
        `allToAll: input has ${input.length} elements; Σ sendCounts = ${sendTotal} required`,
      );
    if (out.length !== recvTotal)
      throw new InvalidCollectiveError(
        `allToAll: out has ${out.length} elements; Σ recvCounts = ${recvTotal} required`,
      );
    return this.issue(
      OpKind.allToAll,
      (sendTotal + recvTotal) * 4,
      (s) => new Uint8Array(s, 0, input.byteLength).set(bytesOf(input)),
      { counts: [...sendCounts], recvCounts: [...recvCounts] },
      (s) => bytesOf(out).set(new Uint8Array(s, sendTotal * 4, recvTotal * 4)),
    );
  }

  broadcast<T extends CommBuffer>(buf: T, root: number): CollectiveHandle {
    if (!isCommBuffer(buf))
      throw new InvalidCollectiveError('broadcast moves Float32Array or Int32Array buffers');
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize)
      throw new InvalidCollectiveError(
        `broadcast: root ${root} is not a rank of this group (0..${this.worldSize - 1})`,
      );
    const isRoot = root === this.rank;
    return this.issue(
      OpKind.broadcast,
      buf.byteLength,
      (s) => {
        if (isRoot) new Uint8Array(s, 0, buf.byteLength).set(bytesOf(buf));
      },
      { numElements: buf.length, root },
      isRoot ? null : (s) => bytesOf(buf).set(new Uint8Array(s, 0, buf.byteLength)),
    );
  }

  barrier(): CollectiveHandle {
    return this.issue(OpKind.barrier, 0, () => {}, {}, null);
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    for (const op of this.pending.splice(0))
      op.handle.settle(
        new CollectiveError(
          `rank ${this.rank}: communicator closed while ${opName(op.kind)} #${op.seq} was in flight`,
        ),
      );
    if (!this.exited) {
      Atomics.store(this.ctl, CH_CLOSE, 1);
      Atomics.notify(this.ctl, CH_SUBMITTED);
      this.port.postMessage({ type: 'close' });
      this.worker.ref();
      const timer = setTimeout(() => void this.worker.terminate(), 5000);
      await this.exit;
      clearTimeout(timer);
    }
    this.port.close();
    this.pool.clear();
  }

  private issue(
    kind: OpKind,
    stagingBytes: number,
    fill: (staging: SharedArrayBuffer) => void,
    params: Partial<Pick<OpMessage, 'numElements' | 'counts' | 'recvCounts' | 'root'>>,
    finish: ((staging: SharedArrayBuffer) => void) | null,
  ): CollectiveHandle {
    const handle = new OpHandle(this.poller);
    const seq = this.nextSeq++;
    if (this.closing) {
      handle.settle(new CollectiveError(`rank ${this.rank}: ${opName(kind)} on a closed communicator`));
      return handle;
    }
    if (this.faultError) {
      handle.settle(this.faultError);
      return handle;
    }
    const staging = stagingBytes > 0 ? this.pool.acquire(stagingBytes) : null;
    if (staging) fill(staging);
    const message: OpMessage = {
      type: 'op',
      seq,
      kind,
      staging,
      numElements: params.numElements ?? 0,
      counts: params.counts ?? [],
      recvCounts: params.recvCounts ?? [],
      root: params.root ?? 0,
    };
    this.pending.push({ seq, kind, staging, finish, handle });
    this.port.postMessage(message);
    Atomics.add(this.ctl, CH_SUBMITTED, 1);
    Atomics.notify(this.ctl, CH_SUBMITTED);
    this.updateRef();
    return handle;
  }

  /** Completes every op the communication thread finished; fails them all once the group failed. */
  private poll(): void {
    const completed = Atomics.load(this.ctl, CH_COMPLETED);
    while (this.pending.length > 0 && hasPassed(completed, this.pending[0]!.seq | 0)) {
      const op = this.pending.shift()!;
      if (op.staging) {
        op.finish?.(op.staging);
        this.pool.release(op.staging);
      }
      op.handle.settle();
    }
    if (this.pending.length > 0 && Atomics.load(this.ctl, CH_FAULTED) === 1) this.setFault(this.readFault());
    this.updateRef();
  }

  private readFault(): CollectiveError {
    const length = Atomics.load(this.ctl, CH_FAULT_MSG_BYTES);
    const peer = Atomics.load(this.ctl, CH_FAULT_PEER);
    const message = readSharedText(channelMessageArea(this.channel), length);
    return new CollectiveError(message, { peerRank: peer >= 0 ? peer : undefined });
  }

  private setFault(error: CollectiveError): void {
    if (this.faultError === undefined && this.closing === undefined) {
      this.faultError = error;
      for (const listener of this.listeners.splice(0)) listener(error);
    }
    for (const op of this.pending.splice(0)) op.handle.settle(this.faultError);
    this.updateRef();
  }

  private updateRef(): void {
    if (this.pending.length > 0) this.port.ref();
    else this.port.unref();
  }

  private checkPair(name: string, out: CommBuffer, input: CommBuffer): void {
    if (!isCommBuffer(out) || !isCommBuffer(input) || out.constructor !== input.constructor)
      throw new InvalidCollectiveError(
        `${name}: out and input must both be Float32Array or both Int32Array, got ${out?.constructor?.name} and ${input?.constructor?.name}`,
      );
  }

  private checkCounts(name: string, counts: readonly number[], what: string): void {
    if (counts.length !== this.worldSize)
      throw new InvalidCollectiveError(
        `${name}: ${what} has ${counts.length} entries; one per rank (${this.worldSize}) is required`,
      );
    for (const c of counts)
      if (!Number.isInteger(c) || c < 0)
        throw new InvalidCollectiveError(`${name}: ${what} must be non-negative integers, got ${c}`);
  }
}
