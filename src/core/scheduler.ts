// Continuous-batching scheduler (after vLLM v1): each step gives the token budget first to running
// requests (decodes and unfinished prompt chunks, in running order), then admits waiting requests in
// arrival order, chunking a prompt that does not fit the rest of the budget. When a running request
// cannot get a KV block, the newest running request is preempted by recompute: its blocks are freed and
// it goes back to the front of the waiting queue, to be re-prefilled (prompt and outputs) later.
//
// Who decides a finish: the scheduler finishes a request with 'length' when it reaches max_tokens or
// the model's context length; the engine decides everything else (EOS, stop tokens and strings, errors,
// client aborts) and reports it through ExecutorOutput.finished, finish() or abort().

import {
  ContextLengthExceededError,
  InvalidRequestError,
  KVCacheCapacityError,
  SchedulerContractError,
} from './errors.js';
import { KVCacheManager } from './kv-cache-manager.js';
import { EngineRequest, type FinishReason, finishedStatus, type RequestInit } from './request.js';
import {
  resolveSchedulerConfig,
  type SchedulerConfig,
  type SchedulerConfigInput,
} from './scheduler-config.js';
import type {
  ExecutorOutput,
  RequestStepOutput,
  ScheduledKind,
  ScheduledRequest,
  SchedulerOutput,
  SchedulerStats,
} from './scheduler-output.js';

/** A request scheduled in the last output whose update has not come back yet. */
interface InFlightEntry {
  readonly request: EngineRequest;
  readonly samplesToken: boolean;
}

/** Decides, step by step, which tokens of which requests the model computes. Pure and deterministic. */
export class Scheduler {
  readonly config: SchedulerConfig;
  readonly kvCacheManager: KVCacheManager;
  /** Live (unfinished) requests by id. */
  private readonly requests = new Map<string, EngineRequest>();
  /** FCFS queue; preempted requests are put back at the front. */
  private readonly waiting: EngineRequest[] = [];
  /** Admission order; the last one is preempted first. */
  private readonly running: EngineRequest[] = [];
  private finishedSinceLastStep: string[] = [];
  private inFlight: Map<string, InFlightEntry> | null = null;
  private nextStepIndex = 0;
  private nextArrivalIndex = 0;
  private prefixCacheQueries = 0;
  private prefixCacheHits = 0;
  private numPreemptions = 0;

  constructor(config: SchedulerConfigInput) {
    this.config = resolveSchedulerConfig(config);
    this.kvCacheManager = new KVCacheManager({
      blockSize: this.config.blockSize,
      numBlocks: this.config.numBlocks,
      enablePrefixCaching: this.config.enablePrefixCaching,
    });
  }

  /**
   * Validates and queues a request. Throws InvalidRequestError (bad input or reused id),
   * ContextLengthExceededError (prompt + max_tokens > maxModelLen) or KVCacheCapacityError (it would
   * need more blocks than the whole cache).
   */
  addRequest(init: RequestInit): EngineRequest {
    const { requestId, promptTokenIds, maxTokens } = init;
    if (typeof requestId !== 'string' || requestId.length === 0) {
      throw new InvalidRequestError('requestId must be a non-empty string');
    }
    if (this.requests.has(requestId)) {
      throw new InvalidRequestError(`request id ${requestId} is already in use by a live request`);
    }
    if (promptTokenIds.length === 0) {
      throw new InvalidRequestError(`request ${requestId} has an empty prompt; at least one token is needed`);
    }
    for (const t of promptTokenIds) {
      if (!Number.isSafeInteger(t) || t < 0) {
        throw new InvalidRequestError(`request ${requestId} has token id ${t}; ids must be integers >= 0`);
      }
    }
    if (!Number.isInteger(maxTokens) || maxTokens < 1) {
      throw new InvalidRequestError(`max_tokens must be an integer >= 1, got ${maxTokens}`);
    }
    const { maxModelLen, blockSize, numBlocks } = this.config;
    if (promptTokenIds.length + maxTokens > maxModelLen) {
      throw new ContextLengthExceededError(maxModelLen, promptTokenIds.length, maxTokens);
    }
    // The last sampled token is never fed back, so at most prompt + maxTokens - 1 positions hold KV.
    const numKVTokens = promptTokenIds.length + maxTokens - 1;
    const numBlocksNeeded = this.kvCacheManager.numBlocksFor(numKVTokens);
    if (numBlocksNeeded > numBlocks) {
      throw new KVCacheCapacityError(requestId, numKVTokens, blockSize, numBlocksNeeded, numBlocks);
    }
    const request = new EngineRequest(init, this.nextArrivalIndex++);
    this.requests.set(requestId, request);
    this.waiting.push(request);
    return request;
  }

  /** Aborts a live request wherever it is; its blocks are freed at once. False if it is not live. */
  abort(requestId: string): boolean {
    return this.finish(requestId, 'abort');
  }

  /** Finishes a live request with the given reason and frees its blocks. False if it is not live. */
  finish(requestId: string, reason: FinishReason): boolean {
    const request = this.requests.get(requestId);
    if (request === undefined) return false;
    this.finishRequest(request, reason);
    return true;
  }

  /** The live request with this id (read it, do not change it), or undefined once finished. */
  getRequest(requestId: string): EngineRequest | undefined {
    return this.requests.get(requestId);
  }

  /** Live requests (waiting, preempted or running). */
  get numUnfinishedRequests(): number {
    return this.requests.size;
  }

  hasUnfinishedRequests(): boolean {
    return this.requests.size > 0;
  }

  /** Plans the next step. Must be followed by updateFromOutput before the next schedule(). */
  schedule(): SchedulerOutput {
    if (this.inFlight !== null) {
      throw new SchedulerContractError(
        'schedule() was called again before updateFromOutput() reported the previous step',
      );
    }
    const kv = this.kvCacheManager;
    let budget = this.config.maxNumBatchedTokens;
    const scheduled: ScheduledRequest[] = [];
    const preemptedIds: string[] = [];

    // Running requests first, in order. A request that cannot get its blocks preempts the newest.
    let index = 0;
    while (index < this.running.length && budget > 0) {
      const request = this.running[index]!;
      const numNew = Math.min(request.numTokens - request.numComputedTokens, budget);
      if (numNew <= 0) {
        index++;
        continue;
      }
      let newBlockIds = kv.allocateSlots(request, numNew);
      while (newBlockIds === null) {
        const victim = this.running.pop()!;
        this.preempt(victim);
        preemptedIds.push(victim.requestId);
        if (victim === request) break;
        newBlockIds = kv.allocateSlots(request, numNew);
      }
      if (newBlockIds === null) break;
      scheduled.push(this.record(request, numNew, newBlockIds, 'continuing'));
      budget -= numNew;
      index++;
    }

    // Then waiting requests, first come first served, unless someone was just preempted for lack of room.
    while (
      preemptedIds.length === 0 &&
      this.waiting.length > 0 &&
      budget > 0 &&
      this.running.length < this.config.maxNumSeqs
    ) {
      const request = this.waiting[0]!;
      const computed = kv.getComputedBlocks(request);
      let numNew = request.numTokens - computed.numTokens;
      if (numNew > budget && !this.config.enableChunkedPrefill) break;
      numNew = Math.min(numNew, budget);
      const newBlockIds = kv.allocateSlots(request, numNew, computed);
      if (newBlockIds === null) break;
      this.waiting.shift();
      const kind: ScheduledKind = request.status === 'preempted' ? 'resumed' : 'new';
      if (request.numCachedTokens < 0) request.numCachedTokens = computed.numTokens;
      if (this.config.enablePrefixCaching) {
        this.prefixCacheQueries += request.numTokens;
        this.prefixCacheHits += computed.numTokens;
      }
      request.numComputedTokens = computed.numTokens;
      request.status = 'running';
      this.running.push(request);
      scheduled.push(this.record(request, numNew, newBlockIds, kind));
      budget -= numNew;
    }

    const inFlight = new Map<string, InFlightEntry>();
    for (const s of scheduled) {
      inFlight.set(s.requestId, { request: this.requests.get(s.requestId)!, samplesToken: s.samplesToken });
    }
    this.inFlight = inFlight.size > 0 ? inFlight : null;
    const output: SchedulerOutput = {
      stepIndex: this.nextStepIndex++,
      scheduledRequests: scheduled,
      totalNumScheduledTokens: this.config.maxNumBatchedTokens - budget,
      finishedRequestIds: this.finishedSinceLastStep,
      preemptedRequestIds: preemptedIds,
    };
    this.finishedSinceLastStep = [];
    return output;
  }

  /**
   * Applies the result of the last scheduled step: appends sampled tokens, registers newly computed full
   * blocks in the prefix cache, finishes requests (engine-given reasons, or 'length' at max_tokens or
   * maxModelLen) and frees their blocks. Returns one entry per request that got tokens or finished.
   */
  updateFromOutput(output: ExecutorOutput): RequestStepOutput[] {
    const inFlight = this.inFlight ?? new Map<string, InFlightEntry>();
    this.checkRunnerOutput(inFlight, output);
    this.inFlight = null;
    const results: RequestStepOutput[] = [];
    for (const [id, entry] of inFlight) {
      const request = entry.request;
      if (request.isFinished) continue;
      const engineReason = output.finished?.get(id) ?? null;
      const sampled = output.sampledTokenIds.get(id);
      const newTokenIds: number[] = [];
      let reason: FinishReason | null = null;
      for (const token of sampled ?? []) {
        request.appendOutputToken(token);
        newTokenIds.push(token);
        if (request.numOutputTokens >= request.maxTokens || request.numTokens >= this.config.maxModelLen) {
          reason = 'length';
          break;
        }
      }
      this.kvCacheManager.cacheComputedBlocks(request);
      if (engineReason !== null) reason = engineReason;
      if (reason !== null) this.finishRequest(request, reason);
      if (newTokenIds.length > 0 || reason !== null) {
        results.push({
          requestId: id,
          newTokenIds,
          finishReason: reason,
          numOutputTokens: request.numOutputTokens,
        });
      }
    }
    // Engine finishes for requests that were not in this step (e.g. a waiting request that failed).
    for (const [id, reason] of output.finished ?? []) {
      const request = this.requests.get(id);
      if (request === undefined || inFlight.has(id)) continue;
      this.finishRequest(request, reason);
      results.push({
        requestId: id,
        newTokenIds: [],
        finishReason: reason,
        numOutputTokens: request.numOutputTokens,
      });
    }
    return results;
  }

  /** Gauges and counters for metrics. */
  stats(): SchedulerStats {
    let numPreemptedWaiting = 0;
    for (const r of this.waiting) if (r.status === 'preempted') numPreemptedWaiting++;
    return {
      numRunning: this.running.length,
      numWaiting: this.waiting.length,
      numPreemptedWaiting,
      kvCacheUsage: this.kvCacheManager.usage,
      prefixCacheQueries: this.prefixCacheQueries,
      prefixCacheHits: this.prefixCacheHits,
      numPreemptions: this.numPreemptions,
      numPrefixCacheEvictions: this.kvCacheManager.pool.numEvictions,
    };
  }

  /** Ids of running requests in running order (the last is the next preemption victim). */
  runningRequestIds(): string[] {
    return this.running.map((r) => r.requestId);
  }

  /** Ids of waiting requests in queue order. */
  waitingRequestIds(): string[] {
    return this.waiting.map((r) => r.requestId);
  }

  /** Drops all cached prefixes; only possible when no request holds blocks (returns false otherwise). */
  resetPrefixCache(): boolean {
    return this.kvCacheManager.resetPrefixCache();
  }

  /** Throws SchedulerContractError, changing nothing, if the executor output does not fit the step in flight. */
  private checkRunnerOutput(inFlight: ReadonlyMap<string, InFlightEntry>, output: ExecutorOutput): void {
    for (const [id, tokens] of output.sampledTokenIds) {
      const entry = inFlight.get(id);
      if (tokens.length > 0 && (entry === undefined || (!entry.samplesToken && !entry.request.isFinished))) {
        throw new SchedulerContractError(
          `tokens were sampled for request ${id}, which was not due to sample`,
        );
      }
    }
    for (const [id, entry] of inFlight) {
      if (!entry.samplesToken || entry.request.isFinished || output.finished?.has(id)) continue;
      if ((output.sampledTokenIds.get(id)?.length ?? 0) === 0) {
        throw new SchedulerContractError(`no token was sampled for request ${id}, which was due to sample`);
      }
    }
  }

  /** Builds a request's share of the step and advances its computed-token count. */
  private record(
    request: EngineRequest,
    numNew: number,
    newBlockIds: number[],
    kind: ScheduledKind,
  ): ScheduledRequest {
    const start = request.numComputedTokens;
    request.numComputedTokens = start + numNew;
    return {
      requestId: request.requestId,
      kind,
      tokenIds: request.allTokenIds.slice(start, start + numNew),
      startPosition: start,
      numScheduledTokens: numNew,
      blockIds: this.kvCacheManager.getBlockIds(request.requestId),
      newBlockIds,
      samplesToken: start + numNew === request.numTokens,
    };
  }

  /** Preempts by recompute: frees its KV, puts it at the front of the waiting queue. */
  private preempt(request: EngineRequest): void {
    this.kvCacheManager.free(request);
    request.status = 'preempted';
    request.numComputedTokens = 0;
    request.numPreemptions++;
    this.numPreemptions++;
    this.waiting.unshift(request);
  }

  private finishRequest(request: EngineRequest, reason: FinishReason): void {
    const queue = request.status === 'running' ? this.running : this.waiting;
    const at = queue.indexOf(request);
    if (at >= 0) queue.splice(at, 1);
    this.kvCacheManager.free(request);
    request.status = finishedStatus(reason);
    request.finishReason = reason;
    this.requests.delete(request.requestId);
    this.finishedSinceLastStep.push(request.requestId);
  }
}
