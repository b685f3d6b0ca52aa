// The contract between a rank's compute thread and its communication thread: the op messages posted
// through a MessagePort, the staging layout of each op, and the small shared "channel" block through
// which the communication thread reports completions and faults (readable synchronously, so that
// `handle.isDone` works inside a compute loop that never yields to the event loop).

/** Collective kinds, as numbers (they travel in frames and mailbox headers). */
export const OpKind = {
  allReduce: 1,
  allGather: 2,
  reduceScatter: 3,
  allToAll: 4,
  broadcast: 5,
  barrier: 6,
} as const;
export type OpKind = (typeof OpKind)[keyof typeof OpKind];

export function opName(kind: number): string {
  for (const [name, k] of Object.entries(OpKind)) if (k === kind) return name;
  return `op${kind}`;
}

/**
 * One collective, as the communication thread sees it. Sizes are in 4-byte elements. The staging buffer
 * is a SharedArrayBuffer the compute thread filled before posting and reads back after completion:
 * - allReduce, broadcast: [0, numElements) in place.
 * - allGather: [0, Σcounts); this rank's piece is already at offset Σcounts[0..rank).
 * - reduceScatter: [0, Σcounts) input; on completion slice `rank` holds the sum.
 * - allToAll: [0, Σsend) input, then [Σsend, Σsend + Σrecv) output.
 * - barrier: no staging.
 */
export interface OpMessage {
  readonly type: 'op';
  readonly seq: number;
  readonly kind: OpKind;
  readonly staging: SharedArrayBuffer | null;
  /** allReduce, broadcast: element count. */
  readonly numElements: number;
  /** allGather, reduceScatter: per-rank counts; allToAll: send counts. */
  readonly counts: readonly number[];
  /** allToAll: receive counts. */
  readonly recvCounts: readonly number[];
  /** broadcast: the source rank. */
  readonly root: number;
}

export interface CloseMessage {
  readonly type: 'close';
}

export type ToCommThread = OpMessage | CloseMessage;

/** Messages from the communication thread (they wake the compute thread; the channel holds the truth). */
export type FromCommThread =
  /** `threadId`: the communication thread's Linux thread id (for per-thread CPU in /proc), where known. */
  | { readonly type: 'ready'; readonly threadId?: number }
  | { readonly type: 'done'; readonly seq: number }
  | { readonly type: 'fault'; readonly message: string; readonly peerRank: number | undefined }
  | { readonly type: 'closed' };

/** Channel words (Int32Array over a SharedArrayBuffer owned by the compute thread). */
export const CH_SUBMITTED = 0; // ops posted (mod 2^32); bumped after each postMessage, for blocking loops
export const CH_COMPLETED = 1; // ops completed (mod 2^32): op `seq` is done once this passes seq
export const CH_FAULTED = 2; // 1 once the communicator failed (message below)
export const CH_CLOSE = 3; // 1 when the compute thread asks the communication thread to stop
export const CH_FAULT_PEER = 4; // rank held responsible, or -1
export const CH_FAULT_MSG_BYTES = 5;
const CH_MESSAGE_OFFSET = 64;
const CH_MESSAGE_CAPACITY = 4096;

export function allocateChannel(): SharedArrayBuffer {
  return new SharedArrayBuffer(CH_MESSAGE_OFFSET + CH_MESSAGE_CAPACITY);
}

/** Writes a UTF-8 message (truncated to fit) into a shared area; returns the bytes written. */
export function writeSharedText(target: Uint8Array, text: string): number {
  const bytes = new TextEncoder().encode(text);
  const n = Math.min(bytes.length, target.length);
  target.set(bytes.subarray(0, n));
  return n;
}

/** Reads `length` UTF-8 bytes out of shared memory. */
export function readSharedText(source: Uint8Array, length: number): string {
  return new TextDecoder().decode(source.slice(0, Math.min(length, source.length)));
}

export function channelMessageArea(channel: SharedArrayBuffer): Uint8Array {
  return new Uint8Array(channel, CH_MESSAGE_OFFSET, CH_MESSAGE_CAPACITY);
}

/** True once `counter` (mod 2^32) has passed `value` (mod 2^32). Valid while they are < 2^31 apart. */
export function hasPassed(counter: number, value: number): boolean {
  return ((counter - value) | 0) > 0;
}

/** Exclusive prefix sums: offsets[r] = Σ counts[0..r). */
export function offsetsOf(counts: readonly number[]): number[] {
  const offsets: number[] = [];
  let at = 0;
  for (const c of counts) {
    offsets.push(at);
    at += c;
  }
  return offsets;
}

export function sumOf(counts: readonly number[]): number {
  let total = 0;
  for (const c of counts) total += c;
  return total;
}

/** Splits `n` elements into `parts` near-equal contiguous parts (the first ones one larger). */
export function splitEven(n: number, parts: number): number[] {
  const base = Math.floor(n / parts);
  const extra = n % parts;
  return Array.from({ length: parts }, (_, i) => base + (i < extra ? 1 : 0));
}

/** A 32-bit checksum of sizes (FNV-1a over the numbers), to detect ranks issuing different collectives. */
export function sizeChecksum(values: readonly number[]): number {
  let h = 0x811c9dc5 | 0;
  for (const v of values) {
    h = Math.imul(h ^ (v & 0xffff), 0x01000193);
    h = Math.imul(h ^ ((v / 65536) & 0xffff), 0x01000193);
  }
  return h;
}
