// The oneDNN matrix products: `linear` over f32, bf16 and int8 W8A8 weights through the native addon's
// oneDNN matmul, and native versions of the operators between them that took a share of the step (norms,
// SwiGLU, residual add, row copies, the MoE combine). `createOnednnKernels` lays them over Duet's
// WebAssembly kernel set, which keeps every other operator — attention, rope, top-k, per-head products,
// the KV cache's and activations' memory, and whatever the contract adds later. Weights the addon cannot
// take (bf16 before AVX-512; int8 where the CPU lacks an exact int8 dot; int8 with activation scales per
// group of k) are prepared by the WebAssembly kernels and run there.

import type { NativeAddon, NativeContext, NativeOps, NativeWeight } from './addon.js';
import { NativeKind, packageVersion } from './addon.js';
import {
  bf16ToF32,
  checkInt8LinearData,
  f32ToBf16,
  type Int8LinearData,
  type Kernels,
  type LinearWeight,
  type PreparedWeightCache,
  type RawWeight,
  type WeightCacheKey,
  type WeightCaching,
  type WeightDType,
} from './duet.js';
import { overlay } from './overlay.js';
import { type CachedWeightParts, openOnednnWeightCache, type WeightCacheHost } from './weight-cache.js';

/**
 * How `linear` treats float32 activations against a bf16 weight (chosen by the compute precision):
 * - `split` (compute float32): each activation as a bf16 head plus a bf16 tail (relative error 2^-17),
 *   products exact in float32: float32-grade results (within Duet's golden tolerance) at twice bf16's
 *   arithmetic.
 * - `bf16` (compute bfloat16, `--dtype bfloat16`): activations rounded to bf16 (relative error 2^-9), as
 *   vLLM's bf16 compute and llama.cpp's BF16 path do: fastest.
 */
export type Bf16Math = 'split' | 'bf16';

export interface OnednnKernelsOptions {
  numThreads: number;
  bf16Math: Bf16Math;
}

/** A bad argument to the oneDNN kernel set. */
export class OnednnKernelsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnednnKernelsError';
  }
}

/** A weight the addon holds, in oneDNN's layout. */
class OnednnLinear implements LinearWeight {
  freed = false;
  constructor(
    readonly n: number,
    readonly k: number,
    readonly dtype: WeightDType | 'int8',
    readonly handle: NativeWeight,
    /** Int8 only: the weight's scheme, its per-channel arrays copied. */
    readonly int8?: Int8LinearData['scheme'],
  ) {}

  /** What the weight cache writes of it. */
  parts(): CachedWeightParts {
    const kind = NativeKind[this.dtype];
    return { handle: this.handle, kind, n: this.n, k: this.k, ...(this.int8 ? { scheme: this.int8 } : {}) };
  }
}

/** The dtype of a native kind. */
function kindName(kind: NativeKind): WeightDType | 'int8' {
  return kind === NativeKind.f32 ? 'f32' : kind === NativeKind.bf16 ? 'bf16' : 'int8';
}

/** The kernel members this package runs itself; the others are the WebAssembly kernels'. */
type OnednnMembers = Pick<Kernels, 'name' | 'prepareLinear' | 'prepareInt8Linear' | 'freeLinear' | 'linear'> &
  WeightCaching;

/**
 * The oneDNN kernel set: oneDNN's matrix products over `wasm`, which keeps every other kernel; it keeps a
 * prepared-weight cache (`openWeightCache`).
 */
export type OnednnKernels = Kernels & WeightCaching & Omit<OnednnMatmul, keyof OnednnMembers | 'nativeOps'>;

/** Lays the oneDNN matrix products over `wasm` (which `dispose` disposes). */
export function createOnednnKernels(
  addon: NativeAddon,
  wasm: Kernels,
  opts: OnednnKernelsOptions,
): OnednnKernels {
  const matmul = new OnednnMatmul(addon, wasm, opts);
  return overlay(wasm as OnednnKernels, {
    name: matmul.name,
    prepareLinear: matmul.prepareLinear.bind(matmul),
    prepareInt8Linear: matmul.prepareInt8Linear.bind(matmul),
    freeLinear: matmul.freeLinear.bind(matmul),
    openWeightCache: matmul.openWeightCache.bind(matmul),
    linear: matmul.linear.bind(matmul),
    implInfo: matmul.implInfo.bind(matmul),
    numCachedPrimitives: matmul.numCachedPrimitives.bind(matmul),
    int8Sums: matmul.int8Sums.bind(matmul),
    ...matmul.nativeOps(),
  });
}

/** The matrix products on oneDNN, falling back to `wasm` for weights the addon does not hold. */
class OnednnMatmul implements OnednnMembers {
  readonly name: string;
  private readonly ctx: NativeContext;
  private readonly int8Native: boolean;
  private readonly bf16Native: boolean;
  /** What the weight cache needs of these kernels (src/weight-cache.ts). */
  private readonly cacheHost: WeightCacheHost;

  constructor(
    addon: NativeAddon,
    /** The WebAssembly kernels, for the weights the addon does not take. */
    private readonly wasm: Kernels,
    private readonly opts: OnednnKernelsOptions,
  ) {
    const info = addon.describe();
    this.ctx = new addon.Context(opts.numThreads);
    this.int8Native = info.int8Exact;
    this.bf16Native = info.bf16;
    const compute = opts.bf16Math === 'bf16' ? 'bfloat16' : 'float32';
    this.name = `onednn ${info.version} ${info.isa} x${opts.numThreads} (compute ${compute}; ${wasm.name})`;
    this.cacheHost = {
      addon,
      ctx: this.ctx,
      // Everything here that may change how oneDNN lays a weight out (its blocking is chosen for the
      // instruction set and the thread count).
      platformKey: {
        package: `duet-platform-onednn ${packageVersion()}`,
        onednn: info.version,
        isa: info.isa,
        build: info.build,
        numThreads: opts.numThreads,
        int8Native: info.int8Exact,
        bf16Native: info.bf16,
      },
      partsOf: (w) => (w instanceof OnednnLinear && !w.freed ? w.parts() : null),
      wrap: (p) => new OnednnLinear(p.n, p.k, kindName(p.kind), p.handle, p.scheme),
    };
  }

  /**
   * The prepared-weight cache in `dir` for `key`: weights mapped from its file when it holds this key,
   * else packed as always and written there (Duet's PreparedWeightCache contract).
   */
  openWeightCache(dir: string, key: WeightCacheKey): PreparedWeightCache {
    return openOnednnWeightCache(this.cacheHost, dir, key);
  }

  /** The name of the oneDNN implementation used for `m` rows of `w` (for benchmarks and tests). */
  implInfo(w: LinearWeight, m: number): string {
    return w instanceof OnednnLinear ? this.ctx.implInfo(w.handle, m) : this.wasm.name;
  }

  /** Matmul primitives cached so far (one per weight kind, shape and row count). */
  numCachedPrimitives(): number {
    return this.ctx.numCached();
  }

  /**
   * The native operators between the products (their share of a step: bench/onednn-profile.ts): norms,
   * the SwiGLU gate, the residual add and the row moves of attention and MoE, each bound to this context.
   */
  nativeOps(): NativeOps {
    const c = this.ctx;
    return {
      rmsNorm: c.rmsNorm.bind(c),
      siluAndMul: c.siluAndMul.bind(c),
      add: c.add.bind(c),
      copyRows: c.copyRows.bind(c),
      weightedScatterAdd: c.weightedScatterAdd.bind(c),
    };
  }

  /** Int32 sums Σ_c xq[i, c] · w[j, c] of an int8 weight. `acc`: [m, n]; `xq`: [m, k]. */
  int8Sums(acc: Int32Array, xq: Int8Array, w: LinearWeight, m: number): void {
    if (!(w instanceof OnednnLinear) || w.dtype !== 'int8') {
      throw new OnednnKernelsError('int8Sums: the weight is not a native int8 weight');
    }
    this.checkRows('int8Sums', m, xq.length, w.k, acc.length, w.n);
    this.ctx.int8Sums(acc, xq, w.handle, m);
  }

  prepareLinear(raw: RawWeight, n: number, k: number, dtype: WeightDType): LinearWeight {
    checkShape('prepareLinear', n, k);
    if (raw.data.length !== n * k) {
      throw new OnednnKernelsError(
        `prepareLinear: the weight has ${raw.data.length} elements, expected n·k = ${n * k}`,
      );
    }
    if (dtype === 'f32') {
      const data = raw.dtype === 'f32' ? raw.data : widen(raw.data);
      return new OnednnLinear(n, k, 'f32', this.ctx.prepare(NativeKind.f32, data, n, k));
    }
    if (dtype !== 'bf16') {
      throw new OnednnKernelsError(`prepareLinear: dtype '${dtype}'; allowed: 'f32', 'bf16'`);
    }
    let bits: Uint16Array;
    if (raw.dtype === 'bf16') bits = raw.data;
    else {
      bits = new Uint16Array(n * k);
      f32ToBf16(bits, raw.data);
    }
    if (!this.bf16Native) return this.wasm.prepareLinear({ dtype: 'bf16', data: bits }, n, k, 'bf16');
    return new OnednnLinear(n, k, 'bf16', this.ctx.prepare(NativeKind.bf16, bits, n, k));
  }

  prepareInt8Linear(weight: Int8LinearData, n: number, k: number): LinearWeight {
    checkInt8LinearData('prepareInt8Linear', weight, n, k);
    // Activation scales per group of k: oneDNN 2.6's int8 matmul takes one source scale per tensor (or per
    // token, applied after the sum), not one per group inside the k sum, so the WebAssembly kernels run
    // these weights (bit for bit the cpu platform's results).
    const isGrouped = weight.scheme.kind === 'dynamic' && weight.scheme.groupSize !== undefined;
    if (!this.int8Native || isGrouped) return this.wasm.prepareInt8Linear(weight, n, k);
    const s = weight.scheme;
    const scheme: Int8LinearData['scheme'] =
      s.kind === 'dynamic'
        ? { kind: 'dynamic', weightScale: s.weightScale.slice() }
        : { ...s, quantBias: s.quantBias.slice(), deqScale: s.deqScale.slice() };
    return new OnednnLinear(n, k, 'int8', this.ctx.prepare(NativeKind.int8, weight.data, n, k), scheme);
  }

  freeLinear(w: LinearWeight): void {
    if (!(w instanceof OnednnLinear)) {
      this.wasm.freeLinear(w);
      return;
    }
    if (w.freed) return;
    w.freed = true;
    this.ctx.free(w.handle);
  }

  linear(out: Float32Array, x: Float32Array, w: LinearWeight, m: number): void {
    if (!(w instanceof OnednnLinear)) {
      this.wasm.linear(out, x, w, m);
      return;
    }
    if (w.freed) throw new OnednnKernelsError('linear: the weight was freed');
    this.checkRows('linear', m, x.length, w.k, out.length, w.n);
    if (m === 0) return;
    if (w.dtype === 'f32') this.ctx.linearF32(out, x, w.handle, m);
    else if (w.dtype === 'bf16') this.ctx.linearBf16(out, x, w.handle, m, this.opts.bf16Math === 'split');
    else if (w.int8?.kind === 'dynamic') this.ctx.linearInt8(out, x, w.handle, m, 0, w.int8.weightScale);
    else if (w.int8?.kind === 'static') {
      const s = w.int8;
      const inv = Math.fround(1 / Math.fround(s.inputScale));
      this.ctx.linearInt8(out, x, w.handle, m, 1, inv, s.inputOffset, s.quantBias, s.deqScale);
    }
  }

  /** Rejects a row count or array sizes that would read or write past an array in native code. */
  private checkRows(what: string, m: number, xLen: number, k: number, outLen: number, n: number): void {
    if (!Number.isInteger(m) || m < 0) {
      throw new OnednnKernelsError(`${what}: m = ${m}; it must be an integer >= 0`);
    }
    if (xLen < m * k) throw new OnednnKernelsError(`${what}: x has ${xLen} elements, m·k = ${m * k} needed`);
    if (outLen < m * n) {
      throw new OnednnKernelsError(`${what}: out has ${outLen} elements, m·n = ${m * n} needed`);
    }
  }
}

function checkShape(what: string, n: number, k: number): void {
  if (!Number.isInteger(n) || !Number.isInteger(k) || n < 1 || k < 1) {
    throw new OnednnKernelsError(`${what}: n = ${n}, k = ${k}; both must be integers >= 1`);
  }
}

function widen(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  bf16ToF32(out, bits);
  return out;
}
