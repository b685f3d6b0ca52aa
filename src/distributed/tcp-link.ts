// One TCP (or Unix socket) connection to a peer rank, with Duet's length-prefixed frames. Every frame has
// a 24-byte header: magic 'DUET', frame type, op kind, step, payload length, op sequence number, chunk.
// Receives are posted in the order the peer sends (all ranks run the same algorithm), so each arriving
// data frame matches the oldest posted receive; its header is checked against it (a mismatch means the
// ranks issued different collectives). Frames that arrive before their receive is posted are kept, up to
// a bound (past it the link stops reading, so the sender waits on TCP's flow control).
//
// A link is hostile until `authenticate` is called (after the handshake of tcp-transport.ts): until then
// only small control frames (challenge, hello, welcome) are read, and any data frame breaks the link, so a
// stranger cannot make the rank allocate anything. Afterwards a data frame may not exceed the group's
// chunk size, which is the largest frame a rank of the group ever sends.

import type { Socket } from 'node:net';
import { addInto } from './reduce.js';

export const FRAME_HEADER_BYTES = 24;
const MAGIC = 0x54455544; // 'DUET' as little-endian bytes

export const FrameType = {
  data: 1,
  hello: 2,
  welcome: 3,
  abort: 4,
  bye: 5,
  challenge: 6,
} as const;

export interface FrameHeader {
  readonly type: number;
  readonly kind: number;
  readonly step: number;
  readonly length: number;
  readonly seq: number;
  readonly chunk: number;
}

export function encodeHeader(h: FrameHeader): Buffer {
  const b = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt8(h.type, 4);
  b.writeUInt8(h.kind, 5);
  b.writeUInt16LE(h.step, 6);
  b.writeUInt32LE(h.length, 8);
  b.writeInt32LE(h.seq | 0, 12);
  b.writeUInt32LE(h.chunk, 16);
  b.writeUInt32LE(0, 20);
  return b;
}

function decodeHeader(b: Buffer): FrameHeader | null {
  if (b.readUInt32LE(0) !== MAGIC) return null;
  return {
    type: b.readUInt8(4),
    kind: b.readUInt8(5),
    step: b.readUInt16LE(6),
    length: b.readUInt32LE(8),
    seq: b.readInt32LE(12),
    chunk: b.readUInt32LE(16),
  };
}

/** A receive the current collective expects from this peer. */
export interface RecvRequest {
  readonly seq: number;
  readonly kind: number;
  readonly step: number;
  readonly chunk: number;
  /** Where the frame's bytes go; its length is the frame length the peer must send. */
  readonly into: Uint8Array;
  /** When set, the frame is added element-wise into this view (of `into`'s memory) instead of copied. */
  readonly reduce: Float32Array | null;
  readonly done: () => void;
}

export interface LinkEvents {
  /** A non-data frame (hello, welcome, abort, bye) with its payload. */
  control(link: PeerLink, header: FrameHeader, payload: Uint8Array): void;
  /** The stream broke its contract (bad magic, unexpected frame): the link is unusable. */
  protocolError(link: PeerLink, message: string): void;
  /** A data frame does not match the oldest posted receive. */
  mismatch(link: PeerLink, got: FrameHeader, expected: RecvRequest): void;
  /** The connection closed. */
  closed(link: PeerLink, error: Error | undefined): void;
}

interface IncomingFrame {
  readonly header: FrameHeader;
  /** The request it fills directly, or null when buffered. */
  readonly request: RecvRequest | null;
  readonly buffer: Uint8Array;
  filled: number;
}

/** Largest control frame of an authenticated peer (an abort carries an error message). */
const MAX_CONTROL_BYTES = 64 * 1024;
/** Largest control frame before authentication (challenge, hello, welcome are a few hundred bytes). */
const MAX_HANDSHAKE_BYTES = 4096;
/** Early frames kept per link, in chunks: past it the link pauses reading until receives are posted. */
const MAX_EARLY_CHUNKS = 16;

export class PeerLink {
  /** The peer's rank (-1 until its hello arrives). */
  peerRank = -1;
  private readonly pending: RecvRequest[] = [];
  private readonly early: { header: FrameHeader; payload: Uint8Array }[] = [];
  private readonly headerBytes = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerFill = 0;
  private frame: IncomingFrame | null = null;
  private scratch = new Float32Array(0);
  private lastError: Error | undefined;
  private isBroken = false;
  /** Largest data frame accepted: 0 (none) until the peer is authenticated, then the chunk size. */
  private maxDataBytes = 0;
  private earlyBytes = 0;
  private isPaused = false;
  /** Time of the last byte received, and since when a receive has been waiting. */
  lastReceiveAt = performance.now();
  waitingSince = 0;
  /** Writes not yet flushed to the kernel, and the time of the last flush. */
  pendingWrites = 0;
  lastFlushAt = performance.now();

  constructor(
    readonly socket: Socket,
    private readonly events: LinkEvents,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (e) => {
      this.lastError = e;
    });
    socket.on('close', () => events.closed(this, this.lastError));
  }

  get numPending(): number {
    return this.pending.length;
  }

  /** Frames that arrived before a receive was posted for them (still deliverable after the peer left). */
  get numEarly(): number {
    return this.early.length;
  }

  /** Whether the peer proved it belongs to the group (data frames are accepted only then). */
  get isAuthenticated(): boolean {
    return this.maxDataBytes > 0;
  }

  /** The handshake succeeded: accept data frames of up to `maxDataBytes` (the group's chunk size). */
  authenticate(maxDataBytes: number): void {
    this.maxDataBytes = maxDataBytes;
  }

  /** Sends one frame; `flushed` runs once its bytes are handed to the kernel. */
  send(header: Omit<FrameHeader, 'length'>, payload: Uint8Array, flushed?: (e?: Error | null) => void): void {
    const head = encodeHeader({ ...header, length: payload.length });
    this.pendingWrites++;
    const onFlushed = (e?: Error | null) => {
      this.pendingWrites--;
      this.lastFlushAt = performance.now();
      flushed?.(e);
    };
    this.socket.cork();
    if (payload.length === 0) this.socket.write(head, onFlushed);
    else {
      this.socket.write(head);
      this.socket.write(Buffer.from(payload.buffer, payload.byteOffset, payload.length), onFlushed);
    }
    this.socket.uncork();
  }

  /** Sends a control frame with a JSON payload. */
  sendControl(type: number, body: unknown): void {
    const payload = Buffer.from(JSON.stringify(body));
    this.send({ type, kind: 0, step: 0, seq: 0, chunk: 0 }, payload);
  }

  /** Expects the next data frame from this peer. */
  post(request: RecvRequest): void {
    if (this.pending.length === 0) this.waitingSince = performance.now();
    this.pending.push(request);
    this.drainEarly();
  }

  /** Drops posted receives and buffered frames (the group failed). */
  reset(): void {
    this.pending.length = 0;
    this.early.length = 0;
    this.earlyBytes = 0;
    this.resumeReading();
  }

  private onData(chunk: Buffer): void {
    if (this.isBroken) return;
    this.lastReceiveAt = performance.now();
    let at = 0;
    while (at < chunk.length) {
      if (this.frame === null) {
        const take = Math.min(FRAME_HEADER_BYTES - this.headerFill, chunk.length - at);
        chunk.copy(this.headerBytes, this.headerFill, at, at + take);
        this.headerFill += take;
        at += take;
        if (this.headerFill < FRAME_HEADER_BYTES) return;
        this.headerFill = 0;
        if (!this.startFrame()) return;
        if (this.frame!.header.length === 0) this.finishFrame();
        continue;
      }
      const f = this.frame;
      const take = Math.min(f.header.length - f.filled, chunk.length - at);
      f.buffer.set(chunk.subarray(at, at + take), f.filled);
      f.filled += take;
      at += take;
      if (f.filled === f.header.length) this.finishFrame();
    }
  }

  private startFrame(): boolean {
    const header = decodeHeader(this.headerBytes);
    if (header === null) {
      this.broken('the stream does not carry Duet frames (bad magic)');
      return false;
    }
    if (header.type !== FrameType.data) {
      const limit = this.isAuthenticated ? MAX_CONTROL_BYTES : MAX_HANDSHAKE_BYTES;
      if (header.length > limit) {
        this.broken(`control frame of ${header.length} bytes exceeds ${limit}`);
        return false;
      }
      this.frame = { header, request: null, buffer: new Uint8Array(header.length), filled: 0 };
      return true;
    }
    if (!this.isAuthenticated) {
      this.broken('a data frame arrived before the peer authenticated');
      return false;
    }
    if (header.length > this.maxDataBytes) {
      this.broken(`data frame of ${header.length} bytes exceeds the group's chunk size ${this.maxDataBytes}`);
      return false;
    }
    const request = this.early.length === 0 ? this.pending[0] : undefined;
    if (request === undefined) {
      this.frame = { header, request: null, buffer: new Uint8Array(header.length), filled: 0 };
      return true;
    }
    if (!matches(header, request)) {
      this.broken(null);
      this.events.mismatch(this, header, request);
      return false;
    }
    const buffer = request.reduce ? this.scratchBytes(header.length) : request.into;
    this.frame = { header, request, buffer, filled: 0 };
    return true;
  }

  private finishFrame(): void {
    const f = this.frame!;
    this.frame = null;
    if (f.header.type !== FrameType.data) {
      this.events.control(this, f.header, f.buffer);
      return;
    }
    if (f.request === null) {
      this.early.push({ header: f.header, payload: f.buffer });
      this.earlyBytes += f.buffer.length;
      this.drainEarly();
      if (this.earlyBytes > MAX_EARLY_CHUNKS * this.maxDataBytes && !this.isPaused) {
        this.isPaused = true;
        this.socket.pause();
      }
      return;
    }
    this.pending.shift();
    this.deliver(f.request, f.buffer);
  }

  private drainEarly(): void {
    while (this.early.length > 0 && this.pending.length > 0 && !this.isBroken) {
      const frame = this.early[0]!;
      const request = this.pending[0]!;
      if (!matches(frame.header, request)) {
        this.broken(null);
        this.events.mismatch(this, frame.header, request);
        return;
      }
      this.early.shift();
      this.earlyBytes -= frame.payload.length;
      this.pending.shift();
      if (!request.reduce) request.into.set(frame.payload);
      this.deliver(request, frame.payload);
    }
    if (this.earlyBytes <= MAX_EARLY_CHUNKS * this.maxDataBytes) this.resumeReading();
  }

  private resumeReading(): void {
    if (!this.isPaused) return;
    this.isPaused = false;
    this.socket.resume();
  }

  /** Completes a receive whose bytes are in `payload` (already in place unless it is a reduction). */
  private deliver(request: RecvRequest, payload: Uint8Array): void {
    if (request.reduce) {
      const n = payload.length / 4;
      const aligned =
        payload.byteOffset % 4 === 0
          ? new Float32Array(payload.buffer, payload.byteOffset, n)
          : new Float32Array(payload.slice().buffer, 0, n);
      addInto(request.reduce, aligned);
    }
    if (this.pending.length > 0) this.waitingSince = performance.now();
    request.done();
  }

  private scratchBytes(length: number): Uint8Array {
    if (this.scratch.byteLength < length) this.scratch = new Float32Array(Math.ceil(length / 4));
    return new Uint8Array(this.scratch.buffer, 0, length);
  }

  private broken(message: string | null): void {
    this.isBroken = true;
    if (message !== null) this.events.protocolError(this, message);
  }
}

function matches(h: FrameHeader, r: RecvRequest): boolean {
  return (
    h.seq === (r.seq | 0) &&
    h.kind === r.kind &&
    h.step === r.step &&
    h.chunk === r.chunk &&
    h.length === r.into.length
  );
}
