// What the sampler remembers about one request between steps: its parameters, its own random generator,
// the prompt tokens (repetition penalty) and the counts of generated tokens (penalties, min_tokens).

import type { SamplingParams } from './sampling-params.js';
import type { SamplingRng } from './sampling-rng.js';

/** Per-request sampling state. Call {@link appendOutputToken} with every token the request generates. */
export class RequestSamplingState {
  readonly params: SamplingParams;
  readonly rng: SamplingRng;
  /** Ids masked until min_tokens tokens exist: EOS (unless ignore_eos) and stop_token_ids. */
  readonly minTokensBlockedIds: readonly number[];
  /** Distinct prompt ids, kept only when the repetition penalty is on. */
  readonly promptTokenSet: ReadonlySet<number> | null;
  private readonly counts = new Map<number, number>();
  private numOutput = 0;

  constructor(
    params: SamplingParams,
    rng: SamplingRng,
    options: { readonly promptTokenIds: readonly number[]; readonly eosTokenIds: readonly number[] },
  ) {
    this.params = params;
    this.rng = rng;
    this.promptTokenSet = params.repetitionPenalty !== 1 ? new Set(options.promptTokenIds) : null;
    const blocked = new Set(params.stopTokenIds);
    if (!params.ignoreEos) for (const id of options.eosTokenIds) blocked.add(id);
    this.minTokensBlockedIds = [...blocked];
  }

  /** Number of tokens generated so far. */
  get numOutputTokens(): number {
    return this.numOutput;
  }

  /** Generated id → how many times it was generated. */
  get outputTokenCounts(): ReadonlyMap<number, number> {
    return this.counts;
  }

  /** Records one generated token. */
  appendOutputToken(tokenId: number): void {
    this.counts.set(tokenId, (this.counts.get(tokenId) ?? 0) + 1);
    this.numOutput++;
  }
}
