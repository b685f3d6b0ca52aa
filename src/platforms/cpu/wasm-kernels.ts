// The CPU platform's kernel set: the AssemblyScript GEMM over packed weights placed in arenas (shared
// memories of up to `arenaBytes` each, so that weights may exceed the 4 GiB of one wasm32 memory), run
// on a pool of worker threads; the other operators through the operator kernels of the same module
// (WasmOps) in the primary arena, where `allocate` puts long-lived buffers such as the KV cache.

import os from 'node:os';
import { checkInt8LinearData } from '../../kernels/int8-quant.js';
import type {
  HeadLinearWeight,
  Int8LinearData,
  Kernels,
  LinearDType,
  LinearWeight,
  RawWeight,
  WeightDType,
} from '../../kernels/kernels.js';
import * as activationOps from '../../kernels/reference/activation-ops.js';
import { Arena, ArenaFullError } from './arena.js';
import { runMhaAttention, runMlaAttentionBatch, type ThreadedKernelContext } from './attention-kernels.js';
import type { CopyStats } from './copy-stats.js';
import { MIN_SECONDS_PER_THREAD, planGemm } from './gemm-plan.js';
import {
  type Int8Dot,
  type Int8Layout,
  int8BlockBytes,
  runInt8Linear,
  writeInt8Block,
} from './int8-linear.js';
import { compileKernelModule, WASM_PAGE_BYTES } from './kernel-module.js';
import { evenRowRanges, type GemmShare, GemmThreadPool } from './thread-pool.js';
import { enableWasmFeatures, hasRelaxedSimd } from './wasm-features.js';
import { WasmOps, WasmOpsError } from './wasm-ops.js';
import { packBf16, packedBytes, packF32 } from './weight-packing.js';

export interface WasmKernelsOptions {
  /** Threads for the GEMM, the calling thread included (default: os.availableParallelism()). */
  numThreads?: number;
  /** Largest size of one arena in bytes (default 3.5 GiB; at most 4 GiB − 64 KiB). */
  arenaBytes?: number;
  /** Use the relaxed-SIMD build (fused multiply-add); default: when the runtime supports it. */
  relaxed?: boolean;
  /** Spin iterations of an idle worker before it sleeps (default 20000, some tens of µs). */
  spin?: number;
  /**
   * Least estimated work (seconds) worth giving a thread; smaller GEMMs use fewer threads. Default
   * 60 µs; 0 splits every GEMM over all threads (tests use it to exercise the split on small shapes).
   */
  minSecondsPerThread?: number;
  /**
   * The int8 GEMM's inner loop: 'int16' (default) or 'relaxed' (the relaxed i8×i7 dot, relaxed build
   * only); both give the same bits (see src/platforms/cpu/int8-linear.ts). Settable later too.
   */
  int8Dot?: Int8Dot;
}

/** A packed weight and where it lives. */
class WasmLinear implements LinearWeight {
  freed = false;
  constructor(
    readonly n: number,
    readonly k: number,
    readonly dtype: LinearDType,
    /** The arena holding the panels. */
    readonly arena: Arena,
    /** Byte offset of the panels in the arena: [ceil(n/8), k, 8] of f32 or bf16. */
    readonly ptr: number,
    readonly bytes: number,
  ) {}
}

/** A stack of per-head packed weights: head h's panels at ptr + h·headBytes. */
class WasmHeadLinear extends WasmLinear implements HeadLinearWeight {
  constructor(
    readonly numHeads: number,
    n: number,
    k: number,
    dtype: WeightDType,
    arena: Arena,
    ptr: number,
    bytes: number,
    /** Bytes of one head's packed [n, k] weight. */
    readonly headBytes: number,
  ) {
    super(n, k, dtype, arena, ptr, bytes);
  }
}

/** An int8 (W8A8) weight: its block holds the int8 panels and the dequantization data (Int8Layout). */
class WasmInt8Linear extends WasmLinear {
  constructor(readonly layout: Int8Layout) {
    super(layout.n, layout.k, 'int8', layout.arena, layout.ptr, layout.bytes);
  }
}

/** Bad options or arguments to the wasm kernel set. */
export class WasmKernelsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WasmKernelsError';
  }
}

const DEFAULT_ARENA_BYTES = 3.5 * 1024 ** 3;
const MAX_ARENA_BYTES = 4 * 1024 ** 3 - WASM_PAGE_BYTES;
/** Rows from which bf16 panels are widened once per block rather than in every row tile. */
const WIDEN_MIN_M = 16;
/** Longest k-block when widening: the per-thread buffer holds WIDEN_MAX_K × 8 f32. */
const WIDEN_MAX_K = 2048;
/** Rough single-thread seconds of siluAndMul per output element (for choosing its threads). */
const SILU_SECONDS_PER_ELEMENT = 2e-9;
/** First size of the operator kernels' scratch region (grows on demand). */
const OPS_REGION_BYTES = 4 * 1024 * 1024;
/** Row-wise operators copy at most this many bytes per call through scratch (larger calls go by chunks). */
const OPS_CHUNK_BYTES = 8 * 1024 * 1024;
/** Room the primary arena keeps free of weights: operator scratch growth and later `allocate`s. */
const PRIMARY_RESERVE_BYTES = 512 * 1024 * 1024;

/** Creates the CPU kernel set: compiles the kernel module, starts the thread pool and the primary arena. */
export async function createWasmKernels(opts: WasmKernelsOptions = {}): Promise<WasmKernels> {
  enableWasmFeatures();
  const canRelax = hasRelaxedSimd();
  const relaxed = opts.relaxed ?? canRelax;
  if (relaxed && !canRelax) {
    throw new WasmKernelsError(
      'createWasmKernels: relaxed SIMD was asked for, but this runtime does not support it',
    );
  }
  const numThreads = opts.numThreads ?? os.availableParallelism();
  if (!Number.isInteger(numThreads) || numThreads < 1) {
    throw new WasmKernelsError(`createWasmKernels: numThreads = ${numThreads}; it must be an integer >= 1`);
  }
  const arenaBytes = opts.arenaBytes ?? DEFAULT_ARENA_BYTES;
  if (!(arenaBytes >= 2 * 1024 * 1024 && arenaBytes <= MAX_ARENA_BYTES)) {
    throw new WasmKernelsError(
      `createWasmKernels: arenaBytes = ${arenaBytes}; allowed: 2 MiB .. 4 GiB − 64 KiB`,
    );
  }
  const module = compileKernelModule(relaxed);
  const pool = await GemmThreadPool.create(module, { numThreads, spin: opts.spin ?? 20000 });
  const limit = Math.floor(arenaBytes / WASM_PAGE_BYTES) * WASM_PAGE_BYTES;
  const kernels = new WasmKernels(
    module,
    pool,
    relaxed,
    limit,
    opts.minSecondsPerThread ?? MIN_SECONDS_PER_THREAD,
  );
  if (opts.int8Dot !== undefined) kernels.int8Dot = opts.int8Dot;
  return kernels;
}

export class WasmKernels implements Kernels {
  readonly name: string;
  private readonly arenas: Arena[] = [];
  /** The operator kernels, created on first use over a region of the primary arena. */
  private ops: WasmOps | undefined;
  private opsRegion = -1;
  private opsRegionBytes: number;
  private disposed = false;
  private threadsInUse: number;
  private int8DotChoice: Int8Dot = 'int16';
  private readonly copies: CopyStats = { bytesIn: 0, bytesOut: 0 };
  /** Copies of operator kernels whose WasmOps objects were replaced (a larger scratch region). */
  private readonly retiredOpsCopies: CopyStats = { bytesIn: 0, bytesOut: 0 };
  /** Per arena: the start of its per-thread bf16 widening buffers (allocated on first use). */
  private readonly widenBufs = new Map<Arena, number>();

  /** Use createWasmKernels. */
  constructor(
    private readonly module: WebAssembly.Module,
    private readonly pool: GemmThreadPool,
    readonly relaxed: boolean,
    /** Largest size of one arena. */
    readonly arenaBytes: number,
    private readonly minSecondsPerThread: number,
  ) {
    this.name = `${relaxed ? 'wasm-relaxed-simd' : 'wasm-simd'} x${pool.numThreads}`;
    this.threadsInUse = pool.numThreads;
    this.addArena();
    this.opsRegionBytes = Math.min(OPS_REGION_BYTES, Math.floor(arenaBytes / 8));
  }

  /** Threads used by the GEMM, the calling thread included. */
  get numThreads(): number {
    return this.pool.numThreads;
  }

  /**
   * Threads that `linear` spreads over (1..numThreads; default numThreads): fewer leave cores to other
   * work, and the benchmark compares thread counts with one set of prepared weights.
   */
  get activeThreads(): number {
    return this.threadsInUse;
  }

  set activeThreads(t: number) {
    if (!Number.isInteger(t) || t < 1 || t > this.pool.numThreads) {
      throw new WasmKernelsError(`activeThreads = ${t}; allowed: 1..${this.pool.numThreads}`);
    }
    this.threadsInUse = t;
  }

  /** The int8 GEMM's inner loop (see WasmKernelsOptions.int8Dot). */
  get int8Dot(): Int8Dot {
    return this.int8DotChoice;
  }

  set int8Dot(d: Int8Dot) {
    if (d !== 'int16' && !(d === 'relaxed' && this.relaxed)) {
      throw new WasmKernelsError(
        `int8Dot = '${d}'; allowed: 'int16'${this.relaxed ? ", 'relaxed'" : " ('relaxed' needs the relaxed-SIMD build)"}`,
      );
    }
    this.int8DotChoice = d;
  }

  /** Bytes `linear` and the operator kernels have copied in and out so far (a snapshot). */
  get copyStats(): CopyStats {
    return {
      bytesIn: this.copies.bytesIn + this.opsCopies.bytesIn,
      bytesOut: this.copies.bytesOut + this.opsCopies.bytesOut,
    };
  }

  private get opsCopies(): CopyStats {
    const live = this.ops?.copyStats ?? { bytesIn: 0, bytesOut: 0 };
    return {
      bytesIn: this.retiredOpsCopies.bytesIn + live.bytesIn,
      bytesOut: this.retiredOpsCopies.bytesOut + live.bytesOut,
    };
  }

  /** Whether `a` lives in arena `arena` (default: the primary one), so that kernels use it in place. */
  isInArena(a: ArrayBufferView, arena = 0): boolean {
    return this.arenas[arena]?.owns(a) ?? false;
  }

  /** Number of arenas (memories) in use. */
  get numArenas(): number {
    return this.arenas.length;
  }

  /** Which arena a prepared weight lives in (0: the primary arena). */
  arenaOf(w: LinearWeight): number {
    return this.own(w).arena.index;
  }

  /** The primary arena's memory, where `allocate` places its buffers. */
  get primaryMemory(): WebAssembly.Memory {
    return this.arenas[0]!.memory;
  }

  prepareLinear(raw: RawWeight, n: number, k: number, dtype: WeightDType): LinearWeight {
    this.checkLive();
    if (!Number.isInteger(n) || !Number.isInteger(k) || n < 1 || k < 1) {
      throw new WasmKernelsError(`prepareLinear: n = ${n}, k = ${k}; both must be integers >= 1`);
    }
    if (raw.data.length !== n * k) {
      throw new WasmKernelsError(
        `prepareLinear: weight has ${raw.data.length} elements, expected n·k = ${n * k}`,
      );
    }
    if (dtype !== 'f32' && dtype !== 'bf16') {
      throw new WasmKernelsError(`prepareLinear: dtype '${dtype}'; allowed: 'f32', 'bf16'`);
    }
    const bytes = packedBytes(n, k, dtype);
    const { arena, ptr } = this.placeWeight(bytes);
    if (dtype === 'f32') packF32(new Uint32Array(arena.memory.buffer, ptr, bytes / 4), raw, n, k);
    else packBf16(arena.u16(ptr, bytes / 2), raw, n, k);
    return new WasmLinear(n, k, dtype, arena, ptr, bytes);
  }

  prepareHeadLinear(
    raw: RawWeight,
    numHeads: number,
    n: number,
    k: number,
    dtype: WeightDType,
  ): HeadLinearWeight {
    this.checkLive();
    for (const [name, v] of [
      ['numHeads', numHeads],
      ['n', n],
      ['k', k],
    ] as const) {
      if (!Number.isInteger(v) || v < 1) {
        throw new WasmKernelsError(`prepareHeadLinear: ${name} = ${v}; it must be an integer >= 1`);
      }
    }
    if (raw.data.length !== numHeads * n * k) {
      throw new WasmKernelsError(
        `prepareHeadLinear: weight has ${raw.data.length} elements, expected numHeads·n·k = ${numHeads * n * k}`,
      );
    }
    if (dtype !== 'f32' && dtype !== 'bf16') {
      throw new WasmKernelsError(`prepareHeadLinear: dtype '${dtype}'; allowed: 'f32', 'bf16'`);
    }
    const headBytes = packedBytes(n, k, dtype);
    const bytes = numHeads * headBytes;
    const { arena, ptr } = this.placeWeight(bytes);
    for (let h = 0; h < numHeads; h++) {
      const at = ptr + h * headBytes;
      const part: RawWeight =
        raw.dtype === 'f32'
          ? { dtype: 'f32', data: raw.data.subarray(h * n * k, (h + 1) * n * k) }
          : { dtype: 'bf16', data: raw.data.subarray(h * n * k, (h + 1) * n * k) };
      if (dtype === 'f32') packF32(new Uint32Array(arena.memory.buffer, at, headBytes / 4), part, n, k);
      else packBf16(arena.u16(at, headBytes / 2), part, n, k);
    }
    return new WasmHeadLinear(numHeads, n, k, dtype, arena, ptr, bytes, headBytes);
  }

  prepareInt8Linear(weight: Int8LinearData, n: number, k: number): LinearWeight {
    this.checkLive();
    checkInt8LinearData('prepareInt8Linear', weight, n, k);
    const bytes = int8BlockBytes(n, k);
    const { arena, ptr } = this.placeWeight(bytes);
    return new WasmInt8Linear(writeInt8Block(arena, ptr, weight, n, k));
  }

  freeLinear(w: LinearWeight): void {
    const lw = this.own(w);
    if (lw.freed) return;
    lw.freed = true;
    lw.arena.release(lw.ptr);
  }

  allocate(n: number): Float32Array {
    this.checkLive();
    if (!Number.isInteger(n) || n < 0)
      throw new WasmKernelsError(`allocate: n = ${n}; it must be an integer >= 0`);
    const primary = this.arenas[0]!;
    const ptr = primary.alloc(n * 4, 'allocate');
    const a = primary.f32(ptr, n);
    a.fill(0);
    return a;
  }

  free(a: Float32Array): void {
    this.checkLive();
    const primary = this.arenas[0]!;
    if (!primary.owns(a) || primary.allocator.sizeOf(a.byteOffset) === undefined) {
      throw new WasmKernelsError('free: the array was not handed out by allocate (or was freed already)');
    }
    primary.release(a.byteOffset);
  }

  /** Step activations are ordinary arrays: the operators copy them in (small ones live in `Scratch`). */
  allocateActivations(n: number): Float32Array {
    return new Float32Array(n);
  }

  allocateIndices(n: number): Int32Array {
    return new Int32Array(n);
  }

  // Memory-bound moves and element-wise steps between the GEMMs: the TypeScript twins run here as they
  // are (V8 compiles them to scalar loops that keep up with memory at these sizes).
  readonly add = activationOps.add;
  readonly sigmoid = activationOps.sigmoid;
  readonly copyRows = activationOps.copyRows;
  readonly weightedScatterAdd = activationOps.weightedScatterAdd;
  readonly embedding = activationOps.embedding;
  // Its selections run on this kernel set's own topK.
  readonly groupedTopK = activationOps.groupedTopK;

  linear(out: Float32Array, x: Float32Array, w: LinearWeight, m: number): void {
    this.checkLive();
    const lw = this.own(w);
    if (lw.freed) throw new WasmKernelsError('linear: the weight was freed');
    if (lw instanceof WasmHeadLinear)
      throw new WasmKernelsError('linear: a per-head weight needs headLinear');
    if (lw instanceof WasmInt8Linear) {
      runInt8Linear(
        {
          pool: this.pool,
          copies: this.copies,
          numThreads: this.threadsInUse,
          minSecondsPerThread: this.minSecondsPerThread,
          int8Dot: this.int8DotChoice,
        },
        out,
        x,
        lw.layout,
        m,
      );
      return;
    }
    const { n, k, arena } = lw;
    if (!Number.isInteger(m) || m < 0)
      throw new WasmKernelsError(`linear: m = ${m}; it must be an integer >= 0`);
    if (x.length < m * k)
      throw new WasmKernelsError(`linear: x has ${x.length} elements; [m, k] needs ${m * k}`);
    if (out.length < m * n)
      throw new WasmKernelsError(`linear: out has ${out.length} elements; [m, n] needs ${m * n}`);
    if (m === 0) return;

    // Scratch: [x copy][packed x][out], each 64-byte aligned; only the parts needed.
    const xIn = arena.owns(x);
    const outIn = arena.owns(out);
    const xBytes = align64(m * k * 4);
    const outBytes = align64(m * n * 4);
    const needPack = m > 1;
    const scratchBytes = (xIn ? 0 : xBytes) + (needPack ? xBytes : 0) + (outIn ? 0 : outBytes);
    let s = scratchBytes > 0 ? arena.scratch(scratchBytes) : 0;
    let xPtr = x.byteOffset;
    if (!xIn) {
      xPtr = s;
      arena.f32(xPtr, m * k).set(x.subarray(0, m * k));
      this.copies.bytesIn += m * k * 4;
      s += xBytes;
    }
    let xp = xPtr;
    if (needPack) {
      xp = s;
      arena.gemm.gemmPackX(xp, xPtr, m, k, k * 4);
      s += xBytes;
    }
    const outPtr = outIn ? out.byteOffset : s;

    const plan = planGemm(m, n, k, lw.bytes, this.threadsInUse, this.minSecondsPerThread);
    const bf16 = lw.dtype === 'bf16' ? 1 : 0;
    // Many row tiles per panel: widen each bf16 panel block to f32 once, in a per-thread buffer.
    const widen = bf16 === 1 && m >= WIDEN_MIN_M;
    const kc = widen ? Math.min(plan.kc, WIDEN_MAX_K) : plan.kc;
    const bufs = widen ? this.widenBuffers(arena) : -1;
    const shares: GemmShare[] = plan.parts.map((p, t) => ({
      out: outPtr,
      xp,
      w: lw.ptr,
      m,
      n,
      k,
      bf16,
      p0: p.p0,
      p1: p.p1,
      r0: p.r0,
      r1: p.r1,
      kc,
      buf: widen ? bufs + t * WIDEN_MAX_K * 32 : 0,
    }));
    const g = arena.gemm;
    const runShare = (t: GemmShare): void =>
      g.gemm(t.out, t.xp, t.w, t.m, t.n, t.k, t.bf16, t.p0, t.p1, t.r0, t.r1, t.kc, t.buf);
    if (shares.length === 1) runShare(shares[0]!);
    else this.pool.runGemm(arena.index, shares, runShare);
    if (!outIn) {
      out.set(arena.f32(outPtr, m * n));
      this.copies.bytesOut += m * n * 4;
    }
  }

  headLinear(
    out: Float32Array,
    outHeadStride: number,
    outOffset: number,
    x: Float32Array,
    xHeadStride: number,
    xOffset: number,
    w: HeadLinearWeight,
    m: number,
  ): void {
    this.checkLive();
    const lw = this.own(w);
    if (!(lw instanceof WasmHeadLinear)) {
      throw new WasmKernelsError('headLinear: the weight was not prepared by prepareHeadLinear');
    }
    if (lw.freed) throw new WasmKernelsError('headLinear: the weight was freed');
    const { numHeads: H, n, k, arena } = lw;
    for (const [name, v] of [
      ['m', m],
      ['outHeadStride', outHeadStride],
      ['outOffset', outOffset],
      ['xHeadStride', xHeadStride],
      ['xOffset', xOffset],
    ] as const) {
      if (!Number.isInteger(v) || v < 0) {
        throw new WasmKernelsError(`headLinear: ${name} = ${v}; it must be an integer >= 0`);
      }
    }
    if (xOffset + k > xHeadStride || outOffset + n > outHeadStride) {
      throw new WasmKernelsError(
        `headLinear: columns [${xOffset}, ${xOffset + k}) of x's head stride ${xHeadStride} and ` +
          `[${outOffset}, ${outOffset + n}) of out's head stride ${outHeadStride}; both must fit in the stride`,
      );
    }
    const xLen = m * H * xHeadStride;
    const outLen = m * H * outHeadStride;
    if (x.length < xLen) throw new WasmKernelsError(`headLinear: x has ${x.length} elements; needs ${xLen}`);
    if (out.length < outLen) {
      throw new WasmKernelsError(`headLinear: out has ${out.length} elements; needs ${outLen}`);
    }
    if (m === 0) return;

    const threads = this.threadsFor(Math.max((2 * m * n * k * H) / 30e9, lw.bytes / 10e9), H);
    // Scratch: [x copy][out copy][packed x per thread], each 64-byte aligned; only the parts needed.
    const xIn = arena.owns(x);
    const outIn = arena.owns(out);
    const xpBytes = m > 1 ? align64(m * k * 4) : 0;
    const xBytes = xIn ? 0 : align64(xLen * 4);
    const outBytes = outIn ? 0 : align64(outLen * 4);
    let s = arena.scratch(Math.max(64, xBytes + outBytes + threads * xpBytes));
    let xPtr = x.byteOffset;
    if (!xIn) {
      xPtr = s;
      arena.f32(xPtr, xLen).set(x.subarray(0, xLen));
      this.copies.bytesIn += xLen * 4;
      s += xBytes;
    }
    let outPtr = out.byteOffset;
    if (!outIn) {
      // Copied in too: the columns outside each head's output keep their values.
      outPtr = s;
      arena.f32(outPtr, outLen).set(out.subarray(0, outLen));
      this.copies.bytesIn += outLen * 4;
      s += outBytes;
    }
    const bf16 = lw.dtype === 'bf16' ? 1 : 0;
    const bufs = bf16 === 1 && m >= WIDEN_MIN_M ? this.widenBuffers(arena) : -1;
    const shares = Array.from({ length: threads }, (_, t) => [
      outPtr + outOffset * 4,
      H * outHeadStride * 4,
      outHeadStride * 4,
      xPtr + xOffset * 4,
      H * xHeadStride * 4,
      xHeadStride * 4,
      s + t * xpBytes,
      lw.ptr,
      lw.headBytes,
      m,
      n,
      k,
      bf16,
      Math.floor((t * H) / threads),
      Math.floor(((t + 1) * H) / threads),
      bufs < 0 ? 0 : bufs + t * WIDEN_MAX_K * 32,
    ]);
    const g = arena.gemm;
    const runShare = (args: readonly number[]): void => g.gemm_heads(...args);
    if (threads === 1) runShare(shares[0]!);
    else this.pool.runKernel(arena.index, 'gemm_heads', shares, runShare);
    if (!outIn) {
      out.set(arena.f32(outPtr, outLen));
      this.copies.bytesOut += outLen * 4;
    }
  }

  mlaAttentionBatch(
    out: Float32Array,
    q: Float32Array,
    cache: Float32Array,
    blockTables: Int32Array,
    maxBlocksPerSeq: number,
    seqStarts: Int32Array,
    positions: Int32Array,
    numSeqs: number,
    numHeads: number,
    latentDim: number,
    ropeDim: number,
    blockSize: number,
    scale: number,
  ): void {
    this.checkLive();
    runMlaAttentionBatch(this.threaded(), {
      out,
      q,
      cache,
      blockTables,
      maxBlocksPerSeq,
      seqStarts,
      positions,
      numSeqs,
      numHeads,
      latentDim,
      ropeDim,
      blockSize,
      scale,
    });
  }

  mhaAttention(
    out: Float32Array,
    q: Float32Array,
    kv: Float32Array,
    kRope: Float32Array,
    positions: Int32Array,
    numTokens: number,
    numCtx: number,
    numHeads: number,
    nopeDim: number,
    ropeDim: number,
    vDim: number,
    scale: number,
  ): void {
    this.checkLive();
    runMhaAttention(this.threaded(), {
      out,
      q,
      kv,
      kRope,
      positions,
      numTokens,
      numCtx,
      numHeads,
      nopeDim,
      ropeDim,
      vDim,
      scale,
    });
  }

  rmsNorm(out: Float32Array, x: Float32Array, weight: Float32Array, m: number, d: number, eps: number): void {
    this.byRows(m, this.outsideBytes([out, d], [x, d]), (r0, r1) =>
      this.withOps((o) =>
        o.rmsNorm(out.subarray(r0 * d, r1 * d), x.subarray(r0 * d, r1 * d), weight, r1 - r0, d, eps),
      ),
    );
  }

  siluAndMul(out: Float32Array, gateUp: Float32Array, m: number, d: number): void {
    if (this.trySiluAndMulThreaded(out, gateUp, m, d)) return;
    this.byRows(m, this.outsideBytes([out, d], [gateUp, 2 * d]), (r0, r1) =>
      this.withOps((o) =>
        o.siluAndMul(out.subarray(r0 * d, r1 * d), gateUp.subarray(r0 * 2 * d, r1 * 2 * d), r1 - r0, d),
      ),
    );
  }

  /**
   * siluAndMul split by rows over the threads, when both arrays live in the primary memory (nothing to
   * copy) and the work is worth a wake-up (a prefill's MLP, a large batch's experts); false otherwise.
   */
  private trySiluAndMulThreaded(out: Float32Array, gateUp: Float32Array, m: number, d: number): boolean {
    const primary = this.arenas[0]!;
    if (!Number.isInteger(m) || !Number.isInteger(d) || m < 2 || d < 1) return false;
    if (!primary.owns(out) || !primary.owns(gateUp)) return false;
    if (out.length < m * d || gateUp.length < 2 * m * d) return false;
    const threads = this.threadsFor(m * d * SILU_SECONDS_PER_ELEMENT, m);
    if (threads < 2) return false;
    this.checkLive();
    const shares = evenRowRanges(m, threads).map(([r0, r1]) => [
      out.byteOffset + r0 * d * 4,
      gateUp.byteOffset + r0 * 2 * d * 4,
      r1 - r0,
      d,
    ]);
    const g = primary.instance.exports as unknown as { silu_and_mul(...args: number[]): void };
    this.pool.runKernel(0, 'silu_and_mul', shares, (args) => g.silu_and_mul(...args));
    return true;
  }

  softmax(x: Float32Array, m: number, n: number): void {
    this.byRows(m, this.outsideBytes([x, n]), (r0, r1) =>
      this.withOps((o) => o.softmax(x.subarray(r0 * n, r1 * n), r1 - r0, n)),
    );
  }

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
    const rowElems = numHeads * headStride;
    this.byRows(m, this.outsideBytes([x, rowElems], [positions, 1]), (r0, r1) =>
      this.withOps((o) =>
        o.rope(
          x.subarray(r0 * rowElems, r1 * rowElems),
          positions.subarray(r0, r1),
          cos,
          sin,
          r1 - r0,
          numHeads,
          headStride,
          offset,
          rotaryDim,
        ),
      ),
    );
  }

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
    this.withOps((o) =>
      o.mlaAttention(
        out,
        q,
        cache,
        blockTable,
        positions,
        numTokens,
        numHeads,
        latentDim,
        ropeDim,
        blockSize,
        scale,
      ),
    );
  }

  topK(outIdx: Int32Array, outVal: Float32Array, x: Float32Array, m: number, n: number, k: number): void {
    this.byRows(m, this.outsideBytes([outIdx, k], [outVal, k], [x, n]), (r0, r1) =>
      this.withOps((o) =>
        o.topK(
          outIdx.subarray(r0 * k, r1 * k),
          outVal.subarray(r0 * k, r1 * k),
          x.subarray(r0 * n, r1 * n),
          r1 - r0,
          n,
          k,
        ),
      ),
    );
  }

  argmax(outIdx: Int32Array, x: Float32Array, m: number, n: number): void {
    this.byRows(m, this.outsideBytes([outIdx, 1], [x, n]), (r0, r1) =>
      this.withOps((o) => o.argmax(outIdx.subarray(r0, r1), x.subarray(r0 * n, r1 * n), r1 - r0, n)),
    );
  }

  /**
   * Runs a row-wise operator over rows [0, m) in chunks small enough that the arrays it copies (`rowBytes`
   * per row) take at most OPS_CHUNK_BYTES of scratch: a large prefill's activations then never need a
   * scratch region larger than that.
   */
  private byRows(m: number, rowBytes: number, run: (r0: number, r1: number) => void): void {
    if (!(m * rowBytes > OPS_CHUNK_BYTES) || !Number.isInteger(m)) {
      run(0, m);
      return;
    }
    const rows = Math.max(1, Math.floor(OPS_CHUNK_BYTES / rowBytes));
    for (let r0 = 0; r0 < m; r0 += rows) run(r0, Math.min(m, r0 + rows));
  }

  /** Bytes per row of the arrays (each with its elements per row) that live outside the primary memory. */
  private outsideBytes(...arrays: [ArrayBufferView, number][]): number {
    const primary = this.arenas[0];
    let bytes = 0;
    for (const [a, perRow] of arrays) if (!primary?.owns(a)) bytes += perRow * 4;
    return bytes;
  }

  /**
   * For the benchmark: reads `bytesPerThread` bytes on each of `numThreads` threads at once (each its
   * own range of a buffer in the primary arena, as 4 interleaved streams) and returns the seconds it
   * took. Read bandwidth = numThreads · bytesPerThread / seconds.
   */
  timeStreamRead(bytesPerThread: number, numThreads: number): number {
    this.checkLive();
    const threads = Math.min(numThreads, this.pool.numThreads);
    const per = Math.ceil(bytesPerThread / 256) * 256;
    const primary = this.arenas[0]!;
    const start = primary.alloc(per * threads, 'stream buffer');
    try {
      new Uint8Array(primary.memory.buffer, start, per * threads).fill(1);
      const starts = Array.from({ length: threads }, (_, t) => start + t * per);
      const bytes = starts.map(() => per);
      const t0 = performance.now();
      if (threads === 1) primary.gemm.streamSum(start, per);
      else this.pool.runStream(0, starts, bytes, () => primary.gemm.streamSum(start, per));
      return (performance.now() - t0) / 1e3;
    } finally {
      primary.release(start);
    }
  }

  /**
   * For the benchmark: runs the register-only int8 dot loop (src/kernels/wasm/int8/peak.ts) of `dot`
   * for `iters` iterations on each of `numThreads` threads at once and returns the seconds it took.
   * Each iteration is 8 dot steps: 8·16 multiply-adds for 'relaxed', 8·8 for 'int16'.
   */
  timeInt8DotPeak(dot: Int8Dot, iters: number, numThreads: number): number {
    this.checkLive();
    const threads = Math.min(numThreads, this.pool.numThreads);
    const primary = this.arenas[0]!;
    const g = primary.instance.exports as unknown as {
      i8_dot_peak(iters: number, seed: number, relaxed: number): number;
    };
    if (dot === 'relaxed' && !this.relaxed)
      throw new WasmKernelsError("timeInt8DotPeak: 'relaxed' needs the relaxed-SIMD build");
    const r = dot === 'relaxed' ? 1 : 0;
    const shares = Array.from({ length: threads }, (_, t) => [iters, t + 3, r]);
    const t0 = performance.now();
    if (threads === 1) g.i8_dot_peak(iters, 3, r);
    else
      this.pool.runKernel(
        0,
        'i8_dot_peak',
        shares,
        (a) => g.i8_dot_peak(a[0]!, a[1]!, a[2]!),
        'every worker',
      );
    return (performance.now() - t0) / 1e3;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    await this.pool.dispose();
    this.arenas.length = 0;
  }

  /** What the threaded attention kernels need of this kernel set. */
  private threaded(): ThreadedKernelContext {
    return {
      primary: this.arenas[0]!,
      pool: this.pool,
      copies: this.copies,
      threadsFor: (seconds, units) => this.threadsFor(seconds, units),
    };
  }

  /**
   * Threads worth using for a kernel of about `seconds` of single-thread work split into `units` parts:
   * at least `minSecondsPerThread` each, at most the active threads and the parts.
   */
  private threadsFor(seconds: number, units: number): number {
    const worth = this.minSecondsPerThread > 0 ? Math.floor(seconds / this.minSecondsPerThread) : units;
    return Math.max(1, Math.min(this.threadsInUse, units, worth));
  }

  /** The start of `arena`'s widening buffers, one of WIDEN_MAX_K·32 bytes per thread. */
  private widenBuffers(arena: Arena): number {
    let start = this.widenBufs.get(arena);
    if (start === undefined) {
      start = arena.alloc(this.pool.numThreads * WIDEN_MAX_K * 32, 'bf16 widening buffers');
      this.widenBufs.set(arena, start);
    }
    return start;
  }

  /**
   * Places `bytes` of panels in the first arena with room (keeping some for scratch), or a new arena. The
   * primary arena keeps a larger reserve: the operator scratch and its growth, and buffers that
   * `allocate` hands out later, live there.
   */
  private placeWeight(bytes: number): { arena: Arena; ptr: number } {
    const keepFree = Math.min(64 * 1024 * 1024, Math.floor(this.arenaBytes / 8));
    const primaryKeepFree = Math.min(PRIMARY_RESERVE_BYTES, Math.floor(this.arenaBytes / 4));
    for (const arena of this.arenas) {
      const ptr = arena.tryAlloc(bytes, arena === this.arenas[0] ? primaryKeepFree : keepFree);
      if (ptr >= 0) return { arena, ptr };
    }
    const arena = this.addArena();
    const ptr = arena.tryAlloc(bytes, keepFree);
    if (ptr < 0) throw new ArenaFullError('a weight', bytes, arena);
    return { arena, ptr };
  }

  private addArena(): Arena {
    const arena = new Arena(this.arenas.length, this.module, this.arenaBytes);
    this.arenas.push(arena);
    this.pool.addArena(arena.index, arena.memory);
    return arena;
  }

  /** Runs an operator kernel, enlarging its scratch region and retrying when the region was too small. */
  private withOps(call: (ops: WasmOps) => void): void {
    this.checkLive();
    for (;;) {
      const ops = this.ops ?? this.makeOps();
      try {
        call(ops);
        return;
      } catch (e) {
        // WasmOps checks its region before copying anything in, so a retry starts clean.
        if (!(e instanceof WasmOpsError) || !/scratch region/.test(e.message)) throw e;
        if (this.opsRegionBytes * 2 > this.arenaBytes) throw e;
        this.arenas[0]!.release(this.opsRegion);
        this.retiredOpsCopies.bytesIn += ops.copyStats.bytesIn;
        this.retiredOpsCopies.bytesOut += ops.copyStats.bytesOut;
        this.ops = undefined;
        this.opsRegionBytes *= 2;
      }
    }
  }

  /** WasmOps over a fresh region of `opsRegionBytes` in the primary arena. */
  private makeOps(): WasmOps {
    const primary = this.arenas[0]!;
    this.opsRegion = primary.alloc(this.opsRegionBytes, 'operator scratch');
    this.ops = new WasmOps(primary.instance.exports, primary.memory, {
      scratchBase: this.opsRegion,
      scratchBytes: this.opsRegionBytes,
      name: this.name,
      // Arrays from `allocate` (the KV cache) may predate the ops object: the arena knows every buffer.
      owns: (a) => primary.owns(a),
    });
    return this.ops;
  }

  private own(w: LinearWeight): WasmLinear {
    if (!(w instanceof WasmLinear))
      throw new WasmKernelsError('this weight was not prepared by this wasm kernel set');
    if (!this.arenas.includes(w.arena))
      throw new WasmKernelsError('this weight belongs to another wasm kernel set');
    return w;
  }

  private checkLive(): void {
    if (this.disposed) throw new WasmKernelsError('the wasm kernel set was used after dispose()');
  }
}

function align64(bytes: number): number {
  return Math.ceil(bytes / 64) * 64;
}
