// Binds the WebAssembly operator kernels (src/kernels/wasm/ops: rmsNorm, siluAndMul, softmax, rope,
// mlaAttention, topK, argmax) to typed arrays, with exactly the `Kernels` signatures. An array that lives in the
// module's shared memory is passed by its byte offset, without a copy; any other array is copied into a
// scratch region of that memory (and outputs are copied back).

import { readFile } from 'node:fs/promises';
import type { Kernels } from '../../kernels/kernels.js';
import { enableWasmFeatures, hasRelaxedSimd } from './wasm-features.js';

/** Bytes in a WebAssembly page. */
const PAGE_BYTES = 65536;
/** Largest wasm32 memory, in pages (4 GiB). */
const MAX_PAGES = 65536;
/** Pages a standalone memory starts with; kept for the module's static data, never handed out. */
const STATIC_PAGES = 16;
/** Least number of pages grown at a time for scratch and `allocate`. */
const GROW_PAGES = 16;
/** Alignment of every array placed in the scratch region or allocated. */
const ALIGN = 16;

/** The operator exports of the kernel module (arguments: byte offsets, then sizes). */
interface OpsExports {
  rms_norm(out: number, x: number, weight: number, m: number, d: number, eps: number): void;
  silu_and_mul(out: number, gateUp: number, m: number, d: number): void;
  softmax(x: number, m: number, n: number): void;
  rope(
    x: number,
    positions: number,
    cos: number,
    sin: number,
    m: number,
    numHeads: number,
    headStride: number,
    offset: number,
    rotaryDim: number,
  ): void;
  top_k(outIdx: number, outVal: number, x: number, m: number, n: number, k: number): void;
  argmax(outIdx: number, x: number, m: number, n: number): void;
  mla_attention(
    out: number,
    q: number,
    cache: number,
    blockTable: number,
    positions: number,
    numTokens: number,
    numHeads: number,
    latentDim: number,
    ropeDim: number,
    blockSize: number,
    scale: number,
    scratch: number,
  ): void;
  mla_attention_scratch_bytes(numTokens: number, numHeads: number): number;
}

const OPS_EXPORT_NAMES: readonly (keyof OpsExports)[] = [
  'rms_norm',
  'silu_and_mul',
  'softmax',
  'rope',
  'top_k',
  'argmax',
  'mla_attention',
  'mla_attention_scratch_bytes',
];

/** A kernel was called with sizes or arrays that do not fit together. */
export class KernelArgumentError extends RangeError {
  override name = 'KernelArgumentError';
}

/** The module or its memory cannot serve a request (missing export, scratch region too small, memory full). */
export class WasmOpsError extends Error {
  override name = 'WasmOpsError';
}

export interface WasmOpsOptions {
  /**
   * Byte offset in the memory where this object's region starts (16-byte aligned). The region holds
   * the copies of arrays that live outside the memory and the arrays of `allocate`. Without
   * `scratchBytes`, everything from here to the end of the memory is the region, and the memory is grown
   * when a call needs more. Default: the object grows the memory and uses the new pages past its end.
   */
  readonly scratchBase?: number;
  /** Size of the region in bytes; a call that needs more throws `WasmOpsError`. Only with `scratchBase`. */
  readonly scratchBytes?: number;
  /** Name for logs (default `wasm-simd`). */
  readonly name?: string;
  /**
   * Whether an array is a view of this memory, for an owner that has seen every buffer object the memory
   * has had (a shared memory gets a new one on each grow, and arrays made before this object existed
   * hold older ones). Default: the buffer objects this object has seen itself.
   */
  readonly owns?: (a: ArrayBufferView) => boolean;
}

/** Where a typed-array argument goes: read by the kernel, written, or both. */
type Direction = 'in' | 'out' | 'inout';
type KernelArray = Float32Array | Int32Array;

/** One call's placement of its arguments: byte offsets in the memory, and what to copy back afterwards. */
interface Placement {
  readonly offsets: Map<KernelArray, number>;
  readonly copyBack: { array: KernelArray; offset: number; bytes: number }[];
  /** Byte offset of the kernel's own scratch (above the argument copies). */
  readonly scratch: number;
}

type OpsKernels = Pick<
  Kernels,
  'rmsNorm' | 'siluAndMul' | 'softmax' | 'rope' | 'mlaAttention' | 'topK' | 'argmax'
>;

/**
 * The operator kernels of one instance of the kernel module, over its shared memory. Not safe to call from
 * two threads at once (each thread makes its own, with its own region).
 */
export class WasmOps implements OpsKernels {
  readonly name: string;
  readonly memory: WebAssembly.Memory;
  private readonly ops: OpsExports;
  /** Every SharedArrayBuffer object this memory has handed out (a new one after each grow). */
  private readonly buffers = new Set<ArrayBufferLike>();
  private lastBuffer: ArrayBufferLike | undefined;
  /** Bytes of the memory; refreshed with the buffer. */
  private bytes: Uint8Array;
  /** `allocate` hands out the region from its bottom up to `top`; a call's scratch is [top, regionEnd). */
  private top: number;
  private regionEnd: number;
  /** 'fixed': given base and size; 'open': given base, to the end of memory; 'own': pages this object grew. */
  private readonly regionKind: 'fixed' | 'open' | 'own';
  private readonly ownerOwns: ((a: ArrayBufferView) => boolean) | undefined;
  /** Bytes copied into the memory for arguments that live outside it, and copied back out. */
  readonly copyStats = { bytesIn: 0, bytesOut: 0 };

  /**
   * `exports`: the exports of an instance of dist/kernels/kernels[.relaxed].wasm whose `env.memory`
   * import is `memory` (a shared memory).
   */
  constructor(exports: WebAssembly.Exports, memory: WebAssembly.Memory, options: WasmOpsOptions = {}) {
    for (const name of OPS_EXPORT_NAMES) {
      if (typeof exports[name] !== 'function') {
        throw new WasmOpsError(
          `WasmOps: the kernel module has no function export '${name}'; rebuild it with scripts/build-kernels.mjs`,
        );
      }
    }
    this.ops = exports as unknown as OpsExports;
    this.memory = memory;
    this.name = options.name ?? 'wasm-simd';
    this.ownerOwns = options.owns;
    this.bytes = new Uint8Array(memory.buffer);
    this.refreshBuffer();
    const { scratchBase, scratchBytes } = options;
    if (scratchBase === undefined) {
      if (scratchBytes !== undefined)
        throw new KernelArgumentError('WasmOps: scratchBytes needs scratchBase');
      this.regionKind = 'own';
      this.top = this.regionEnd = 0;
    } else {
      if (!Number.isInteger(scratchBase) || scratchBase < 0 || scratchBase % ALIGN !== 0) {
        throw new KernelArgumentError(
          `WasmOps: scratchBase ${scratchBase} must be a non-negative multiple of ${ALIGN}`,
        );
      }
      this.top = scratchBase;
      if (scratchBytes === undefined) {
        this.regionKind = 'open';
        this.regionEnd = Math.max(scratchBase, memory.buffer.byteLength);
      } else {
        if (!Number.isInteger(scratchBytes) || scratchBytes < 0) {
          throw new KernelArgumentError(
            `WasmOps: scratchBytes ${scratchBytes} must be a non-negative integer`,
          );
        }
        this.regionKind = 'fixed';
        this.regionEnd = scratchBase + scratchBytes;
        if (this.regionEnd > memory.buffer.byteLength) {
          throw new KernelArgumentError(
            `WasmOps: scratch region ends at byte ${this.regionEnd}, past the memory's ${memory.buffer.byteLength} bytes`,
          );
        }
      }
    }
  }

  /**
   * A standalone instance: its own shared memory, the kernel module compiled from dist/kernels (the relaxed
   * SIMD build when the runtime has it, unless `relaxed` says otherwise).
   */
  static async create(options: { relaxed?: boolean } = {}): Promise<WasmOps> {
    enableWasmFeatures();
    const canRelax = hasRelaxedSimd();
    const relaxed = options.relaxed ?? canRelax;
    if (relaxed && !canRelax) {
      throw new WasmOpsError(
        'WasmOps.create: relaxed SIMD was asked for, but this runtime does not validate it',
      );
    }
    const file = relaxed ? 'kernels.relaxed.wasm' : 'kernels.wasm';
    // dist/src/platforms/cpu/wasm-ops.js → dist/kernels/
    const bytes = await readFile(new URL(`../../../kernels/${file}`, import.meta.url));
    const memory = new WebAssembly.Memory({ initial: STATIC_PAGES, maximum: MAX_PAGES, shared: true });
    const module = await WebAssembly.compile(bytes);
    const instance = await WebAssembly.instantiate(module, {
      env: {
        memory,
        abort: () => {
          throw new WasmOpsError('WasmOps: a kernel aborted');
        },
      },
    });
    return new WasmOps(instance.exports, memory, { name: relaxed ? 'wasm-relaxed-simd' : 'wasm-simd' });
  }

  /** A zero-filled float32 array of `n` elements in this memory (kernels read it without copying). Never freed. */
  allocate(n: number): Float32Array {
    checkCount('allocate', 'n', n);
    const bytes = alignUp(n * 4);
    this.reserve(bytes);
    const offset = this.top;
    this.top += bytes;
    this.bytes.fill(0, offset, offset + bytes);
    return new Float32Array(this.memory.buffer, offset, n);
  }

  /** Whether `a` is a view of this memory (then kernels use it in place). */
  isInMemory(a: ArrayBufferView): boolean {
    this.refreshBuffer();
    return this.buffers.has(a.buffer) || (this.ownerOwns?.(a) ?? false);
  }

  /** out[i, :] = x[i, :] / sqrt(mean(x[i, :]²) + eps) · weight. `x`, `out`: [m, d]; `weight`: [d]. */
  rmsNorm(out: Float32Array, x: Float32Array, weight: Float32Array, m: number, d: number, eps: number): void {
    checkCount('rmsNorm', 'm', m);
    checkCount('rmsNorm', 'd', d);
    checkLength('rmsNorm', 'x', x, m * d);
    checkLength('rmsNorm', 'out', out, m * d);
    checkLength('rmsNorm', 'weight', weight, d);
    const p = this.place([
      [out, 'out', m * d],
      [x, 'in', m * d],
      [weight, 'in', d],
    ]);
    this.ops.rms_norm(at(p, out), at(p, x), at(p, weight), m, d, eps);
    this.finish(p);
  }

  /** out[i, j] = silu(gateUp[i, j]) · gateUp[i, d + j]. `gateUp`: [m, 2d]; `out`: [m, d]. */
  siluAndMul(out: Float32Array, gateUp: Float32Array, m: number, d: number): void {
    checkCount('siluAndMul', 'm', m);
    checkCount('siluAndMul', 'd', d);
    checkLength('siluAndMul', 'gateUp', gateUp, m * 2 * d);
    checkLength('siluAndMul', 'out', out, m * d);
    const p = this.place([
      [out, 'out', m * d],
      [gateUp, 'in', m * 2 * d],
    ]);
    this.ops.silu_and_mul(at(p, out), at(p, gateUp), m, d);
    this.finish(p);
  }

  /** Softmax of each row in place. `x`: [m, n]. */
  softmax(x: Float32Array, m: number, n: number): void {
    checkCount('softmax', 'm', m);
    checkCount('softmax', 'n', n);
    checkLength('softmax', 'x', x, m * n);
    const p = this.place([[x, 'inout', m * n]]);
    this.ops.softmax(at(p, x), m, n);
    this.finish(p);
  }

  /**
   * Rotary embedding in place on adjacent pairs of the rope section of each head (see `Kernels.rope`).
   * `x`: [m, numHeads, headStride]; `positions`: [m]; `cos`, `sin`: [maxPositions, rotaryDim / 2].
   */
  rope(
    x: Float32Array,
    positions: Int32Array,
    cos: Float32Array,
    sin: Float32Array,
    m: number,
    numHeads: number,
    headStride: number,
    offset: number,
    rotaryDim: number,
  ): void {
    checkCount('rope', 'm', m);
    checkCount('rope', 'numHeads', numHeads);
    checkCount('rope', 'headStride', headStride);
    checkCount('rope', 'offset', offset);
    checkCount('rope', 'rotaryDim', rotaryDim);
    if (rotaryDim % 2 !== 0 || offset + rotaryDim > headStride) {
      throw new KernelArgumentError(
        `rope: rotaryDim ${rotaryDim} must be even and offset + rotaryDim (${offset + rotaryDim}) at most headStride ${headStride}`,
      );
    }
    checkLength('rope', 'x', x, m * numHeads * headStride);
    checkLength('rope', 'positions', positions, m);
    const half = rotaryDim / 2;
    const numPositions = Math.floor(Math.min(cos.length, sin.length) / Math.max(half, 1));
    for (let i = 0; i < m; i++) {
      const pos = positions[i]!;
      if (half > 0 && (pos < 0 || pos >= numPositions)) {
        throw new KernelArgumentError(
          `rope: positions[${i}] = ${pos}; the cos/sin tables cover positions 0..${numPositions - 1}`,
        );
      }
    }
    const p = this.place([
      [x, 'inout', m * numHeads * headStride],
      [positions, 'in', m],
      [cos, 'in', cos.length],
      [sin, 'in', sin.length],
    ]);
    this.ops.rope(
      at(p, x),
      at(p, positions),
      at(p, cos),
      at(p, sin),
      m,
      numHeads,
      headStride,
      offset,
      rotaryDim,
    );
    this.finish(p);
  }

  /**
   * MLA attention in the absorbed form over the paged latent cache (see `Kernels.mlaAttention`).
   * `out`: [numTokens, numHeads, latentDim]; `q`: [numTokens, numHeads, latentDim + ropeDim];
   * `cache`: [numSlots, latentDim + ropeDim]; `blockTable`: [numBlocks]; `positions`: [numTokens].
   */
  mlaAttention(
    out: Float32Array,
    q: Float32Array,
    cache: Float32Array,
    blockTable: Int32Array,
    positions: Int32Array,
    numTokens: number,
    numHeads: number,
    latentDim: number,
    ropeDim: number,
    blockSize: number,
    scale: number,
  ): void {
    checkCount('mlaAttention', 'numTokens', numTokens);
    checkCount('mlaAttention', 'numHeads', numHeads);
    checkCount('mlaAttention', 'latentDim', latentDim);
    checkCount('mlaAttention', 'ropeDim', ropeDim);
    checkCount('mlaAttention', 'blockSize', blockSize);
    if (blockSize < 1)
      throw new KernelArgumentError(`mlaAttention: blockSize must be at least 1, got ${blockSize}`);
    const entry = latentDim + ropeDim;
    checkLength('mlaAttention', 'q', q, numTokens * numHeads * entry);
    checkLength('mlaAttention', 'out', out, numTokens * numHeads * latentDim);
    checkLength('mlaAttention', 'positions', positions, numTokens);
    if (out === q || out === cache) {
      throw new KernelArgumentError('mlaAttention: out must be a different array from q and cache');
    }
    const numSlots = entry === 0 ? 0 : Math.floor(cache.length / entry);
    let maxPos = -1;
    for (let t = 0; t < numTokens; t++) {
      const pos = positions[t]!;
      if (!(pos >= 0))
        throw new KernelArgumentError(`mlaAttention: positions[${t}] = ${pos}; positions must be >= 0`);
      maxPos = Math.max(maxPos, pos);
    }
    const numBlocks = maxPos < 0 ? 0 : Math.floor(maxPos / blockSize) + 1;
    checkLength('mlaAttention', 'blockTable', blockTable, numBlocks);
    for (let b = 0; b < numBlocks; b++) {
      const block = blockTable[b]!;
      if (block < 0 || (block + 1) * blockSize > numSlots) {
        throw new KernelArgumentError(
          `mlaAttention: blockTable[${b}] = ${block}; the cache holds ${numSlots} slots = blocks 0..${Math.floor(numSlots / blockSize) - 1} of ${blockSize}`,
        );
      }
    }
    const p = this.place(
      [
        [out, 'out', numTokens * numHeads * latentDim],
        [q, 'in', numTokens * numHeads * entry],
        [cache, 'in', numSlots * entry],
        [blockTable, 'in', numBlocks],
        [positions, 'in', numTokens],
      ],
      this.ops.mla_attention_scratch_bytes(numTokens, numHeads),
    );
    this.ops.mla_attention(
      at(p, out),
      at(p, q),
      at(p, cache),
      at(p, blockTable),
      at(p, positions),
      numTokens,
      numHeads,
      latentDim,
      ropeDim,
      blockSize,
      scale,
      p.scratch,
    );
    this.finish(p);
  }

  /**
   * Top-k of each row in descending order of value (ties: lower index first). `x`: [m, n];
   * `outIdx`, `outVal`: [m, k]; k <= n. NaN values are not supported.
   */
  topK(outIdx: Int32Array, outVal: Float32Array, x: Float32Array, m: number, n: number, k: number): void {
    checkCount('topK', 'm', m);
    checkCount('topK', 'n', n);
    checkCount('topK', 'k', k);
    if (k > n) throw new KernelArgumentError(`topK: k = ${k} must be at most n = ${n}`);
    checkLength('topK', 'x', x, m * n);
    checkLength('topK', 'outIdx', outIdx, m * k);
    checkLength('topK', 'outVal', outVal, m * k);
    const p = this.place([
      [outIdx, 'out', m * k],
      [outVal, 'out', m * k],
      [x, 'in', m * n],
    ]);
    this.ops.top_k(at(p, outIdx), at(p, outVal), at(p, x), m, n, k);
    this.finish(p);
  }

  /**
   * Index of the largest value of each row, ties to the lowest index, NaN ignored (0 for a row with
   * nothing above −∞). `outIdx`: [m]; `x`: [m, n].
   */
  argmax(outIdx: Int32Array, x: Float32Array, m: number, n: number): void {
    checkCount('argmax', 'm', m);
    checkCount('argmax', 'n', n);
    checkLength('argmax', 'x', x, m * n);
    checkLength('argmax', 'outIdx', outIdx, m);
    const p = this.place([
      [outIdx, 'out', m],
      [x, 'in', m * n],
    ]);
    this.ops.argmax(at(p, outIdx), at(p, x), m, n);
    this.finish(p);
  }

  /** Records the memory's current buffer object (a new one appears after every grow, by any thread). */
  private refreshBuffer(): void {
    const buffer = this.memory.buffer;
    if (buffer !== this.lastBuffer) {
      this.buffers.add(buffer);
      this.lastBuffer = buffer;
      this.bytes = new Uint8Array(buffer);
    }
  }

  /**
   * Gives each argument a byte offset: its own when it lives in the memory, else a slot of the scratch
   * region above `top` (its first `count` elements copied in unless it is an output); the same array given
   * twice shares one slot. Above those slots lie `kernelScratch` bytes for the kernel itself.
   */
  private place(args: [KernelArray, Direction, number][], kernelScratch = 0): Placement {
    this.refreshBuffer();
    const offsets = new Map<KernelArray, number>();
    const copies: { array: KernelArray; direction: Direction; bytes: number; at: number }[] = [];
    let used = 0;
    for (const [array, direction, count] of args) {
      const prev = copies.find((c) => c.array === array);
      if (prev) {
        if (prev.direction !== direction) prev.direction = 'inout';
        prev.bytes = Math.max(prev.bytes, count * 4);
        continue;
      }
      if (this.buffers.has(array.buffer) || this.ownerOwns?.(array)) {
        offsets.set(array, array.byteOffset);
        continue;
      }
      copies.push({ array, direction, bytes: count * 4, at: 0 });
    }
    for (const c of copies) {
      c.at = used;
      used += alignUp(c.bytes);
    }
    this.reserve(used + kernelScratch);
    const base = this.top;
    const copyBack: Placement['copyBack'] = [];
    for (const c of copies) {
      const offset = base + c.at;
      offsets.set(c.array, offset);
      if (c.direction !== 'out') {
        this.bytes.set(new Uint8Array(c.array.buffer, c.array.byteOffset, c.bytes), offset);
        this.copyStats.bytesIn += c.bytes;
      }
      if (c.direction !== 'in') copyBack.push({ array: c.array, offset, bytes: c.bytes });
    }
    return { offsets, copyBack, scratch: base + used };
  }

  /** Copies the outputs that were placed in scratch back into their arrays. */
  private finish(p: Placement): void {
    this.refreshBuffer();
    for (const c of p.copyBack) {
      new Uint8Array(c.array.buffer, c.array.byteOffset, c.bytes).set(
        this.bytes.subarray(c.offset, c.offset + c.bytes),
      );
      this.copyStats.bytesOut += c.bytes;
    }
  }

  /** Makes [top, top + bytes) part of the region, growing the memory or moving an own region if needed. */
  private reserve(bytes: number): void {
    if (this.regionKind === 'open') this.regionEnd = Math.max(this.regionEnd, this.memory.buffer.byteLength);
    if (this.top + bytes <= this.regionEnd) return;
    if (this.regionKind === 'fixed') {
      throw new WasmOpsError(
        `WasmOps: this call needs ${this.top + bytes - this.regionEnd} more bytes than the scratch region ` +
          `(${this.regionEnd - this.top} free of scratchBytes); give WasmOps a larger scratchBytes`,
      );
    }
    const memEnd = this.memory.buffer.byteLength;
    if (this.regionKind === 'own' && this.regionEnd !== memEnd) {
      // Someone else grew the memory since: start a fresh region at the current end.
      this.top = this.regionEnd = memEnd;
    }
    const needed = this.top + bytes - memEnd;
    if (needed > 0) {
      const pages = Math.max(GROW_PAGES, Math.ceil(needed / PAGE_BYTES));
      try {
        this.memory.grow(pages);
      } catch (e) {
        throw new WasmOpsError(
          `WasmOps: cannot grow the memory by ${pages} pages for ${bytes} bytes: ${(e as Error).message}`,
        );
      }
      this.refreshBuffer();
    }
    this.regionEnd = this.memory.buffer.byteLength;
  }
}

function at(p: Placement, a: KernelArray): number {
  return p.offsets.get(a)!;
}

function alignUp(bytes: number): number {
  return Math.ceil(bytes / ALIGN) * ALIGN;
}

function checkCount(kernel: string, what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
    throw new KernelArgumentError(`${kernel}: ${what} = ${v}; it must be an integer in 0..2^31-1`);
  }
}

function checkLength(kernel: string, what: string, a: ArrayLike<number>, needed: number): void {
  if (a.length < needed) {
    throw new KernelArgumentError(
      `${kernel}: ${what} has ${a.length} elements; the sizes given need at least ${needed}`,
    );
  }
}
