// The CPU platform's int8 (W8A8) linear: laying out a prepared int8 weight in its arena block (int8
// panels, then the per-column dequantization scales and int32 additions), quantizing the activations
// into scratch, and running the int8 GEMM over the thread pool. The kernels: src/kernels/wasm/int8/.
//
// Which inner loop runs (see gemm-i8.ts) is the kernel set's `int8Dot`: 'int16' (the default, and the
// only one in the plain SIMD build) widens the weights and uses i32x4.dot_i16x8_s; 'relaxed' runs
// dynamic (per-token, symmetric) activations on the relaxed i8×i7 dot over the "split" form (q + 127
// as two 7-bit parts, since the dot's second operand is only the same on every machine within
// [0, 127]). The static zero-point variant (activations over all of [−128, 127], which two 7-bit parts
// cannot cover in one sum) always takes the int16 dot. Both are exact in int32: every choice gives the
// same bits. Activations quantized per token and group of k (Int8Scheme's groupSize) take their own
// kernel (gemm-i8-group.ts) on the int16 dot, leaving the per-token path as it was. Why int16 is the
// default: on Node 20 (V8 11.3, x64) the fused relaxed dot-add is miscompiled, the unfused one costs
// three instructions per 16 multiply-adds, and the split needs two of them; `npm run bench:kernels`
// measured int16 faster here (docs/int8.md).

import type { Int8LinearData } from '../../kernels/kernels.js';
import type { Arena } from './arena.js';
import type { CopyStats } from './copy-stats.js';
import { type GemmPart, planGemm } from './gemm-plan.js';
import { evenRowRanges, type GemmThreadPool } from './thread-pool.js';
import { KernelArgumentError } from './wasm-ops.js';
import { int8PanelBytes, PANEL_WIDTH, packInt8 } from './weight-packing.js';

/** Where a prepared int8 weight's parts live in its arena, and how its activations are quantized. */
export interface Int8Layout {
  readonly n: number;
  readonly k: number;
  readonly arena: Arena;
  /** Byte offset of the block (the panels first). */
  readonly ptr: number;
  /** Bytes of the block. */
  readonly bytes: number;
  /** Byte offset of colScale: [ceil(n/8)·8] f32 (weightScale, or deqScale for the static scheme). */
  readonly colScale: number;
  /**
   * Byte offset of colAdd: [ceil(n/8)·8] i32 added to the sums: quantBias (static), or −127·Σ_k w
   * (dynamic; used by the relaxed split form only).
   */
  readonly colAdd: number;
  /** Static scheme: 1 / inputScale (float32) and inputOffset; unused for the dynamic scheme. */
  readonly invScale: number;
  readonly offset: number;
  readonly isStatic: boolean;
  /** Dynamic scheme: activation scales per group of this many k values (gemm-i8-group.ts); 0: per token. */
  readonly groupSize: number;
}

/** Bytes of the arena block for an int8 weight [n, k]. */
export function int8BlockBytes(n: number, k: number): number {
  return int8PanelBytes(n, k) + 2 * paddedN(n) * 4;
}

/** Writes `weight` ([n, k], checked by the caller) into the block at `ptr` of `arena`; returns its layout. */
export function writeInt8Block(
  arena: Arena,
  ptr: number,
  weight: Int8LinearData,
  n: number,
  k: number,
): Int8Layout {
  const panelBytes = int8PanelBytes(n, k);
  const np = paddedN(n);
  const colScale = ptr + panelBytes;
  const colAddAt = colScale + np * 4;
  const scales = arena.f32(colScale, np);
  const add = arena.i32(colAddAt, np);
  scales.fill(0);
  add.fill(0);
  const s = weight.scheme;
  if (s.kind === 'static') {
    packInt8(arena.i8(ptr, panelBytes), weight.data, n, k);
    scales.set(s.deqScale);
    add.set(s.quantBias);
  } else {
    // The split form sums w·(q + 127): take 127·Σ_k w back off each column (the sums come with the packing).
    packInt8(arena.i8(ptr, panelBytes), weight.data, n, k, add);
    for (let j = 0; j < n; j++) add[j] = -127 * add[j]!;
    scales.set(s.weightScale);
  }
  return {
    n,
    k,
    arena,
    ptr,
    bytes: int8BlockBytes(n, k),
    colScale,
    colAdd: colAddAt,
    invScale: s.kind === 'static' ? Math.fround(1 / Math.fround(s.inputScale)) : 0,
    offset: s.kind === 'static' ? s.inputOffset : 0,
    isStatic: s.kind === 'static',
    groupSize: s.kind === 'dynamic' ? (s.groupSize ?? 0) : 0,
  };
}

/** The int8 GEMM's inner loop: see the header. */
export type Int8Dot = 'int16' | 'relaxed';

/** What the int8 linear needs of the kernel set. */
export interface Int8LinearContext {
  readonly pool: GemmThreadPool;
  readonly copies: CopyStats;
  readonly numThreads: number;
  readonly minSecondsPerThread: number;
  readonly int8Dot: Int8Dot;
}

/** The int8 GEMM's exports (byte offsets into the arena's memory). */
interface Int8Exports {
  quant_dynamic(
    xq: number,
    scales: number,
    x: number,
    m: number,
    k: number,
    ldx: number,
    split: number,
  ): void;
  quant_static(
    xq: number,
    x: number,
    m: number,
    k: number,
    ldx: number,
    invScale: number,
    offset: number,
  ): void;
  quant_dynamic_group(
    xq: number,
    scales: number,
    x: number,
    m: number,
    k: number,
    ldx: number,
    groupSize: number,
  ): void;
  gemm_i8(...args: number[]): void;
  gemm_i8_group(...args: number[]): void;
}

/** `Kernels.linear` for an int8 weight: out[m, n] from x[m, k] (see Int8Scheme). */
export function runInt8Linear(
  ctx: Int8LinearContext,
  out: Float32Array,
  x: Float32Array,
  w: Int8Layout,
  m: number,
): void {
  const { n, k, arena } = w;
  if (!Number.isInteger(m) || m < 0)
    throw new KernelArgumentError(`linear: m = ${m}; it must be an integer >= 0`);
  if (x.length < m * k)
    throw new KernelArgumentError(`linear: x has ${x.length} elements; [m, k] needs ${m * k}`);
  if (out.length < m * n) {
    throw new KernelArgumentError(`linear: out has ${out.length} elements; [m, n] needs ${m * n}`);
  }
  if (m === 0) return;
  // Scratch: [x copy][quantized x][row (or row-group) scales][out], each 64-byte aligned; only the parts
  // needed.
  const xIn = arena.owns(x);
  const outIn = arena.owns(out);
  const xBytes = xIn ? 0 : align64(m * k * 4);
  const xqBytes = align64(m * Math.ceil(k / 4) * 8);
  const numGroups = w.groupSize > 0 ? Math.ceil(k / w.groupSize) : 1;
  const rsBytes = align64(m * numGroups * 4);
  const outBytes = outIn ? 0 : align64(m * n * 4);
  const s = arena.scratch(xBytes + xqBytes + rsBytes + outBytes);
  let xPtr = x.byteOffset;
  if (!xIn) {
    xPtr = s;
    arena.f32(xPtr, m * k).set(x.subarray(0, m * k));
    ctx.copies.bytesIn += m * k * 4;
  }
  const xq = s + xBytes;
  const rowScale = xq + xqBytes;
  const outPtr = outIn ? out.byteOffset : rowScale + rsBytes;
  const g = arena.instance.exports as unknown as Int8Exports;
  if (w.groupSize > 0) {
    runGroupGemm(ctx, g, w, { out: outPtr, xq, scales: rowScale, x: xPtr }, m);
  } else {
    runTokenGemm(ctx, g, w, { out: outPtr, xq, scales: rowScale, x: xPtr }, m);
  }
  if (!outIn) {
    out.set(arena.f32(outPtr, m * n));
    ctx.copies.bytesOut += m * n * 4;
  }
}

/** Byte offsets in the arena of one int8 linear call's operands (see runInt8Linear's scratch). */
interface Int8Operands {
  /** [m, n] f32. */
  readonly out: number;
  /** [m, ceil(k/4)·8] quantized activations. */
  readonly xq: number;
  /** [m] f32 (per token) or [m, ceil(k/G)] f32 (per token and group). */
  readonly scales: number;
  /** [m, k] f32. */
  readonly x: number;
}

/** Per-token or static activations: quantize, then gemm_i8 (the inner loop `ctx.int8Dot` chooses). */
function runTokenGemm(
  ctx: Int8LinearContext,
  g: Int8Exports,
  w: Int8Layout,
  o: Int8Operands,
  m: number,
): void {
  const { n, k, arena } = w;
  const { out: outPtr, xq, scales: rowScale, x: xPtr } = o;
  const split = ctx.int8Dot === 'relaxed' && !w.isStatic ? 1 : 0;
  const colAdd = w.isStatic || split === 1 ? w.colAdd : 0;
  if (w.isStatic) {
    g.quant_static(xq, xPtr, m, k, k * 4, w.invScale, w.offset);
    arena.f32(rowScale, m).fill(1);
  } else {
    quantizeDynamic(ctx, g, arena.index, xq, rowScale, xPtr, m, k, { split });
  }
  runGemmParts(ctx, g, w, m, 'gemm_i8', (p) => [
    outPtr,
    xq,
    w.ptr,
    colAdd,
    rowScale,
    w.colScale,
    n,
    k,
    p.p0,
    p.p1,
    p.r0,
    p.r1,
    split,
  ]);
}

/**
 * Per-token-group activations: quant_dynamic_group, then gemm_i8_group (always the int16 dot: the
 * relaxed split form would need its −127·Σw correction per group).
 */
function runGroupGemm(
  ctx: Int8LinearContext,
  g: Int8Exports,
  w: Int8Layout,
  o: Int8Operands,
  m: number,
): void {
  const { n, k, arena, groupSize } = w;
  quantizeDynamic(ctx, g, arena.index, o.xq, o.scales, o.x, m, k, { groupSize });
  runGemmParts(ctx, g, w, m, 'gemm_i8_group', (p) => [
    o.out,
    o.xq,
    w.ptr,
    o.scales,
    w.colScale,
    n,
    k,
    groupSize,
    p.p0,
    p.p1,
    p.r0,
    p.r1,
  ]);
}

/**
 * Runs `kernel` over planGemm's parts of the [m, n] output, with `args` for each part: the first part on
 * this thread, the others on the pool's threads.
 */
function runGemmParts(
  ctx: Int8LinearContext,
  g: Int8Exports,
  w: Int8Layout,
  m: number,
  kernel: 'gemm_i8' | 'gemm_i8_group',
  args: (part: GemmPart) => number[],
): void {
  const plan = planGemm(m, w.n, w.k, w.bytes, ctx.numThreads, ctx.minSecondsPerThread);
  const shares = plan.parts.map(args);
  const runShare = (share: readonly number[]): void => g[kernel](...share);
  if (shares.length === 1) runShare(shares[0]!);
  else ctx.pool.runKernel(w.arena.index, kernel, shares, runShare);
}

/**
 * Below this many activation elements the per-token quantization runs on the calling thread alone (a
 * decode step's few rows cost less than waking a thread); from here on (a prefill, a large batch) the
 * rows are split over the threads, which would otherwise wait for the calling thread to finish it.
 */
const THREADED_QUANT_ELEMENTS = 64 * 1024;

/**
 * quant_dynamic (per token, `split` its activation form) or quant_dynamic_group (per token and group of
 * `groupSize`) over rows [0, m), split over the pool's threads when it is large enough to pay.
 */
function quantizeDynamic(
  ctx: Int8LinearContext,
  g: Int8Exports,
  arena: number,
  xq: number,
  scales: number,
  xPtr: number,
  m: number,
  k: number,
  form: { readonly split: number } | { readonly groupSize: number },
): void {
  const [kernel, last, scalesPerRow] =
    'groupSize' in form
      ? (['quant_dynamic_group', form.groupSize, Math.ceil(k / form.groupSize)] as const)
      : (['quant_dynamic', form.split, 1] as const);
  const threads = Math.min(ctx.numThreads, m);
  if (threads <= 1 || m * k < THREADED_QUANT_ELEMENTS) {
    g[kernel](xq, scales, xPtr, m, k, k * 4, last);
    return;
  }
  const rowBytes = Math.ceil(k / 4) * 8;
  const shares = evenRowRanges(m, threads).map(
    ([r0, r1]) =>
      [
        xq + r0 * rowBytes,
        scales + r0 * scalesPerRow * 4,
        xPtr + r0 * k * 4,
        r1 - r0,
        k,
        k * 4,
        last,
      ] as const,
  );
  ctx.pool.runKernel(arena, kernel, shares, (share) => g[kernel](...share));
}

function paddedN(n: number): number {
  return Math.ceil(n / PANEL_WIDTH) * PANEL_WIDTH;
}

function align64(bytes: number): number {
  return Math.ceil(bytes / 64) * 64;
}
