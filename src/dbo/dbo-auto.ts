// Dual-batch overlap's automatic off-switch: the driver measures what splitting buys and stops splitting
// where it does not pay. Splitting costs compute (two half-size micro-batches use the kernels less well,
// and each layer's hand-overs add work) and gains only the communication it hides; where communication is
// negligible (shared memory, a fast link) or the machine has no spare CPU for the communication threads,
// split steps are slower than one batch.
//
// The policy measures in windows of paired steps. Per kind of step (prefill or decode-only), a window runs
// pairs of eligible steps, one split and one not, next to each other (the order alternating from pair to
// pair): two neighbouring steps see the same machine, load and batch shape, so the ratio of their times
// per unit of cost (micro-batch.ts's attention cost) is a fair comparison even while the machine's speed
// drifts (it does: early steps of a server are slower, other work comes and goes). The median of the
// pairs' log ratios is the estimate, and their spread (median absolute deviation) says how sure it is:
//   - communication below `minCommShare` of a one-batch step (median over the window): one batch — there
//     is nothing worth hiding;
//   - after `pairs` pairs, the mode stays if the estimate calls for it (with hysteresis: splitting stays
//     on while split steps are at most `maxLoss` slower, off until they are at least `minGain` faster);
//   - a change of mode needs more: the estimate must be sure (its bound at `CONFIDENCE_Z` standard errors
//     past the threshold) or the window must have grown to `maxPairs` pairs still calling for it; until
//     then the window runs one more pair at a time. Step times on a busy machine swing by a quarter from
//     step to step, and a server's split steps warm up over its first few dozen steps, so four pairs can
//     call split steps slower where they are 30% faster: a few more pairs settle it;
// and the chosen mode holds for `probeInterval` eligible steps before the next window re-measures, except
// an "off" or a change of mode the window was not sure of, which re-measures after a quarter of that (a
// wrong "off" costs the whole gain until the next window; staying on, as DBO was asked for, holds the
// whole interval). Every "off" from the pairs, sure or not, backs off: it holds a quarter of the interval
// the first time, then twice as long each time the next window says "off" again, up to the whole
// interval. A fresh server's first windows are the noisiest, and one of them can be sure of "off" where
// the warm server's split steps are 30% faster (bench:dbo saw "36% slower" from four pairs of steps
// swinging between 80 and 130 ms), so even a sure "off" is checked again soon; and unsure "off"s in a
// row (split steps a little slower, as over shared memory) no longer re-measure every quarter interval.
// An "off" because communication is negligible (it needs no pairs) holds the whole interval. The first steps of a server
// run slower, split ones most (their code paths compile and warm up): before the first window,
// `warmupPairs` pairs run the same way and are dropped.
// It is pure bookkeeping fed with timings (deterministic for the same samples). Only the driver (rank 0)
// runs it; its plan carries the decision, so every rank splits or not alike.

import type { WaitClock } from './comm-timing.js';

/** Tuning of the off-switch (see the file header). */
export interface DboAutoSettings {
  /** Off → on once split steps are at least this fraction faster (0.02 = 2%). */
  readonly minGain: number;
  /** On → off once split steps are more than this fraction slower (0.02 = 2%). */
  readonly maxLoss: number;
  /** Run one batch while communication waits are below this share of a one-batch step. */
  readonly minCommShare: number;
  /**
   * Eligible steps the chosen mode holds between two measuring windows (≥ 1); a quarter of it (rounded
   * up) after an "off" or a change of mode the window was not sure of.
   */
  readonly probeInterval: number;
  /** Pairs of steps (one split, one not) in a measuring window (≥ 1). */
  readonly pairs: number;
  /** Pairs a window may grow to while a change of mode is not yet sure (≥ pairs). */
  readonly maxPairs: number;
  /** Pairs run before the first window and dropped: both modes' code paths warm up (≥ 1). */
  readonly warmupPairs: number;
}

export const DEFAULT_DBO_AUTO_SETTINGS: DboAutoSettings = {
  minGain: 0.02,
  maxLoss: 0.02,
  minCommShare: 0.05,
  probeInterval: 64,
  pairs: 4,
  maxPairs: 8,
  warmupPairs: 4,
};

/**
 * Standard errors between an estimate and a threshold before a window is sure of it. High for a normal
 * approximation: the median of four to eight pairs and its spread are rough, and a wrong "off" is costly.
 */
export const CONFIDENCE_Z = 2.5;
/** Smallest standard error of a window's log ratio: identical pairs do not make it infinitely sure. */
const MIN_STANDARD_ERROR = 0.01;
/** Fewer pairs than this give no spread: such a window is never sure. */
const MIN_PAIRS_FOR_SPREAD = 3;

/** Prefill steps (any prompt token) and decode-only steps behave differently; each has its own windows. */
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
  /** Whether this step belongs to a measuring window (or the warm-up pairs). */
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
  if (!Number.isInteger(s.probeInterval) || s.probeInterval < 1)
    throw new DboAutoSettingsError(
      `dbo_auto_off_probe_interval must be a positive integer, got ${s.probeInterval}`,
    );
  if (!Number.isInteger(s.pairs) || s.pairs < 1)
    throw new DboAutoSettingsError(
      `the pairs of a measuring window must be a positive integer, got ${s.pairs}`,
    );
  if (!Number.isInteger(s.maxPairs) || s.maxPairs < s.pairs)
    throw new DboAutoSettingsError(
      `the most pairs of a measuring window must be an integer >= its pairs (${s.pairs}), got ${s.maxPairs}`,
    );
  if (!Number.isInteger(s.warmupPairs) || s.warmupPairs < 1)
    throw new DboAutoSettingsError(`the warm-up pairs must be a positive integer, got ${s.warmupPairs}`);
}

function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * A window's estimate from its pairs' log ratios (ln(split / one batch) per unit of cost): the median, and
 * the range of gains it is sure of. The standard error of a median of n normal samples is
 * √(π/2) · σ / √n, with σ ≈ 1.4826 · MAD (robust to the odd step hit by a garbage collection).
 */
export interface PairEstimate {
  /** 1 − exp(median log ratio): positive when split steps are faster. */
  readonly gain: number;
  /** The gain at CONFIDENCE_Z standard errors below and above (−∞, ∞ when too few pairs). */
  readonly gainLow: number;
  readonly gainHigh: number;
}

/** The estimate of a window's pairs (see `PairEstimate`). */
export function estimatePairs(logRatios: readonly number[]): PairEstimate {
  const n = logRatios.length;
  const m = median(logRatios);
  if (n < MIN_PAIRS_FOR_SPREAD)
    return { gain: 1 - Math.exp(m), gainLow: Number.NEGATIVE_INFINITY, gainHigh: Number.POSITIVE_INFINITY };
  const mad = median(logRatios.map((x) => Math.abs(x - m)));
  const se = Math.max(MIN_STANDARD_ERROR, (Math.sqrt(Math.PI / 2) * 1.4826 * mad) / Math.sqrt(n));
  return {
    gain: 1 - Math.exp(m),
    gainLow: 1 - Math.exp(m + CONFIDENCE_Z * se),
    gainHigh: 1 - Math.exp(m - CONFIDENCE_Z * se),
  };
}

/** What the policy knows of one kind of step. */
interface KindState {
  /** The mode chosen; starts splitting (DBO was asked for). */
  splitting: boolean;
  /** Modes of the window's remaining planned steps (empty while holding). */
  plan: boolean[];
  /** Pairs planned in the current window (warm-up pairs included), for the alternating order. */
  pairsPlanned: number;
  /** Eligible steps left before the next window. */
  holdLeft: number;
  /** Windows in a row that turned or kept splitting off from the pairs (sure or not). */
  offStreak: number;
  /** Warm-up steps left to drop (set when the first window starts). */
  warmLeft: number;
  /** Whether the warm-up pairs have been planned. */
  warm: boolean;
  /** The window's current pair: time per unit of cost of its split and its one-batch step. */
  pairSplit: number;
  pairUnsplit: number;
  /** The window's pair log ratios (ln(split / one batch)) and one-batch communication shares. */
  logRatios: number[];
  shares: number[];
  /** The last window's results (NaN before the first). */
  gain: number;
  commShare: number;
  windows: number;
  /** Whether the last window was sure of its verdict. */
  sure: boolean;
  /** Pairs the last window measured. */
  lastPairs: number;
}

/** A snapshot of one kind's last measurement. */
export interface DboAutoEstimate {
  /** Measuring windows completed. */
  readonly windows: number;
  /** Whether split steps are chosen now. */
  readonly splitting: boolean;
  /** 1 − median(split / one-batch time per unit of cost) of the last window (positive: splitting is faster). */
  readonly gain: number;
  /** Median share of a one-batch step spent waiting on communication in the last window. */
  readonly commShare: number;
  /** Whether the last window was sure of its verdict (see the file header). */
  readonly sure: boolean;
  /** Pairs the last window measured (it grows past `pairs` while a change of mode is not sure). */
  readonly pairs: number;
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
    if (s.plan.length === 0 && s.holdLeft > 0) {
      s.holdLeft--;
      return {
        split: s.splitting,
        probe: false,
        reason: `auto: ${s.splitting ? 'on' : 'off'}, ${this.why(s)}`,
      };
    }
    if (s.plan.length === 0) {
      // A new window: the warm-up pairs first (the first time only; dropped), then the measured pairs.
      s.pairsPlanned = 0;
      if (!s.warm) {
        s.warm = true;
        s.warmLeft = 2 * this.settings.warmupPairs;
        for (let i = 0; i < this.settings.warmupPairs; i++) this.planPair(s);
      }
      for (let i = 0; i < this.settings.pairs; i++) this.planPair(s);
      s.logRatios = [];
      s.shares = [];
      s.pairSplit = Number.NaN;
      s.pairUnsplit = Number.NaN;
    }
    const split = s.plan[0]!;
    return {
      split,
      probe: true,
      reason: `auto: measuring (${split ? 'split' : 'one-batch'} step of a pair)`,
    };
  }

  /** Records how an eligible step ran (the one `decide` was last asked about). */
  record(sample: DboStepSample): void {
    const s = this.state(sample.kind);
    if (s.plan.length === 0) return; // a held step: nothing to learn
    s.plan.shift();
    if (s.warmLeft > 0) {
      s.warmLeft--;
      return;
    }
    if (sample.cost > 0 && sample.wallMs > 0) {
      const perCost = sample.wallMs / sample.cost;
      if (sample.split) s.pairSplit = perCost;
      else {
        s.pairUnsplit = perCost;
        s.shares.push(Math.min(1, Math.max(0, sample.commWaitMs / sample.wallMs)));
      }
    }
    if (s.plan.length % 2 === 0) {
      // A pair is complete (a step another rank could not split leaves it one-sided: no ratio).
      if (Number.isFinite(s.pairSplit) && Number.isFinite(s.pairUnsplit))
        s.logRatios.push(Math.log(s.pairSplit / s.pairUnsplit));
      s.pairSplit = Number.NaN;
      s.pairUnsplit = Number.NaN;
    }
    if (s.plan.length === 0) this.conclude(s);
  }

  /** The last measurement of `kind`, for logs, benchmarks and tests. */
  estimate(kind: DboStepKind): DboAutoEstimate {
    const s = this.state(kind);
    return {
      windows: s.windows,
      splitting: s.splitting,
      gain: s.gain,
      commShare: s.commShare,
      sure: s.sure,
      pairs: s.lastPairs,
    };
  }

  /** Plans the window's next pair, its order alternating: one batch first in the even pairs. */
  private planPair(s: KindState): void {
    s.plan.push(...(s.pairsPlanned % 2 === 0 ? [false, true] : [true, false]));
    s.pairsPlanned++;
  }

  /** The window's planned pairs are done: decides, or grows the window by a pair while a change is not sure. */
  private conclude(s: KindState): void {
    const { minCommShare, minGain, maxLoss, maxPairs, probeInterval } = this.settings;
    const commShare = median(s.shares);
    const e = estimatePairs(s.logRatios);
    let splitting = s.splitting;
    let sure: boolean;
    if (commShare < minCommShare) {
      splitting = false;
      sure = true;
    } else if (!Number.isFinite(e.gain)) {
      sure = false; // no complete pair: without evidence the mode stays
    } else {
      const wants = s.splitting ? e.gain >= -maxLoss : e.gain >= minGain;
      const sureOn = e.gainLow >= minGain;
      const sureOff = e.gainHigh < -maxLoss;
      if (wants !== s.splitting && !(wants ? sureOn : sureOff) && s.logRatios.length < maxPairs) {
        this.planPair(s); // a change of mode not yet sure: one more pair
        return;
      }
      splitting = wants;
      sure = wants ? sureOn : sureOff;
    }
    // An "off" from the pairs holds a quarter of the interval, doubling while windows in a row say "off"
    // (a wrong "off" costs the whole gain); an unsure change to "on" holds a quarter (a wrong one costs the
    // split steps' extra compute); staying on (DBO was asked for), or off with negligible communication,
    // holds the whole interval.
    const short = !sure && (!splitting || !s.splitting);
    const offFromPairs = !splitting && commShare >= minCommShare;
    s.offStreak = offFromPairs ? s.offStreak + 1 : 0;
    s.splitting = splitting;
    s.sure = sure;
    s.windows++;
    s.lastPairs = s.logRatios.length;
    s.commShare = commShare;
    s.gain = e.gain;
    const quarter = Math.ceil(probeInterval / 4);
    if (offFromPairs) s.holdLeft = Math.min(probeInterval, quarter * 2 ** (s.offStreak - 1));
    else if (short) s.holdLeft = quarter;
    else s.holdLeft = probeInterval;
  }

  private why(s: KindState): string {
    if (s.commShare < this.settings.minCommShare)
      return `communication is ${pct(s.commShare)} of a one-batch step (< ${pct(this.settings.minCommShare)})`;
    const g = s.gain;
    if (!Number.isFinite(g)) return `no complete pair measured, communication ${pct(s.commShare)}`;
    const speed = g >= 0 ? `${pct(g)} faster` : `${pct(-g)} slower`;
    return `split steps ${speed} (${s.lastPairs} pairs${s.sure ? '' : ', not sure'}), communication ${pct(s.commShare)}`;
  }

  private state(kind: DboStepKind): KindState {
    let s = this.kinds.get(kind);
    if (s === undefined) {
      s = {
        splitting: true,
        plan: [],
        pairsPlanned: 0,
        holdLeft: 0,
        offStreak: 0,
        warmLeft: 0,
        warm: false,
        pairSplit: Number.NaN,
        pairUnsplit: Number.NaN,
        logRatios: [],
        shares: [],
        gain: Number.NaN,
        commShare: Number.NaN,
        windows: 0,
        sure: false,
        lastPairs: 0,
      };
      this.kinds.set(kind, s);
    }
    return s;
  }
}

/** The off-switch as the driver runs it: the policy, and the clock its collective waits are summed on. */
export interface DboAutoSwitch {
  readonly policy: DboAutoPolicy;
  /** The driver's wait clock (its executor's TimedCommunicators add to it). */
  readonly waits: WaitClock;
}

/** Times one step's forward for the policy: its wall time and the growth of the driver's waits during it. */
export class DboStepTimer {
  private readonly started: number;
  private readonly waitedBefore: number;

  /** Starts timing now a step of `kind` and attention `cost` (micro-batch.ts). */
  constructor(
    private readonly waits: WaitClock,
    private readonly kind: DboStepKind,
    private readonly cost: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.started = now();
    this.waitedBefore = waits.stats.waitMs;
  }

  /** The sample of the step, once its forward finished, as one batch or `split`. */
  finish(split: boolean): DboStepSample {
    const wallMs = this.now() - this.started;
    const commWaitMs = this.waits.stats.waitMs - this.waitedBefore;
    return { kind: this.kind, split, wallMs, commWaitMs, cost: this.cost };
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
