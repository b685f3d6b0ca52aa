// Plain TypeScript reference twins of every kernel in the `Kernels` contract. Straightforward loops with
// float32 results (accumulating in float64 where that is the simplest exact choice), used by tests as the
// ground truth for the WebAssembly kernels and usable as a (slow) kernel set on any runtime.

import { checkInt8LinearData, int8Linear } from '../int8-quant.js';
import {
  bf16ToF32,
  f32BitsToBf16,
  type HeadLinearWeight,
  type Int8LinearData,
  type Kernels,
  type LinearWeight,
  type RawWeight,
  type WeightDType,
} from '../kernels.js';
import * as activationOps from './activation-ops.js';

/** A weight kept as float32 `[n, k]` row-major (bf16 storage is emulated by rounding at prepare time). */
class ReferenceLinear implements LinearWeight {
  constructor(
    readonly n: number,
    readonly k: number,
    readonly dtype: WeightDType,
    /** [n, k] */
    readonly data: Float32Array,
  ) {}
}

/** An int8 weight kept as given (W8A8): `linear` runs the reference twin of the int8 kernels on it. */
class ReferenceInt8Linear implements LinearWeight {
  readonly dtype = 'int8';
  constructor(
    readonly n: number,
    readonly k: number,
    readonly weight: Int8LinearData,
  ) {}
}

/** Per-head weights kept as float32 `[numHeads, n, k]`. */
class ReferenceHeadLinear extends ReferenceLinear implements HeadLinearWeight {
  constructor(
    readonly numHeads: number,
    n: number,
    k: number,
    dtype: WeightDType,
    /** [numHeads, n, k] */
    data: Float32Array,
  ) {
    super(n, k, dtype, data);
  }
}

export class ReferenceKernels implements Kernels {
  readonly name = 'reference';

  prepareLinear(raw: RawWeight, n: number, k: number, dtype: WeightDType): LinearWeight {
    if (raw.data.length !== n * k) {
      throw new RangeError(`prepareLinear: weight has ${raw.data.length} elements, expected n*k = ${n * k}`);
    }
    const data = new Float32Array(n * k);
    if (raw.dtype === 'bf16') bf16ToF32(data, raw.data);
    else data.set(raw.data);
    if (dtype === 'bf16' && raw.dtype === 'f32') roundToBf16InPlace(data);
    return new ReferenceLinear(n, k, dtype, data);
  }

  prepareHeadLinear(
    raw: RawWeight,
    numHeads: number,
    n: number,
    k: number,
    dtype: WeightDType,
  ): HeadLinearWeight {
    const w = this.prepareLinear(raw, numHeads * n, k, dtype) as ReferenceLinear;
    return new ReferenceHeadLinear(numHeads, n, k, dtype, w.data);
  }

  prepareInt8Linear(weight: Int8LinearData, n: number, k: number): LinearWeight {
    checkInt8LinearData('prepareInt8Linear', weight, n, k);
    const s = weight.scheme;
    const scheme =
      s.kind === 'dynamic'
        ? { ...s, weightScale: s.weightScale.slice() }
        : { ...s, quantBias: s.quantBias.slice(), deqScale: s.deqScale.slice() };
    return new ReferenceInt8Linear(n, k, { data: weight.data.slice(), scheme });
  }

  freeLinear(_w: LinearWeight): void {}

  allocate(n: number): Float32Array {
    return new Float32Array(n);
  }

  free(_a: Float32Array): void {}

  allocateActivations(n: number): Float32Array {
    return new Float32Array(n);
  }

  allocateIndices(n: number): Int32Array {
    return new Int32Array(n);
  }

  readonly add = activationOps.add;
  readonly sigmoid = activationOps.sigmoid;
  readonly copyRows = activationOps.copyRows;
  readonly weightedScatterAdd = activationOps.weightedScatterAdd;
  readonly embedding = activationOps.embedding;
  // Its selections run on this kernel set's own topK.
  readonly groupedTopK = activationOps.groupedTopK;

  linear(out: Float32Array, x: Float32Array, w: LinearWeight, m: number): void {
    if (w instanceof ReferenceInt8Linear) {
      int8Linear(out, x, w.weight, m, w.n, w.k);
      return;
    }
    const { n, k, data } = w as ReferenceLinear;
    for (let i = 0; i < m; i++) {
      const xo = i * k;
      for (let j = 0; j < n; j++) {
        const wo = j * k;
        let acc = 0;
        for (let p = 0; p < k; p++) acc += x[xo + p]! * data[wo + p]!;
        out[i * n + j] = acc;
      }
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
    const { numHeads: H, n, k, data } = w as ReferenceHeadLinear;
    for (let i = 0; i < m; i++) {
      for (let h = 0; h < H; h++) {
        const xo = (i * H + h) * xHeadStride + xOffset;
        const oo = (i * H + h) * outHeadStride + outOffset;
        for (let j = 0; j < n; j++) {
          const wo = (h * n + j) * k;
          let acc = 0;
          for (let c = 0; c < k; c++) acc += x[xo + c]! * data[wo + c]!;
          out[oo + j] = acc;
        }
      }
    }
  }

  rmsNorm(out: Float32Array, x: Float32Array, weight: Float32Array, m: number, d: number, eps: number): void {
    for (let i = 0; i < m; i++) {
      const o = i * d;
      let ss = 0;
      for (let j = 0; j < d; j++) ss += x[o + j]! * x[o + j]!;
      const inv = 1 / Math.sqrt(ss / d + eps);
      for (let j = 0; j < d; j++) out[o + j] = x[o + j]! * inv * weight[j]!;
    }
  }

  siluAndMul(out: Float32Array, gateUp: Float32Array, m: number, d: number): void {
    for (let i = 0; i < m; i++) {
      const g = i * 2 * d;
      for (let j = 0; j < d; j++) {
        const a = gateUp[g + j]!;
        out[i * d + j] = (a / (1 + Math.exp(-a))) * gateUp[g + d + j]!;
      }
    }
  }

  softmax(x: Float32Array, m: number, n: number): void {
    for (let i = 0; i < m; i++) {
      const o = i * n;
      let max = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < n; j++) max = Math.max(max, x[o + j]!);
      let sum = 0;
      for (let j = 0; j < n; j++) {
        const e = Math.exp(x[o + j]! - max);
        x[o + j] = e;
        sum += e;
      }
      for (let j = 0; j < n; j++) x[o + j] = x[o + j]! / sum;
    }
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
    const half = rotaryDim / 2;
    for (let i = 0; i < m; i++) {
      const t = positions[i]! * half;
      for (let h = 0; h < numHeads; h++) {
        const base = (i * numHeads + h) * headStride + offset;
        for (let j = 0; j < half; j++) {
          const c = cos[t + j]!;
          const s = sin[t + j]!;
          const a = x[base + 2 * j]!;
          const b = x[base + 2 * j + 1]!;
          x[base + 2 * j] = a * c - b * s;
          x[base + 2 * j + 1] = a * s + b * c;
        }
      }
    }
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
    const entry = latentDim + ropeDim;
    const scores = new Float64Array(positions.length === 0 ? 0 : Math.max(...positions) + 1);
    const acc = new Float64Array(latentDim);
    for (let t = 0; t < numTokens; t++) {
      const numCtx = positions[t]! + 1;
      for (let h = 0; h < numHeads; h++) {
        const qo = (t * numHeads + h) * entry;
        let max = Number.NEGATIVE_INFINITY;
        for (let p = 0; p < numCtx; p++) {
          const slot = blockTable[Math.floor(p / blockSize)]! * blockSize + (p % blockSize);
          const co = slot * entry;
          let dot = 0;
          for (let c = 0; c < entry; c++) dot += q[qo + c]! * cache[co + c]!;
          const s = dot * scale;
          scores[p] = s;
          if (s > max) max = s;
        }
        let sum = 0;
        for (let p = 0; p < numCtx; p++) {
          const e = Math.exp(scores[p]! - max);
          scores[p] = e;
          sum += e;
        }
        acc.fill(0);
        for (let p = 0; p < numCtx; p++) {
          const slot = blockTable[Math.floor(p / blockSize)]! * blockSize + (p % blockSize);
          const co = slot * entry;
          const wgt = scores[p]! / sum;
          for (let c = 0; c < latentDim; c++) acc[c] = acc[c]! + wgt * cache[co + c]!;
        }
        const oo = (t * numHeads + h) * latentDim;
        for (let c = 0; c < latentDim; c++) out[oo + c] = acc[c]!;
      }
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
    const entry = latentDim + ropeDim;
    for (let s = 0; s < numSeqs; s++) {
      const a = seqStarts[s]!;
      const b = seqStarts[s + 1]!;
      if (b <= a) continue;
      this.mlaAttention(
        out.subarray(a * numHeads * latentDim, b * numHeads * latentDim),
        q.subarray(a * numHeads * entry, b * numHeads * entry),
        cache,
        blockTables.subarray(s * maxBlocksPerSeq, (s + 1) * maxBlocksPerSeq),
        positions.subarray(a, b),
        b - a,
        numHeads,
        latentDim,
        ropeDim,
        blockSize,
        scale,
      );
    }
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
    const qw = nopeDim + ropeDim;
    const kvw = nopeDim + vDim;
    const scores = new Float64Array(numCtx);
    const acc = new Float64Array(vDim);
    for (let t = 0; t < numTokens; t++) {
      const n = positions[t]! + 1;
      for (let h = 0; h < numHeads; h++) {
        const qo = (t * numHeads + h) * qw;
        let max = Number.NEGATIVE_INFINITY;
        for (let p = 0; p < n; p++) {
          const ko = (p * numHeads + h) * kvw;
          let dot = 0;
          for (let c = 0; c < nopeDim; c++) dot += q[qo + c]! * kv[ko + c]!;
          for (let c = 0; c < ropeDim; c++) dot += q[qo + nopeDim + c]! * kRope[p * ropeDim + c]!;
          scores[p] = dot * scale;
          if (scores[p]! > max) max = scores[p]!;
        }
        let sum = 0;
        for (let p = 0; p < n; p++) {
          scores[p] = Math.exp(scores[p]! - max);
          sum += scores[p]!;
        }
        acc.fill(0);
        for (let p = 0; p < n; p++) {
          const vo = (p * numHeads + h) * kvw + nopeDim;
          const wgt = scores[p]! / sum;
          for (let c = 0; c < vDim; c++) acc[c] = acc[c]! + wgt * kv[vo + c]!;
        }
        const oo = (t * numHeads + h) * vDim;
        for (let c = 0; c < vDim; c++) out[oo + c] = acc[c]!;
      }
    }
  }

  topK(outIdx: Int32Array, outVal: Float32Array, x: Float32Array, m: number, n: number, k: number): void {
    const idx = new Int32Array(n);
    for (let i = 0; i < m; i++) {
      const o = i * n;
      for (let j = 0; j < n; j++) idx[j] = j;
      const order = Array.from(idx).sort((a, b) => x[o + b]! - x[o + a]! || a - b);
      for (let j = 0; j < k; j++) {
        outIdx[i * k + j] = order[j]!;
        outVal[i * k + j] = x[o + order[j]!]!;
      }
    }
  }

  argmax(outIdx: Int32Array, x: Float32Array, m: number, n: number): void {
    for (let i = 0; i < m; i++) {
      let best = 0;
      let bestValue = Number.NEGATIVE_INFINITY;
      for (let j = 0; j < n; j++) {
        const v = x[i * n + j]!;
        if (v > bestValue) {
          bestValue = v;
          best = j;
        }
      }
      outIdx[i] = best;
    }
  }

  async dispose(): Promise<void> {}
}

/** Rounds float32 values to the nearest bfloat16 in place (round to nearest even). */
function roundToBf16InPlace(x: Float32Array): void {
  const u32 = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < u32.length; i++) u32[i] = f32BitsToBf16(u32[i]!) << 16;
}
