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
export type {
  PreparedWeightCache,
  WeightCacheKey,
  WeightCacheNotice,
  WeightCaching,
} from '../../../dist/src/kernels/weight-cache.js';
export { CpuPlatform } from '../../../dist/src/platforms/cpu/cpu-platform.js';
export type { ComputeDType, KernelOptions, Platform } from '../../../dist/src/platforms/platform.js';

export type { PlatformPlugin } from '../../../dist/src/platforms/plugin.js';
