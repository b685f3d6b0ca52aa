// The engine core: continuous batching, one step at a time. A step is
//   plan = scheduler.schedule() → batches.prepare(plan) → executor.execute → sample → stop checks →
//   scheduler.updateFromOutput
// Requests join and leave between steps; each accepted request ends with a result or an error.
//
// With data parallelism (vLLM's --data-parallel-size) the engine holds one replica per data-parallel rank:
// its own scheduler, KV cache (on its ranks) and prefix cache, so the replicas are independent engines that
// happen to share the MoE layers. A new request goes to the least-loaded replica; every step schedules each
// replica and the executor runs all their batches at once (a replica without work runs an empty batch, so
// the shared MoE layers' collectives still meet), then each replica's requests are sampled and advanced.

import { ContextLengthExceededError, InvalidRequestError, KVCacheCapacityError } from '../core/errors.js';
import type { EngineRequest, FinishReason } from '../core/request.js';
import type { Scheduler } from '../core/scheduler.js';
import type {
  ExecutorOutput,
  RequestStepOutput,
  SchedulerOutput,
  SchedulerStats,
} from '../core/scheduler-output.js';
import { CollectiveError } from '../distributed/communicator.js';
import type { BatchBuilder, BatchLogits } from '../executor/batch-builder.js';
import type { ModelExecutor, StepTimingStats } from '../executor/executor.js';
import type { Kernels } from '../kernels/kernels.js';
import type { LoadedModel } from '../models/model-loader.js';
import { computeTokenLogprobs, type TokenLogprobs } from '../sampling/logprobs.js';
import { Sampler } from '../sampling/sampler.js';
import type { SamplingParams } from '../sampling/sampling-params.js';
import { createRequestRng, SamplingRng } from '../sampling/sampling-rng.js';
import { RequestSamplingState } from '../sampling/sampling-state.js';
import type { Tokenizer } from '../tokenizer/tokenizer.js';
import { IncrementalDetokenizer } from './detokenizer.js';
import { EngineRequestState, type RequestUpdate } from './request-state.js';
import { StopChecker } from './stop-checker.js';
import { StopStringsError } from './stop-string-matcher.js';

/** A request the engine cannot accept: says what is wrong. Maps to HTTP 400. */
export class RequestRejectedError extends Error {
  constructor(
    message: string,
    readonly param: string | null = null,
  ) {
    super(message);
    this.name = 'RequestRejectedError';
  }
}

/** One data-parallel engine replica: its scheduler and the builder of its batches. */
export interface EngineReplica {
  readonly scheduler: Scheduler;
  readonly batches: BatchBuilder;
}

export interface EngineParts {
  readonly loaded: LoadedModel;
  readonly kernels: Kernels;
  /** One per data-parallel rank (the executor's numReplicas). */
  readonly replicas: readonly EngineReplica[];
  readonly executor: ModelExecutor;
  readonly maxModelLen: number;
  readonly seed: number;
  /** Clock for arrival times and metrics (injectable for tests). */
  readonly now?: () => number;
  /** The follower ranks, when the engine has more than one. */
  readonly rankWorkers?: RankKiller | null;
}

/** What the engine holds of its follower ranks: a way to end one (fault injection). */
export interface RankKiller {
  kill(rank: number): Promise<void>;
}

/** Counters the metrics endpoint reads. */
export interface EngineCounters {
  promptTokens: number;
  generationTokens: number;
  numFinished: number;
  numSteps: number;
}

export class LLMEngine {
  readonly loaded: LoadedModel;
  readonly tokenizer: Tokenizer;
  readonly maxModelLen: number;
  readonly kernels: Kernels;
  private readonly replicas: readonly EngineReplica[];
  /** The replica each live request runs on, and each replica's live requests. */
  private readonly replicaOf = new Map<string, EngineReplica>();
  private readonly loads = new Map<EngineReplica, number>();
  private readonly executor: ModelExecutor;
  private readonly sampler: Sampler;
  private readonly engineRng: SamplingRng;
  private readonly states = new Map<string, EngineRequestState>();
  private readonly eosTokenIds: readonly number[];
  private readonly now: () => number;
  private nextId = 0;
  readonly counters: EngineCounters = { promptTokens: 0, generationTokens: 0, numFinished: 0, numSteps: 0 };
  /** Why the engine can no longer run steps (a rank died), or null while healthy. */
  private deadReason: string | null = null;
  private readonly deathListeners: ((reason: string) => void)[] = [];
  /** See firstScheduledInLastStep. */
  private lastFirstScheduled: readonly string[] = [];
  /**
   * The follower ranks' handle, with more than one rank (else null). Fault injection: `kill(rank)` ends a
   * rank as a crash would (the engine then dies, see markDead).
   */
  readonly rankWorkers: RankKiller | null;

  constructor(parts: EngineParts) {
    this.loaded = parts.loaded;
    this.tokenizer = parts.loaded.tokenizer;
    this.kernels = parts.kernels;
    this.replicas = parts.replicas;
    this.rankWorkers = parts.rankWorkers ?? null;
    if (this.replicas.length !== parts.executor.numReplicas || this.replicas.length < 1) {
      throw new RangeError(
        `${this.replicas.length} engine replica(s) for an executor of ${parts.executor.numReplicas}`,
      );
    }
    for (const r of this.replicas) this.loads.set(r, 0);
    this.executor = parts.executor;
    this.maxModelLen = parts.maxModelLen;
    const argmaxOut = new Int32Array(1);
    this.sampler = new Sampler(parts.loaded.config.vocabSize, {
      argmax: (row) => {
        parts.kernels.argmax(argmaxOut, row, 1, row.length);
        return argmaxOut[0]!;
      },
    });
    this.engineRng = new SamplingRng(parts.seed);
    this.now = parts.now ?? (() => performance.now() / 1000);
    const eos = new Set(parts.loaded.config.eosTokenIds);
    if (this.tokenizer.eosTokenId !== null) eos.add(this.tokenizer.eosTokenId);
    this.eosTokenIds = [...eos];
  }

  /**
   * Accepts a request (throws `RequestRejectedError` for input it can never serve). Returns its id.
   * `params` must come from `resolveSamplingParams` (n = 1: fan out n > 1 before calling).
   */
  addRequest(promptTokenIds: readonly number[], params: SamplingParams, requestId?: string): string {
    const id = requestId ?? `req-${this.nextId++}`;
    const V = this.loaded.config.vocabSize;
    if (promptTokenIds.length === 0)
      throw new RequestRejectedError('the prompt is empty; give at least one token', 'prompt');
    for (const t of promptTokenIds) {
      if (!Number.isInteger(t) || t < 0 || t >= V) {
        throw new RequestRejectedError(
          `token id ${t} is out of vocabulary (valid ids: 0..${V - 1})`,
          'prompt',
        );
      }
    }
    const maxTokens = params.maxTokens ?? this.maxModelLen - promptTokenIds.length;
    if (promptTokenIds.length >= this.maxModelLen || maxTokens < 1) {
      throw new RequestRejectedError(
        `This model's maximum context length is ${this.maxModelLen} tokens. However, your request has ` +
          `${promptTokenIds.length} input tokens. Please reduce the length of the input messages.`,
        'prompt',
      );
    }
    // All or nothing: every piece of the request's state is built before the scheduler hears of it, so
    // a request that cannot be built is refused alone and leaves no trace.
    const parts = this.buildRequestParts(promptTokenIds, params);
    // The least-loaded replica (the first of equals) takes it.
    let replica = this.replicas[0]!;
    for (const r of this.replicas) if (this.loads.get(r)! < this.loads.get(replica)!) replica = r;
    const arrivalTime = this.now();
    let request: EngineRequest;
    try {
      request = replica.scheduler.addRequest({
        requestId: id,
        promptTokenIds,
        maxTokens,
        arrivalTime,
        skipPrefixCacheHits: params.promptLogprobs !== null,
      });
    } catch (e) {
      if (
        e instanceof ContextLengthExceededError ||
        e instanceof KVCacheCapacityError ||
        e instanceof InvalidRequestError
      ) {
        throw new RequestRejectedError(
          e.message,
          e instanceof ContextLengthExceededError ? 'max_tokens' : null,
        );
      }
      throw e;
    }
    this.states.set(id, new EngineRequestState(request, params, parts.sampling, parts.stop, arrivalTime));
    this.replicaOf.set(id, replica);
    this.loads.set(replica, this.loads.get(replica)! + 1);
    replica.batches.addRequest(id, {
      numPromptTokens: promptTokenIds.length,
      wantsPromptLogits: params.promptLogprobs !== null,
    });
    this.counters.promptTokens += promptTokenIds.length;
    return id;
  }

  /**
   * The engine's own parts of a request's state: sampling state and generator, detokenizer, stop checker
   * (its automaton). Touches nothing shared but the engine's generator. A stop list the automaton cannot
   * take is a RequestRejectedError.
   */
  private buildRequestParts(
    promptTokenIds: readonly number[],
    params: SamplingParams,
  ): { sampling: RequestSamplingState; stop: StopChecker } {
    const detok = new IncrementalDetokenizer(this.tokenizer, {
      skipSpecialTokens: params.skipSpecialTokens,
      promptTokenIds,
    });
    let stop: StopChecker;
    try {
      stop = new StopChecker(detok, params, {
        eosTokenIds: this.eosTokenIds,
        maxModelLen: this.maxModelLen,
        numPromptTokens: promptTokenIds.length,
      });
    } catch (e) {
      if (e instanceof StopStringsError) throw new RequestRejectedError(e.message, 'stop');
      throw e;
    }
    const rng = createRequestRng(params.seed, this.engineRng);
    const sampling = new RequestSamplingState(params, rng, { promptTokenIds, eosTokenIds: this.eosTokenIds });
    return { sampling, stop };
  }

  /** Cancels a request wherever it is; its KV blocks return at once. Returns its final update, if live. */
  abort(requestId: string): RequestUpdate | null {
    const state = this.states.get(requestId);
    if (!state) return null;
    this.replicaOf.get(requestId)!.scheduler.abort(requestId);
    state.finishReason = 'abort';
    return this.finalise(state, [], null);
  }

  /**
   * How many steps ran, how many were split into two micro-batches (dual-batch overlap), and how long
   * their collectives ran under compute (dbo/dbo-forward.ts DboStats).
   */
  get dboStats(): { readonly steps: number; readonly splitSteps: number; readonly overlapMs: number } {
    return this.executor.dboStats;
  }

  /** The driver's time in the model's forward and the part spent waiting on collectives (benchmarks). */
  get stepTiming(): StepTimingStats {
    return this.executor.stepTiming;
  }

  /** False once a rank has died: every step fails its requests. */
  get isHealthy(): boolean {
    return this.deadReason === null;
  }

  /** Why the engine is dead, or null. */
  get failure(): string | null {
    return this.deadReason;
  }

  /** Marks the engine dead (a rank died); the next step fails every request with `reason`. */
  markDead(reason: string): void {
    if (this.deadReason !== null) return;
    this.deadReason = reason;
    for (const l of this.deathListeners.splice(0)) l(reason);
  }

  /** Calls `listener` once when the engine dies. */
  onDead(listener: (reason: string) => void): void {
    if (this.deadReason !== null) listener(this.deadReason);
    else this.deathListeners.push(listener);
  }

  hasUnfinishedRequests(): boolean {
    return this.states.size > 0;
  }

  get numUnfinishedRequests(): number {
    return this.states.size;
  }

  /** Scheduler statistics over all replicas (KV usage: their mean). */
  stats(): SchedulerStats {
    const all = this.replicaStats();
    const sum = (f: (s: SchedulerStats) => number) => all.reduce((a, s) => a + f(s), 0);
    return {
      numRunning: sum((s) => s.numRunning),
      numWaiting: sum((s) => s.numWaiting),
      numPreemptedWaiting: sum((s) => s.numPreemptedWaiting),
      kvCacheUsage: sum((s) => s.kvCacheUsage) / all.length,
      prefixCacheQueries: sum((s) => s.prefixCacheQueries),
      prefixCacheHits: sum((s) => s.prefixCacheHits),
      numPreemptions: sum((s) => s.numPreemptions),
      numPrefixCacheEvictions: sum((s) => s.numPrefixCacheEvictions),
    };
  }

  /** Each data-parallel replica's scheduler statistics. */
  replicaStats(): SchedulerStats[] {
    return this.replicas.map((r) => r.scheduler.stats());
  }

  /**
   * Runs one step; returns the updates of every request that progressed or finished. A failure of the
   * model step itself (a kernel, a collective) is fatal: the engine is dead and every request fails. A
   * failure that concerns one request (its sampling, detokenizing, stop checking) fails that request alone.
   */
  async step(): Promise<RequestUpdate[]> {
    this.lastFirstScheduled = [];
    if (this.deadReason !== null) return this.failAll(`the engine is dead: ${this.deadReason}`);
    const plans = this.schedule();
    if (plans === null) return [];
    let results: BatchLogits[];
    try {
      results = await this.execute(plans);
    } catch (e) {
      return this.failStep(plans, e as Error);
    }
    return this.processOutputs(plans, results);
  }

  /** The requests the last step scheduled for the first time (their queueing ended with that step). */
  get firstScheduledInLastStep(): readonly string[] {
    return this.lastFirstScheduled;
  }

  /**
   * Each replica's scheduler plans its part of the step; null (and the schedulers told so) when no
   * replica has anything to run.
   */
  private schedule(): SchedulerOutput[] | null {
    const plans = this.replicas.map((r) => r.scheduler.schedule());
    this.lastFirstScheduled = plans.flatMap((p) =>
      p.scheduledRequests.filter((r) => r.kind === 'new').map((r) => r.requestId),
    );
    if (plans.every((p) => p.totalNumScheduledTokens === 0)) {
      for (const r of this.replicas) r.scheduler.updateFromOutput({ sampledTokenIds: new Map() });
      return null;
    }
    return plans;
  }

  /**
   * The data-parallel fan-out: each replica's plan becomes a batch, the executor runs all of them in one
   * forward over the ranks, and each replica gets back its logits.
   */
  private async execute(plans: readonly SchedulerOutput[]): Promise<BatchLogits[]> {
    const prepared = plans.map((p, i) => this.replicas[i]!.batches.prepare(p));
    const logits = await this.executor.execute(prepared.map((s) => s.batch));
    return prepared.map((s, i) => this.replicas[i]!.batches.collect(s, logits[i]!));
  }

  /** Prompt log-probs, sampling and stop checks, then each scheduler's update; the step's updates. */
  private processOutputs(
    plans: readonly SchedulerOutput[],
    results: readonly BatchLogits[],
  ): RequestUpdate[] {
    this.counters.numSteps++;
    this.recordPromptLogprobs(results);
    const { outputs, newLogprobs } = this.sampleAndCheckStops(plans, results);
    const stepOutputs = this.replicas.flatMap((r) => r.scheduler.updateFromOutput(outputs.get(r)!));
    return this.toUpdates(stepOutputs, newLogprobs);
  }

  /**
   * The model step failed: its requests fail with the cause, the engine is dead (a failed collective
   * names the lost rank) and every other request fails too.
   */
  private failStep(plans: readonly SchedulerOutput[], e: Error): RequestUpdate[] {
    const message = `model step failed: ${e.message}`;
    const updates: RequestUpdate[] = [];
    plans.forEach((plan, i) => {
      this.replicas[i]!.scheduler.updateFromOutput({
        sampledTokenIds: new Map(),
        finished: new Map(plan.scheduledRequests.map((r) => [r.requestId, 'error' as FinishReason])),
      });
      for (const r of plan.scheduledRequests) {
        const state = this.states.get(r.requestId);
        if (!state) continue;
        state.finishReason = 'error';
        state.error = message;
        updates.push(this.finalise(state, [], null));
      }
    });
    this.markDead(e instanceof CollectiveError ? e.message : message);
    updates.push(...this.failAll(`the engine is dead: ${this.deadReason}`));
    return updates;
  }

  /** Prompt log-probs, computed once per position even when a preempted request recomputes its prompt. */
  private recordPromptLogprobs(results: readonly BatchLogits[]): void {
    const V = this.loaded.config.vocabSize;
    for (const [id, pl] of results.flatMap((r) => [...r.promptLogits])) {
      const state = this.states.get(id);
      if (!state?.promptLogprobs) continue;
      for (let i = 0; i < pl.count; i++) {
        const target = pl.firstTarget + i;
        if (target !== state.promptLogprobs.length) continue;
        const row = pl.rows.subarray(i * V, (i + 1) * V);
        state.promptLogprobs.push(
          computeTokenLogprobs(row, state.promptTokenIds[target]!, state.params.promptLogprobs!),
        );
      }
    }
  }

  /**
   * Samples one token for every request due to sample, replica after replica in plan order, and runs its
   * stop checks; returns what each replica's scheduler must hear. A request whose sampling or stop check
   * throws is finished with 'error' alone.
   */
  private sampleAndCheckStops(
    plans: readonly SchedulerOutput[],
    results: readonly BatchLogits[],
  ): { outputs: Map<EngineReplica, ExecutorOutput>; newLogprobs: Map<string, TokenLogprobs> } {
    const outputs = new Map(
      this.replicas.map((r) => [
        r,
        { sampledTokenIds: new Map<string, number[]>(), finished: new Map<string, FinishReason>() },
      ]),
    );
    const newLogprobs = new Map<string, TokenLogprobs>();
    plans.forEach((plan, i) => {
      const out = outputs.get(this.replicas[i]!)!;
      for (const r of plan.scheduledRequests) {
        const state = this.states.get(r.requestId);
        const row = results[i]!.sampleLogits.get(r.requestId);
        if (!r.samplesToken || !state || !row) continue;
        try {
          const sampled = this.sampler.sample(row, [state.sampling]);
          const token = sampled.sampledTokenIds[0]!;
          state.sampling.appendOutputToken(token);
          const lp = sampled.logprobs[0];
          if (lp && state.logprobs) {
            state.logprobs.push(lp);
            state.cumulativeLogprob += lp.logprob;
            newLogprobs.set(r.requestId, lp);
          }
          const finish = state.stopChecker.appendToken(token);
          out.sampledTokenIds.set(r.requestId, [token]);
          if (finish) {
            state.finishReason = finish.finishReason;
            state.stopReason = finish.stopReason;
            out.finished.set(r.requestId, finish.finishReason);
          }
        } catch (e) {
          out.sampledTokenIds.delete(r.requestId);
          newLogprobs.delete(r.requestId);
          state.finishReason = 'error';
          state.error = `the request failed: ${(e as Error).message}`;
          out.finished.set(r.requestId, 'error');
        }
      }
    });
    return { outputs, newLogprobs };
  }

  /** The step's updates from the schedulers' outputs: progress, or the last update of a finished request. */
  private toUpdates(
    stepOutputs: readonly RequestStepOutput[],
    newLogprobs: ReadonlyMap<string, TokenLogprobs>,
  ): RequestUpdate[] {
    const updates: RequestUpdate[] = [];
    for (const out of stepOutputs) {
      const state = this.states.get(out.requestId);
      if (!state) continue;
      this.counters.generationTokens += out.newTokenIds.length;
      const lp = newLogprobs.get(out.requestId);
      if (out.finishReason !== null) {
        state.finishReason ??= out.finishReason;
        updates.push(this.finalise(state, out.newTokenIds, lp ? [lp] : null));
      } else {
        updates.push({
          requestId: state.requestId,
          newTokenIds: out.newTokenIds,
          textDelta: state.stopChecker.takeStreamDelta(),
          newLogprobs: lp ? [lp] : state.logprobs ? [] : null,
          finished: false,
          finishReason: null,
          stopReason: null,
          error: null,
          state,
        });
      }
    }
    return updates;
  }

  /** Fails every live request with `message` (a dead engine). */
  private failAll(message: string): RequestUpdate[] {
    const updates: RequestUpdate[] = [];
    for (const state of [...this.states.values()]) {
      this.replicaOf.get(state.requestId)!.scheduler.abort(state.requestId);
      state.finishReason = 'error';
      state.error = message;
      updates.push(this.finalise(state, [], null));
    }
    return updates;
  }

  /** Drops a finished request's state and builds its last update. */
  private finalise(
    state: EngineRequestState,
    newTokenIds: readonly number[],
    lp: TokenLogprobs[] | null,
  ): RequestUpdate {
    this.states.delete(state.requestId);
    const replica = this.replicaOf.get(state.requestId);
    if (replica) {
      replica.batches.removeRequest(state.requestId);
      this.replicaOf.delete(state.requestId);
      this.loads.set(replica, this.loads.get(replica)! - 1);
    }
    this.counters.numFinished++;
    return {
      requestId: state.requestId,
      newTokenIds,
      textDelta: state.stopChecker.takeStreamDelta(),
      newLogprobs: lp ?? (state.logprobs ? [] : null),
      finished: true,
      finishReason: state.finishReason,
      stopReason: state.stopReason,
      error: state.error,
      state,
    };
  }

  /** Stops the other ranks, then releases the kernels' threads and memory. */
  async close(): Promise<void> {
    await this.executor.close();
    await this.kernels.dispose();
  }
}
