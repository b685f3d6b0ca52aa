// Duet's public API for Node.js services that embed the engine in-process: the package's `duet` entry
// point (package.json `exports`; `duet/server` and `duet/bench` are the server and the serving benchmark).

export type { EngineConfig } from './config/engine-config.js';
export type { EngineOptions } from './config/engine-options.js';
export type { DeepseekConfig } from './config/model-config.js';
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
export type { SamplingParams, SamplingParamsInput } from './sampling/sampling-params.js';
export type { ChatMessage } from './tokenizer/chat-template.js';
