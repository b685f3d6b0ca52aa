// Duet's public API for Node.js services that embed the engine in-process: the package's `duet` entry
// point (package.json `exports`; `duet/server` and `duet/bench` are the server and the serving benchmark).
// Also everything a hardware platform or model plugin needs (docs/platforms.md): the platform, kernel,
// communicator and model contracts, the CPU platform to extend or delegate to, and the reference kernels.

export type { EngineConfig } from './config/engine-config.js';
export type { EngineOptions } from './config/engine-options.js';
export type { DeepseekConfig } from './config/model-config.js';
// The plugin contracts (docs/platforms.md).
export type {
  CollectiveHandle,
  CommBuffer,
  Communicator,
} from './distributed/communicator.js';
export { AsyncEngine, type AsyncEngineOptions } from './engine/async/async-engine.js';
export { createEngine } from './engine/create-engine.js';
export {
  type CompletionOutput,
  engineConfigFromLLMOptions,
  LLM,
  type LLMOptions,
  type PositionLogprobs,
  type RequestOutput,
} from './engine/llm.js';
export { LLMEngine, RequestRejectedError } from './engine/llm-engine.js';
export type { PromptInput } from './engine/prompt.js';
export type {
  HeadLinearWeight,
  Int8LinearData,
  Int8Scheme,
  Kernels,
  LinearDType,
  LinearWeight,
  RawWeight,
  WeightDType,
} from './kernels/kernels.js';
export { bf16ToF32, f32ToBf16 } from './kernels/kernels.js';
export { ReferenceKernels } from './kernels/reference/reference-kernels.js';
export type { ForwardBatch, SequenceSlice } from './layers/forward-batch.js';
export type { MlaKvCache } from './layers/mla-kv-cache.js';
export type { RankGroups } from './layers/rank-groups.js';
export { DeepseekForCausalLM, type DeepseekLoadOptions, type ForwardObserver } from './models/deepseek.js';
export {
  type CausalLM,
  defineModelPlugin,
  type ModelArchitecture,
  type ModelPlugin,
} from './models/model-registry.js';
export { CpuPlatform } from './platforms/cpu/cpu-platform.js';
export {
  type ComputeDType,
  type KernelOptions,
  PLATFORM_CONTRACT_VERSION,
  type Platform,
  type PlatformNotice,
} from './platforms/platform.js';
export { definePlatformPlugin, type PlatformPlugin, type PlatformProbe } from './platforms/plugin.js';
export type { SamplingParams, SamplingParamsInput } from './sampling/sampling-params.js';
export type { ChatMessage } from './tokenizer/chat-template.js';
