// Everything this package takes from Duet, in one place: the platform and kernel contracts, and the
// WebAssembly CPU platform whose kernels serve the operators this package does not run natively. Inside
// Duet's repository it reaches Duet's build output by a relative path; a copy outside the repository
// imports the same names from the `duet` package instead.

export { checkInt8LinearData } from '../../../dist/src/kernels/int8-quant.js';
export type {
  Int8LinearData,
  Kernels,
  LinearWeight,
  RawWeight,
  WeightDType,
} from '../../../dist/src/kernels/kernels.js';
export { bf16ToF32, f32ToBf16 } from '../../../dist/src/kernels/kernels.js';
export { CpuPlatform } from '../../../dist/src/platforms/cpu/cpu-platform.js';
export type { KernelOptions, Platform } from '../../../dist/src/platforms/platform.js';

/**
 * What a platform package's entry module exports as `platformPlugin` (package.json: `"duet":
 * { "contractVersion": 1, "platforms": [{ "name", "entry" }] }`), as Duet's plugin loader expects it.
 */
export interface PlatformPlugin {
  readonly name: string;
  readonly contractVersion: 1;
  /** Rank among available platforms when no device is named: the highest wins (CPU 0, default 10). */
  readonly priority?: number;
  /** Whether the platform can run here, and why not when it cannot. */
  probe(): Promise<{ available: boolean; reason: string }>;
  create(): Promise<import('../../../dist/src/platforms/platform.js').Platform>;
}
