// Dual-batch overlap's automatic off-switch: the driver measures what splitting buys and stops splitting
// where it does not pay. Splitting costs compute (two half-size micro-batches use the kernels less well,
// and each layer's hand-overs add work) and gains only the communication it hides; where communication is
// negligible (shared memory, a fast link) or the machine has no spare CPU for the communication threads,
// split steps are slower than one batch.
//
// The policy keeps, per kind of step (prefill or decode-only), the medians of the last few samples of
//   - the wall time per unit of cost (micro-batch.ts's attention cost) of one-batch and of split steps, and
//   - the share of a one-batch step the driver spends waiting on communication;
// and, for each step the thresholds allow to split:
//   1. warm-up: one batch, split, one batch (the first step of each mode is dropped: it pays for compiling
//      the code paths), then — unless 2. says no — split until it has `minSplitSamples` split samples;
//   2. runs one batch while communication is below `minCommShare` of a one-batch step (there is nothing
//      worth hiding; one-batch steps keep measuring it);
//   3. otherwise splits until split steps are more than `maxLoss` slower per unit of cost, then runs one
//      batch until they are at least `minGain` faster (hysteresis: single steps are noisy), and
//      the other mode runs now and then to re-measure it: 4 eligible steps after its first sample, then 8,
//      then every `probeInterval` (a decision taken on one early, noisy sample is soon checked).
// It is pure bookkeeping fed with timings (deterministic for the same samples). Only the driver (rank 0)
// runs it; its vote carries the decision, so every rank splits or not alike.

import type { RankGroups } from '../layers/rank-groups.js';
import { TimedCommunicator, WaitClock } from './comm-timing.js';

/** Tuning of the off-switch (see the file header). */
export interface DboAutoSettings {
  /** Off: split again once split steps are expected to be at least this fraction faster (0.02 = 2%). */
  readonly minGain: number;
  /**
   * On: stop splitting once split steps are expected to be more than this fraction slower (0.1 = 10%).
   * Single steps on a busy machine vary by ±10% and a mode's steps depend on the steps before them, so
   * smaller differences are not told apart reliably; between −maxLoss and +minGain the mode stays.
   */
  readonly maxLoss: number;
  /** Run one batch while communication waits are below this share of a one-batch step. */
  readonly minCommShare: number;
  /** At most this many eligible steps between two runs of the mode not chosen, to re-measure it (≥ 2). */
  readonly probeInterval: number;
  /** Samples of each mode whose median the policy compares (the most recent ones), ≥ 1. */
  readonly window: number;
  /** Split samples needed before split steps can be judged slower (until then DBO splits), ≥ 1. */
  readonly minSplitSamples: number;
}

export const DEFAULT_DBO_AUTO_SETTINGS: DboAutoSettings = {
  minGain: 0.02,
  maxLoss: 0.1,
  minCommShare: 0.05,
  probeInterval: 16,
  window: 5,
  minSplitSamples: 3,
};

/** Prefill steps (any prompt token) and decode-only steps behave differently; each has its own samples. */
export type DboStepKind = 'prefill' | 'decode';

/** One eligible step as it ran (measured on the driver, from after the split vote to the joined logits). */
export interface DboStepSample {
  readonly kind: DboStepKind;
  /** Whether it ran as two micro-batches. */
  readonly split: boolean;
  /** Wall milliseconds of the forward. */
  readonly wallMs: number;
  /** Of those, milliseconds the compute thread waited on collectives. */
  readonly commWaitMs: number;
  /** Attention cost of the step (micro-batch.ts: costA + costB), the unit the times are divided by. */
  readonly cost: number;
}

/** The policy's verdict for one eligible step. */
export interface DboAutoDecision {
  readonly split: boolean;
  /** Whether this step runs the mode not preferred, to re-measure it (or to warm it up). */
  readonly probe: boolean;
  /** Why, for the debug log and the trace. */
  readonly reason: string;
}

/** A setting outside its range. */
export class DboAutoSettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DboAutoSettingsError';
  }
}

/** Checks the tuning; throws `DboAutoSettingsError`. */
export function validateDboAutoSettings(s: DboAutoSettings): void {
  if (!(s.minGain >= 0 && s.minGain < 1))
    throw new DboAutoSettingsError(`dbo_auto_off_min_gain must be in [0, 1), got ${s.minGain}`);
  if (!(s.maxLoss >= 0 && s.maxLoss < 1))
    throw new DboAutoSettingsError(`dbo_auto_off_max_loss must be in [0, 1), got ${s.maxLoss}`);
  if (!(s.minCommShare >= 0 && s.minCommShare < 1))
    throw new DboAutoSettingsError(`dbo_auto_off_min_comm_share must be in [0, 1), got ${s.minCommShare}`);
  if (!Number.isInteger(s.probeInterval) || s.probeInterval < 2)
    throw new DboAutoSettingsError(
      `dbo_auto_off_probe_interval must be an integer ≥ 2, got ${s.probeInterval}`,
    );
  if (!Number.isInteger(s.window) || s.window < 1)
    throw new DboAutoSettingsError(`the sample window must be a positive integer, got ${s.window}`);
  if (!Number.isInteger(s.minSplitSamples) || s.minSplitSamples < 1)
    throw new DboAutoSettingsError(
      `the minimum of split samples must be a positive integer, got ${s.minSplitSamples}`,
    );
}

/**
 * The last few samples of one quantity and their median: single steps on a busy machine vary by ±10% and
 * now and then by +30% (a garbage collection, a request being tokenized), which a median ignores.
 */
class RecentSamples {
  private readonly values: number[] = [];
  private n = 0;
  private lastStep = 0;

  constructor(private readonly window: number) {}

  /** Adds sample `x`, taken at eligible step `step` (1, 2, ...). */
  add(x: number, step: number): void {
    this.values.push(x);
    if (this.values.length > this.window) this.values.shift();
    this.n++;
    this.lastStep = step;
  }

  /** The median of the kept samples (NaN before the first). */
  get value(): number {
    if (this.values.length === 0) return Number.NaN;
    const s = [...this.values].sort((x, y) => x - y);
    const m = s.length >> 1;
    return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
  }

  /** Samples added so far. */
  get count(): number {
    return this.n;
  }

  /** The eligible step of the last sample (0 before the first). */
  get lastSampleStep(): number {
    return this.lastStep;
  }
}

/** What the policy knows of one kind of step. */
interface KindState {
  eligible: number;
  /** The mode chosen (after the warm-up; starts splitting: DBO was asked for). */
  splitting: boolean;
  /** Samples seen per mode, the dropped first ones included. */
  seenUnsplit: number;
  seenSplit: number;
  readonly unsplitMsPerCost: RecentSamples;
  readonly splitMsPerCost: RecentSamples;
  readonly commShare: RecentSamples;
}

/** A snapshot of one kind's medians (NaN before the first kept sample). */
export interface DboAutoEstimate {
  readonly eligibleSteps: number;
  readonly unsplitMsPerCost: number;
  readonly splitMsPerCost: number;
  /** Share of a one-batch step spent waiting on communication. */
  readonly commShare: number;
  /** 1 − split / unsplit time per unit of cost (positive: splitting is faster). */
  readonly gain: number;
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

/** The driver's off-switch: decides per eligible step whether to split, from the steps it has timed. */
export class DboAutoPolicy {
  private readonly kinds = new Map<DboStepKind, KindState>();

  constructor(readonly settings: DboAutoSettings = DEFAULT_DBO_AUTO_SETTINGS) {
    validateDboAutoSettings(settings);
  }

  /** Decides for the next step of `kind` that the thresholds allow to split. */
  decide(kind: DboStepKind): DboAutoDecision {
    const s = this.state(kind);
    s.eligible++;
    // Warm-up: one batch, split (both dropped: they compile their code paths), one batch, and then the
    // communication share decides whether a split sample is worth taking.
    if (s.seenUnsplit === 0 || (s.seenSplit > 0 && s.unsplitMsPerCost.count === 0))
      return { split: false, probe: true, reason: 'auto: measuring one-batch steps' };
    if (s.seenSplit === 0) return { split: true, probe: true, reason: 'auto: measuring split steps' };
    const share = s.commShare.value;
    if (share < this.settings.minCommShare) {
      return {
        split: false,
        probe: false,
        reason: `auto: off, communication is ${pct(share)} of a one-batch step (< ${pct(this.settings.minCommShare)})`,
      };
    }
    if (s.splitMsPerCost.count < this.settings.minSplitSamples)
      return { split: true, probe: true, reason: 'auto: measuring split steps' };
    const gain = 1 - s.splitMsPerCost.value / s.unsplitMsPerCost.value;
    // Hysteresis: split until split steps are clearly slower, then one batch until they are faster again.
    s.splitting = s.splitting ? gain > -this.settings.maxLoss : gain >= this.settings.minGain;
    const prefer = s.splitting;
    const other = prefer ? s.unsplitMsPerCost : s.splitMsPerCost;
    const interval = Math.min(this.settings.probeInterval, 2 ** (other.count + 1));
    const probe = s.eligible - other.lastSampleStep >= interval;
    const why = `split steps ${gain >= 0 ? `${pct(gain)} faster` : `${pct(-gain)} slower`}, communication ${pct(share)}`;
    if (probe)
      return {
        split: !prefer,
        probe: true,
        reason: `auto: re-measuring ${prefer ? 'one-batch' : 'split'} steps (${why})`,
      };
    return { split: prefer, probe: false, reason: `auto: ${prefer ? 'on' : 'off'}, ${why}` };
  }

  /** Records how an eligible step ran. */
  record(sample: DboStepSample): void {
    if (!(sample.cost > 0 && sample.wallMs > 0)) return;
    const s = this.state(sample.kind);
    // The first step of each mode compiles its code paths: its time says nothing of the next ones.
    const step = s.eligible;
    if (sample.split) {
      if (s.seenSplit++ > 0) s.splitMsPerCost.add(sample.wallMs / sample.cost, step);
    } else if (s.seenUnsplit++ > 0) {
      s.unsplitMsPerCost.add(sample.wallMs / sample.cost, step);
      s.commShare.add(Math.min(1, Math.max(0, sample.commWaitMs / sample.wallMs)), step);
    }
  }

  /** The medians for `kind`, for logs, benchmarks and tests. */
  estimate(kind: DboStepKind): DboAutoEstimate {
    const s = this.state(kind);
    return {
      eligibleSteps: s.eligible,
      unsplitMsPerCost: s.unsplitMsPerCost.value,
      splitMsPerCost: s.splitMsPerCost.value,
      commShare: s.commShare.value,
      gain: 1 - s.splitMsPerCost.value / s.unsplitMsPerCost.value,
    };
  }

  private state(kind: DboStepKind): KindState {
    let s = this.kinds.get(kind);
    if (s === undefined) {
      const w = this.settings.window;
      s = {
        eligible: 0,
        splitting: true,
        seenUnsplit: 0,
        seenSplit: 0,
        unsplitMsPerCost: new RecentSamples(w),
        splitMsPerCost: new RecentSamples(w),
        commShare: new RecentSamples(w),
      };
      this.kinds.set(kind, s);
    }
    return s;
  }
}

/** Times one step's forward for the policy: its wall time and the waits on the rank's groups during it. */
export class DboStepTimer {
  /** The groups the forward must use (they time the waits, on one clock). */
  readonly groups: RankGroups;
  private readonly clock: WaitClock;
  private readonly started: number;

  /** Starts timing now a step of `kind` and attention `cost` (micro-batch.ts). */
  constructor(
    groups: RankGroups,
    private readonly kind: DboStepKind,
    private readonly cost: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.clock = new WaitClock(now);
    const tp = new TimedCommunicator(groups.tp, this.clock);
    this.groups = { tp, moe: groups.moe === groups.tp ? tp : new TimedCommunicator(groups.moe, this.clock) };
    this.started = now();
  }

  /** The sample of the step, once its forward finished, as one batch or `split`. */
  finish(split: boolean): DboStepSample {
    const wallMs = this.now() - this.started;
    return { kind: this.kind, split, wallMs, commWaitMs: this.clock.stats.waitMs, cost: this.cost };
  }
}

/** Whether a step has a prefill (any request with more than one query token) or only decodes. */
export function stepKindOf(batch: { readonly seqs: readonly { readonly queryLen: number }[] }): DboStepKind {
  return batch.seqs.some((s) => s.queryLen > 1) ? 'prefill' : 'decode';
}

/** The policy for the engine config's DBO settings (`dbo` section: the autoOff* tuning). */
export function dboAutoPolicyFor(dbo: {
  readonly autoOffMinGain: number;
  readonly autoOffMaxLoss: number;
  readonly autoOffMinCommShare: number;
  readonly autoOffProbeInterval: number;
}): DboAutoPolicy {
  return new DboAutoPolicy({
    ...DEFAULT_DBO_AUTO_SETTINGS,
    minGain: dbo.autoOffMinGain,
    maxLoss: dbo.autoOffMaxLoss,
    minCommShare: dbo.autoOffMinCommShare,
    probeInterval: dbo.autoOffProbeInterval,
  });
}
