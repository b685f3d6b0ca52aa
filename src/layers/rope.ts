// Rotary position embedding tables for DeepSeek's MLA, with YaRN context extension, computed the way
// DeepSeek's reference does (float32 inverse frequencies, YaRN blending of interpolated and extrapolated
// frequencies, mscale entering only the attention softmax scale).

import type { DeepseekConfig } from '../config/model-config.js';
import type { Kernels } from '../kernels/kernels.js';

const f = Math.fround;

/** YaRN: the rotary dimension at which a frequency completes `numRotations` turns over `maxLen`. */
function correctionDim(numRotations: number, dim: number, base: number, maxLen: number): number {
  return (dim * Math.log(maxLen / (numRotations * 2 * Math.PI))) / (2 * Math.log(base));
}

/** Inverse frequencies [rotaryDim / 2] after YaRN (when the config extends the context). */
export function ropeInverseFrequencies(config: DeepseekConfig): Float32Array {
  const dim = config.qkRopeHeadDim;
  const base = config.ropeTheta;
  const half = dim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = f(1 / f(base ** f((2 * i) / dim)));
  const y = config.ropeScaling;
  if (y && config.maxPositionEmbeddings > y.originalMaxPositionEmbeddings) {
    const low = Math.max(
      Math.floor(correctionDim(y.betaFast, dim, base, y.originalMaxPositionEmbeddings)),
      0,
    );
    let high = Math.min(
      Math.ceil(correctionDim(y.betaSlow, dim, base, y.originalMaxPositionEmbeddings)),
      dim - 1,
    );
    if (low === high) high += 0.001;
    for (let i = 0; i < half; i++) {
      const ramp = Math.min(Math.max(f((i - low) / (high - low)), 0), 1);
      const smooth = f(1 - ramp);
      inv[i] = f(f(f(inv[i]! / y.factor) * f(1 - smooth)) + f(inv[i]! * smooth));
    }
  }
  return inv;
}

/** The attention softmax scale: qk_head_dim^-0.5, times mscale² under YaRN. */
export function mlaSoftmaxScale(config: DeepseekConfig): number {
  let scale = (config.qkNopeHeadDim + config.qkRopeHeadDim) ** -0.5;
  const y = config.ropeScaling;
  if (y && config.maxPositionEmbeddings > y.originalMaxPositionEmbeddings) {
    const mscale = 0.1 * y.mscaleAllDim * Math.log(y.factor) + 1;
    scale *= mscale * mscale;
  }
  return scale;
}

/** Cosine and sine tables [maxPositions, rotaryDim / 2] for the `rope` kernel. */
export interface RopeTables {
  readonly cos: Float32Array;
  readonly sin: Float32Array;
  readonly maxPositions: number;
}

export function buildRopeTables(
  config: DeepseekConfig,
  maxPositions = config.maxPositionEmbeddings,
): RopeTables {
  const inv = ropeInverseFrequencies(config);
  const half = inv.length;
  const cos = new Float32Array(maxPositions * half);
  const sin = new Float32Array(maxPositions * half);
  for (let p = 0; p < maxPositions; p++) {
    for (let j = 0; j < half; j++) {
      const angle = f(p * inv[j]!);
      cos[p * half + j] = Math.cos(angle);
      sin[p * half + j] = Math.sin(angle);
    }
  }
  return { cos, sin, maxPositions };
}

/**
 * The tables copied into the kernels' memory (`kernels.allocate`), so that the `rope` kernel reads them in
 * place instead of copying both whole tables on every call.
 */
export function placeRopeTables(kernels: Kernels, tables: RopeTables): RopeTables {
  const cos = kernels.allocate(tables.cos.length);
  cos.set(tables.cos);
  const sin = kernels.allocate(tables.sin.length);
  sin.set(tables.sin);
  return { cos, sin, maxPositions: tables.maxPositions };
}
