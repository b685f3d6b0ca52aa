// The scheduling core's public surface: requests, the scheduler and its typed step contract, the KV cache
// manager and block pool underneath. Pure TypeScript: no Node APIs, no timers, no WebAssembly.

export { BlockPool, BlockPoolError, type CachedBlockContent, KVBlock } from './block-pool.js';
export {
  ContextLengthExceededError,
  InvalidRequestError,
  KVCacheCapacityError,
  SchedulerConfigError,
  SchedulerContractError,
} from './errors.js';
export {
  type ComputedBlocks,
  KVCacheManager,
  type KVCacheManagerConfig,
  KVCacheManagerError,
  NO_COMPUTED_BLOCKS,
} from './kv-cache-manager.js';
export { type BlockHash, extendBlockHashes, hashBlockTokens } from './prefix-hash.js';
export {
  EngineRequest,
  type FinishReason,
  finishedStatus,
  isFinishedStatus,
  type RequestInit,
  type RequestStatus,
} from './request.js';
export { Scheduler } from './scheduler.js';
export {
  resolveSchedulerConfig,
  type SchedulerConfig,
  type SchedulerConfigInput,
} from './scheduler-config.js';
export type {
  ExecutorOutput,
  RequestStepOutput,
  ScheduledKind,
  ScheduledRequest,
  SchedulerOutput,
  SchedulerStats,
} from './scheduler-output.js';
