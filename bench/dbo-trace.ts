// Reads the Chrome traces that `--trace-dir` writes (src/dbo/tracer.ts) and cuts them into steps: for each
// step its wall time, the compute and communication spans of both micro-batches, and the split decision.
// The DBO benchmark derives T_compute, T_comm and the overlap efficiency from these; the trace picture
// (dbo-trace-svg.ts) draws one step from them.

import { readFileSync } from 'node:fs';

/** Lanes (thread ids) of the tracer: A compute, A comm, B compute, B comm, steps. */
export const LANES = { aCompute: 0, aComm: 1, bCompute: 2, bComm: 3, steps: 4 } as const;

/** One compute or communication span, its start relative to the step's start. */
export interface StepSpan {
  readonly name: string;
  readonly cat: 'compute' | 'comm';
  /** Tracer lane (see LANES). */
  readonly lane: number;
  /** Milliseconds after the step started. */
  readonly startMs: number;
  readonly durMs: number;
}

/** A step with any prefill, or decode-only (src/dbo/dbo-auto.ts's `stepKindOf`). */
export type StepKind = 'prefill' | 'decode';

/** One step of one rank. */
export interface RankStep {
  readonly rank: number;
  /** 0-based index of the step on its rank (ranks run the same steps in the same order). */
  readonly index: number;
  readonly tokens: number;
  /** `decode` when every sequence of the step decodes one token, else `prefill`; null in traces before it was recorded. */
  readonly kind: StepKind | null;
  readonly split: boolean;
  readonly splitToken: number | null;
  readonly reason: string | null;
  readonly wallMs: number;
  /** Sum of the compute spans of both micro-batches. */
  readonly computeMs: number;
  /** Sum of the communication spans of both micro-batches (issue to completion, overlapping or not). */
  readonly commSpanMs: number;
  readonly spans: readonly StepSpan[];
}

interface RawEvent {
  readonly name: string;
  readonly cat: string;
  readonly ph: string;
  readonly ts: number;
  readonly dur?: number;
  readonly tid: number;
  readonly args?: Record<string, unknown>;
}

/** A trace file that is not what the tracer writes. */
export class TraceFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TraceFormatError';
  }
}

/** Parses one rank's trace (the JSON text of `rank-R.trace.json`) into its steps. */
export function parseRankTrace(text: string, rank: number): RankStep[] {
  const parsed = JSON.parse(text) as { traceEvents?: RawEvent[] };
  if (!Array.isArray(parsed.traceEvents)) {
    throw new TraceFormatError('a trace must be a JSON object with a traceEvents array');
  }
  const events = parsed.traceEvents.filter((e) => e.ph === 'X' && typeof e.dur === 'number');
  const steps = events.filter((e) => e.cat === 'step').sort((a, b) => a.ts - b.ts);
  const spans = events.filter((e) => e.cat === 'compute' || e.cat === 'comm').sort((a, b) => a.ts - b.ts);
  const out: RankStep[] = [];
  let next = 0;
  steps.forEach((s, index) => {
    const end = s.ts + s.dur!;
    const mine: StepSpan[] = [];
    // Spans are sorted by start; those that start inside the step belong to it.
    while (next < spans.length && spans[next]!.ts < s.ts) next++;
    while (next < spans.length && spans[next]!.ts <= end) {
      const e = spans[next++]!;
      mine.push({
        name: e.name,
        cat: e.cat as 'compute' | 'comm',
        lane: e.tid,
        startMs: (e.ts - s.ts) / 1000,
        durMs: e.dur! / 1000,
      });
    }
    const a = s.args ?? {};
    out.push({
      rank,
      index,
      tokens: Number(a.tokens ?? 0),
      kind: a.kind === 'prefill' || a.kind === 'decode' ? a.kind : null,
      split: a.split === true,
      splitToken: typeof a.splitToken === 'number' ? a.splitToken : null,
      reason: typeof a.reason === 'string' ? a.reason : null,
      wallMs: s.dur! / 1000,
      computeMs: mine.filter((x) => x.cat === 'compute').reduce((t, x) => t + x.durMs, 0),
      commSpanMs: mine.filter((x) => x.cat === 'comm').reduce((t, x) => t + x.durMs, 0),
      spans: mine,
    });
  });
  return out;
}

/** Reads `DIR/rank-R.trace.json` for R = 0 .. numRanks - 1. */
export function readTraceDir(dir: string, numRanks: number): RankStep[][] {
  return Array.from({ length: numRanks }, (_, r) =>
    parseRankTrace(readFileSync(`${dir}/rank-${r}.trace.json`, 'utf8'), r),
  );
}

/** One step over all ranks. */
export interface StepTiming {
  readonly index: number;
  readonly tokens: number;
  readonly kind: StepKind | null;
  readonly split: boolean;
  /** The slowest rank's step time. */
  readonly wallMs: number;
  /** The busiest rank's compute (the step cannot end before it). */
  readonly computeMs: number;
  /** Mean over ranks of the summed communication spans. */
  readonly commSpanMs: number;
}

/** Lines the ranks' steps up (same index = same step) and combines them. */
export function combineRanks(ranks: readonly (readonly RankStep[])[]): StepTiming[] {
  const n = Math.min(...ranks.map((r) => r.length));
  const out: StepTiming[] = [];
  for (let i = 0; i < n; i++) {
    const per = ranks.map((r) => r[i]!);
    out.push({
      index: i,
      tokens: per[0]!.tokens,
      kind: per[0]!.kind,
      split: per[0]!.split,
      wallMs: Math.max(...per.map((s) => s.wallMs)),
      computeMs: Math.max(...per.map((s) => s.computeMs)),
      commSpanMs: per.reduce((t, s) => t + s.commSpanMs, 0) / per.length,
    });
  }
  return out;
}

/** Totals over a set of steps. */
export interface StepTotals {
  readonly numSteps: number;
  readonly numSplit: number;
  readonly tokens: number;
  readonly wallMs: number;
  readonly computeMs: number;
  readonly commSpanMs: number;
}

export function totalSteps(steps: readonly StepTiming[]): StepTotals {
  return {
    numSteps: steps.length,
    numSplit: steps.filter((s) => s.split).length,
    tokens: steps.reduce((t, s) => t + s.tokens, 0),
    wallMs: steps.reduce((t, s) => t + s.wallMs, 0),
    computeMs: steps.reduce((t, s) => t + s.computeMs, 0),
    commSpanMs: steps.reduce((t, s) => t + s.commSpanMs, 0),
  };
}

/** The step whose wall time is the median among `steps` (a typical step to draw). */
export function medianStep<T extends { readonly wallMs: number }>(steps: readonly T[]): T | undefined {
  const sorted = [...steps].sort((a, b) => a.wallMs - b.wallMs);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

/** A trace that has no decode-only step of the batch asked for. */
export class NoDecodeStepsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoDecodeStepsError';
  }
}

/**
 * The decode-only steps of the full batch: of `numSeqs` tokens (one per sequence), or, without `numSeqs`,
 * of the token count most such steps have. Steps that mix in a prefill, and the smaller decode steps while
 * a batch fills or drains, are left out: a decode step's time depends on its batch size.
 */
export function fullDecodeSteps<T extends { readonly kind: StepKind | null; readonly tokens: number }>(
  steps: readonly T[],
  numSeqs?: number,
): T[] {
  if (steps.length > 0 && steps.every((s) => s.kind === null)) {
    throw new NoDecodeStepsError(
      'the trace does not say which steps are decode-only (written before steps carried their kind); record it again',
    );
  }
  const decodes = steps.filter((s) => s.kind === 'decode');
  let size = numSeqs;
  if (size === undefined) {
    const counts = new Map<number, number>();
    for (const s of decodes) counts.set(s.tokens, (counts.get(s.tokens) ?? 0) + 1);
    // The most frequent batch size; on a tie the larger one (the full batch).
    size = [...counts].sort((a, b) => b[1] - a[1] || b[0] - a[0])[0]?.[0];
  }
  const out = decodes.filter((s) => s.tokens === size);
  if (out.length === 0) {
    const sizes = [...new Set(decodes.map((s) => s.tokens))].sort((a, b) => a - b);
    throw new NoDecodeStepsError(
      `no decode-only step of ${numSeqs ?? 'any'} sequences in the trace (decode-only steps: ${
        sizes.length > 0 ? `batches of ${sizes.join(', ')}` : 'none'
      })`,
    );
  }
  return out;
}
