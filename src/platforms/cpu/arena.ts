// An arena: one shared WebAssembly memory (at most `limitBytes`, below the 4 GiB of wasm32) with the main
// thread's instance of the kernel module and an allocator for packed weights, long-lived buffers and a
// per-call scratch area. Several arenas hold weights beyond 4 GiB in all.
//
// Growing a shared memory gives `memory.buffer` a new SharedArrayBuffer object over the same bytes (old
// views stay valid), so "does this array live here" is answered by the set of every buffer object the
// memory has had, not by comparing with the current one. V8 may also swap in a new object of the same
// length some time after a grow (when the threads sharing the memory are told of it), so the current
// object is noted whenever this class hands out a view or answers `owns`.

import { ArenaAllocator } from './arena-allocator.js';
import {
  type GemmExports,
  gemmExports,
  instantiateKernels,
  STATIC_RESERVE_BYTES,
  WASM_PAGE_BYTES,
} from './kernel-module.js';

/** Grow by at least this much at a time, so that many small allocations do not grow one page each. */
const MIN_GROW_BYTES = 16 * 1024 * 1024;

/** The arena cannot hold what was asked for. */
export class ArenaFullError extends Error {
  constructor(what: string, bytes: number, arena: Arena) {
    super(
      `arena ${arena.index}: no room for ${what} of ${bytes} bytes (limit ${arena.limitBytes} bytes, ` +
        `${arena.allocator.usedBytes} in use); use a larger arenaBytes or free weights`,
    );
    this.name = 'ArenaFullError';
  }
}

export class Arena {
  readonly memory: WebAssembly.Memory;
  readonly allocator: ArenaAllocator;
  /** The main thread's instance of the kernel module on this memory. */
  readonly instance: WebAssembly.Instance;
  readonly gemm: GemmExports;
  /** Every SharedArrayBuffer object this memory has had (at least one per grow). */
  private readonly buffers = new Set<ArrayBufferLike>();
  /** The buffer object last noted. */
  private lastBuffer: ArrayBufferLike;
  /** The scratch block for activations copied in and results copied out (grows on demand). */
  private scratchStart = -1;
  private scratchBytes = 0;

  constructor(
    /** Position in the kernel set's list of arenas (0: the primary arena). */
    readonly index: number,
    module: WebAssembly.Module,
    /** Most bytes the memory may grow to (a multiple of 64 KiB, at most 4 GiB − 64 KiB). */
    readonly limitBytes: number,
  ) {
    const maxPages = Math.floor(limitBytes / WASM_PAGE_BYTES);
    const initialPages = Math.ceil(STATIC_RESERVE_BYTES / WASM_PAGE_BYTES);
    this.memory = new WebAssembly.Memory({ initial: initialPages, maximum: maxPages, shared: true });
    this.lastBuffer = this.memory.buffer;
    this.buffers.add(this.lastBuffer);
    this.allocator = new ArenaAllocator(STATIC_RESERVE_BYTES, maxPages * WASM_PAGE_BYTES);
    this.instance = instantiateKernels(module, this.memory);
    this.gemm = gemmExports(this.instance);
  }

  /** Current size of the memory in bytes. */
  get byteLength(): number {
    return this.memory.buffer.byteLength;
  }

  /** Whether `a` is a view of this arena's memory (so the kernels can use it without a copy). */
  owns(a: ArrayBufferView): boolean {
    return this.buffers.has(a.buffer) || this.noteBuffer() === a.buffer;
  }

  /**
   * Reserves `bytes` and returns the offset, growing the memory as needed; -1 when it does not fit while
   * leaving `keepFree` bytes for later. The bytes are not cleared.
   */
  tryAlloc(bytes: number, keepFree = 0): number {
    const start = this.allocator.alloc(bytes, keepFree);
    if (start < 0) return -1;
    this.ensureSize(this.allocator.top);
    return start;
  }

  /** Like tryAlloc, but throws ArenaFullError when it does not fit. */
  alloc(bytes: number, what: string): number {
    const start = this.tryAlloc(bytes);
    if (start < 0) throw new ArenaFullError(what, bytes, this);
    return start;
  }

  /** Releases a block from tryAlloc/alloc. */
  release(start: number): void {
    this.allocator.release(start);
  }

  /** A float32 view of `n` elements at byte offset `start`. */
  f32(start: number, n: number): Float32Array {
    return new Float32Array(this.noteBuffer(), start, n);
  }

  /** A uint16 view of `n` elements at byte offset `start`. */
  u16(start: number, n: number): Uint16Array {
    return new Uint16Array(this.noteBuffer(), start, n);
  }

  /** An int32 view of `n` elements at byte offset `start`. */
  i32(start: number, n: number): Int32Array {
    return new Int32Array(this.noteBuffer(), start, n);
  }

  /** An int8 view of `n` elements at byte offset `start`. */
  i8(start: number, n: number): Int8Array {
    return new Int8Array(this.noteBuffer(), start, n);
  }

  /** The memory's current buffer object, added to the set of this memory's buffers if it is new. */
  private noteBuffer(): ArrayBufferLike {
    const b = this.memory.buffer;
    if (b !== this.lastBuffer) {
      this.buffers.add(b);
      this.lastBuffer = b;
    }
    return b;
  }

  /** The offset of a scratch block of at least `bytes`, valid until the next call (not cleared). */
  scratch(bytes: number): number {
    if (bytes <= this.scratchBytes) return this.scratchStart;
    if (this.scratchStart >= 0) this.allocator.release(this.scratchStart);
    this.scratchStart = -1;
    this.scratchBytes = 0;
    // Some headroom, so that a slowly growing batch does not reallocate each step.
    const want = Math.ceil(bytes * 1.25);
    let start = this.tryAlloc(want);
    if (start < 0) start = this.alloc(bytes, 'scratch');
    this.scratchStart = start;
    this.scratchBytes = this.allocator.sizeOf(start)!;
    return start;
  }

  /** Grows the memory to at least `bytes` (keeping the new buffer object in the set). */
  private ensureSize(bytes: number): void {
    const cur = this.memory.buffer.byteLength;
    if (bytes <= cur) return;
    const maxBytes = this.allocator.limit;
    const target = Math.min(maxBytes, Math.max(bytes, cur + MIN_GROW_BYTES, cur + (cur >> 3)));
    const pages = Math.ceil((target - cur) / WASM_PAGE_BYTES);
    this.memory.grow(pages);
    this.noteBuffer();
  }
}
