// The W8A8 arithmetic in plain TypeScript, written once: the reference twins of the int8 kernels
// (activation quantization, int32 GEMM, dequantization), the checks of an Int8LinearData, and per-channel
// quantization of a float weight. Every step is float32 arithmetic (Math.fround after each operation)
// with round half to even, so that these functions match the WebAssembly kernels bit for bit.

import type { Int8LinearData, RawWeight } from './kernels.js';

/** An int8 weight or scheme that does not fit its shape or its scheme's rules. */
export class Int8WeightError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Int8WeightError';
  }
}

/** Round half to even of a float (NaN stays NaN), as WebAssembly's f32.nearest. */
export function roundHalfEven(t: number): number {
  const r = Math.round(t);
  return r - t === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** clamp(round(f32(f32(x · inv) + offset)), lo, hi) in float32; NaN gives 0. */
export function quantizeValue(x: number, inv: number, offset: number, lo: number, hi: number): number {
  const t = Math.min(Math.max(roundHalfEven(Math.fround(Math.fround(x * inv) + offset)), lo), hi);
  return Number.isNaN(t) ? 0 : t;
}

/**
 * Dynamic per-token symmetric quantization. `xq`: [m, k] values in [−127, 127]; `scales`: [m]
 * (max|x[i, :]| / 127); `x`: [m, k].
 */
export function quantizeDynamic(
  xq: Int32Array,
  scales: Float32Array,
  x: Float32Array,
  m: number,
  k: number,
): void {
  // One group spanning the row.
  quantizeDynamicGroups(xq, scales, x, m, k, k);
}

/** What an activation group size must be: the kernels step through k in quads of 4 and sum a group in int16 lanes. */
export const ACT_GROUP_SIZE_RULE = 'a multiple of 4 from 4 to 256';

/** Whether `g` is an activation group size the kernels take (ACT_GROUP_SIZE_RULE). */
export function isActGroupSize(g: unknown): g is number {
  return typeof g === 'number' && Number.isInteger(g) && g >= 4 && g <= 256 && g % 4 === 0;
}

/** Groups of `groupSize` along k (the last one may be shorter). */
export function numActGroups(k: number, groupSize: number): number {
  return Math.ceil(k / groupSize);
}

/**
 * Dynamic per-token-group symmetric quantization: each group of `groupSize` consecutive values of a row
 * (the last may be shorter) quantized as quantizeDynamic quantizes a row. `xq`: [m, k];
 * `scales`: [m, ceil(k / groupSize)]; `x`: [m, k].
 */
export function quantizeDynamicGroups(
  xq: Int32Array,
  scales: Float32Array,
  x: Float32Array,
  m: number,
  k: number,
  groupSize: number,
): void {
  const ng = numActGroups(k, groupSize);
  for (let i = 0; i < m; i++) {
    for (let g = 0; g < ng; g++) {
      const c0 = i * k + g * groupSize;
      const c1 = i * k + Math.min(k, (g + 1) * groupSize);
      let amax = 0;
      for (let c = c0; c < c1; c++) amax = Math.max(amax, Math.abs(x[c]!));
      const inv = amax > 0 ? Math.fround(127 / amax) : 0;
      scales[i * ng + g] = Math.fround(amax / 127);
      for (let c = c0; c < c1; c++) xq[c] = quantizeValue(x[c]!, inv, 0, -127, 127);
    }
  }
}

/** Static per-tensor quantization with a zero point. `xq`: [m, k] values in [−128, 127]; `x`: [m, k]. */
export function quantizeStatic(
  xq: Int32Array,
  x: Float32Array,
  m: number,
  k: number,
  inputScale: number,
  inputOffset: number,
): void {
  const inv = Math.fround(1 / Math.fround(inputScale));
  for (let i = 0; i < m * k; i++) xq[i] = quantizeValue(x[i]!, inv, inputOffset, -128, 127);
}

/** acc[i, j] = Σ_c xq[i, c] · w[j, c] in int32 (wrapping, as the kernels). `acc`: [m, n]; `w`: [n, k]. */
export function int8Accumulate(
  acc: Int32Array,
  xq: Int32Array,
  w: Int8Array,
  m: number,
  n: number,
  k: number,
): void {
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < k; c++) s = (s + xq[i * k + c]! * w[j * k + c]!) | 0;
      acc[i * n + j] = s;
    }
  }
}

/**
 * The reference int8 linear: quantizes x as `weight.scheme` says, accumulates in int32, dequantizes.
 * `out`: [m, n]; `x`: [m, k]; `weight.data`: [n, k].
 */
export function int8Linear(
  out: Float32Array,
  x: Float32Array,
  weight: Int8LinearData,
  m: number,
  n: number,
  k: number,
): void {
  const scheme = weight.scheme;
  if (scheme.kind === 'dynamic' && scheme.groupSize !== undefined) {
    int8LinearGroups(out, x, weight.data, scheme.weightScale, scheme.groupSize, m, n, k);
    return;
  }
  const xq = new Int32Array(m * k);
  const acc = new Int32Array(m * n);
  const rowScale = new Float32Array(m).fill(1);
  if (scheme.kind === 'dynamic') quantizeDynamic(xq, rowScale, x, m, k);
  else quantizeStatic(xq, x, m, k, scheme.inputScale, scheme.inputOffset);
  int8Accumulate(acc, xq, weight.data, m, n, k);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      const a = acc[i * n + j]!;
      const v =
        scheme.kind === 'dynamic'
          ? Math.fround(Math.fround(a) * rowScale[i]!) * scheme.weightScale[j]!
          : Math.fround((a + scheme.quantBias[j]!) | 0) * scheme.deqScale[j]!;
      out[i * n + j] = v;
    }
  }
}

/**
 * The reference int8 linear with activation scales per group of k (see Int8Scheme): each group's int32
 * sum dequantized by its scale and added in float32, in group order; then the weight scale.
 * `out`: [m, n]; `x`: [m, k]; `w`: [n, k]; `weightScale`: [n].
 */
function int8LinearGroups(
  out: Float32Array,
  x: Float32Array,
  w: Int8Array,
  weightScale: Float32Array,
  groupSize: number,
  m: number,
  n: number,
  k: number,
): void {
  const ng = numActGroups(k, groupSize);
  const xq = new Int32Array(m * k);
  const scales = new Float32Array(m * ng);
  quantizeDynamicGroups(xq, scales, x, m, k, groupSize);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) {
      let f = 0;
      for (let g = 0; g < ng; g++) {
        let s = 0;
        for (let c = g * groupSize; c < Math.min(k, (g + 1) * groupSize); c++) {
          s = (s + xq[i * k + c]! * w[j * k + c]!) | 0;
        }
        f = Math.fround(f + Math.fround(Math.fround(s) * scales[i * ng + g]!));
      }
      out[i * n + j] = Math.fround(f * weightScale[j]!);
    }
  }
}

/**
 * Checks an int8 weight against its shape and scheme (lengths, a positive finite input scale, an
 * integer zero point in [−128, 127]); throws Int8WeightError naming what is wrong. `what` names the
 * caller in the message.
 */
export function checkInt8LinearData(what: string, weight: Int8LinearData, n: number, k: number): void {
  if (!Number.isInteger(n) || !Number.isInteger(k) || n < 1 || k < 1) {
    throw new Int8WeightError(`${what}: n = ${n}, k = ${k}; both must be integers >= 1`);
  }
  if (!(weight.data instanceof Int8Array) || weight.data.length !== n * k) {
    throw new Int8WeightError(
      `${what}: weight data must be an Int8Array of n·k = ${n * k} elements (got ${describe(weight.data)})`,
    );
  }
  const s = weight.scheme;
  const perChannel = (name: string, a: unknown, type: typeof Float32Array | typeof Int32Array): void => {
    if (!(a instanceof type) || a.length !== n) {
      throw new Int8WeightError(
        `${what}: ${name} must be a ${type.name} of n = ${n} elements (got ${describe(a)})`,
      );
    }
  };
  if (s.kind === 'dynamic') {
    perChannel('weightScale', s.weightScale, Float32Array);
    if (s.groupSize !== undefined && !isActGroupSize(s.groupSize)) {
      throw new Int8WeightError(`${what}: groupSize = ${s.groupSize}; it must be ${ACT_GROUP_SIZE_RULE}`);
    }
  } else if (s.kind === 'static') {
    if (
      !(
        Number.isFinite(s.inputScale) &&
        s.inputScale > 0 &&
        Math.fround(1 / Math.fround(s.inputScale)) < Infinity
      )
    ) {
      throw new Int8WeightError(`${what}: inputScale = ${s.inputScale}; it must be a finite float32 > 0`);
    }
    if (!Number.isInteger(s.inputOffset) || s.inputOffset < -128 || s.inputOffset > 127) {
      throw new Int8WeightError(
        `${what}: inputOffset = ${s.inputOffset}; it must be an integer in [-128, 127]`,
      );
    }
    perChannel('quantBias', s.quantBias, Int32Array);
    perChannel('deqScale', s.deqScale, Float32Array);
  } else {
    throw new Int8WeightError(
      `${what}: scheme kind '${(s as { kind: unknown }).kind}'; allowed: 'dynamic', 'static'`,
    );
  }
}

function describe(a: unknown): string {
  if (ArrayBuffer.isView(a)) return `${a.constructor.name} of ${(a as unknown as { length: number }).length}`;
  return a === null ? 'null' : typeof a;
}

/**
 * Quantizes a float weight [n, k] per output channel, symmetric (the W8A8 weight format):
 * weightScale[j] = max|w[j, :]| / 127, data = clamp(round(w · 127 / max|w[j, :]|), −127, 127).
 */
export function quantizeWeightPerChannel(raw: RawWeight, n: number, k: number): Int8LinearData {
  if (raw.data.length !== n * k) {
    throw new Int8WeightError(
      `quantizeWeightPerChannel: weight has ${raw.data.length} elements, expected n·k = ${n * k}`,
    );
  }
  const row = new Float32Array(k);
  const u32 = new Uint32Array(row.buffer);
  const data = new Int8Array(n * k);
  const weightScale = new Float32Array(n);
  const q = new Int32Array(k);
  const scale = new Float32Array(1);
  for (let j = 0; j < n; j++) {
    if (raw.dtype === 'f32') row.set(raw.data.subarray(j * k, (j + 1) * k));
    else for (let c = 0; c < k; c++) u32[c] = raw.data[j * k + c]! << 16;
    quantizeDynamic(q, scale, row, 1, k);
    weightScale[j] = scale[0]!;
    for (let c = 0; c < k; c++) data[j * k + c] = q[c]!;
  }
  return { data, scheme: { kind: 'dynamic', weightScale } };
}

/**
 * The float values an int8 weight stands for: w[j, c] = data[j, c] · weightScale[j] (dynamic), or
 * data[j, c] · deqScale[j] / inputScale (static: deqScale = inputScale · weightScale). `out`: [n, k].
 */
export function dequantizeInt8(weight: Int8LinearData, n: number, k: number): Float32Array {
  const out = new Float32Array(n * k);
  const s = weight.scheme;
  for (let j = 0; j < n; j++) {
    const scale =
      s.kind === 'dynamic' ? s.weightScale[j]! : Math.fround(s.deqScale[j]! / Math.fround(s.inputScale));
    for (let c = 0; c < k; c++) out[j * k + c] = Math.fround(weight.data[j * k + c]! * scale);
  }
  return out;
}
