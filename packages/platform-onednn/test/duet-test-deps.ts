// What the package's tests take from Duet's own tests and sources (the reference twins, the golden
// fixtures and the model), in one place: inside Duet's repository by relative path into its build.

export { DEFAULT_ENGINE_CONFIG } from '../../../dist/src/config/engine-config.js';
export {
  int8Accumulate,
  int8Linear,
  quantizeDynamic,
} from '../../../dist/src/kernels/int8-quant.js';
export type { Int8LinearData, Int8Scheme, Kernels } from '../../../dist/src/kernels/kernels.js';
export { ReferenceKernels } from '../../../dist/src/kernels/reference/reference-kernels.js';
export type { WeightCacheNotice } from '../../../dist/src/kernels/weight-cache.js';
export { MlaKvCache } from '../../../dist/src/layers/mla-kv-cache.js';
export { loadDeepseekConfig } from '../../../dist/src/loader/hf-config.js';
export { openSafetensors, openSafetensorsFile } from '../../../dist/src/loader/safetensors.js';
export { DeepseekForCausalLM } from '../../../dist/src/models/deepseek.js';
export { loadModel, resolveModel } from '../../../dist/src/models/model-loader.js';
export { prefillPrompt } from '../../../dist/src/models/prefill-prompt.js';
export {
  argmax,
  assertPrefillMatchesGolden,
  fixtureDir,
  loadGolden,
  logSoftmax,
} from '../../../dist/test/helpers/golden.js';
export { assertClose, EPS32, Rng } from '../../../dist/test/kernels/kernel-test-utils.js';
