// A Chrome / Perfetto trace of one rank's steps: compute and communication spans per micro-batch (and per
// layer), so that a user sees in a timeline how dual-batch overlap hides communication. Written as the
// Trace Event Format (JSON object with `traceEvents`), one file per rank, on `flush()`. Each step is also a
// span of its own on the `steps` lane (from before the split vote to the joined logits), carrying the split
// decision, so that tools can cut the timeline into steps and time them.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

interface TraceEvent {
  readonly name: string;
  readonly cat: string;
  readonly ph: 'X' | 'M';
  readonly ts: number;
  readonly dur?: number;
  readonly pid: number;
  readonly tid: number;
  readonly args?: Record<string, unknown>;
}

/** Thread ids in the trace: compute and communication lanes of each micro-batch. */
const lane = (mb: number, kind: 'compute' | 'comm') => mb * 2 + (kind === 'compute' ? 0 : 1);
/** Thread id of the lane holding one span per step. */
export const STEP_LANE = 4;

export interface TraceSpan {
  /** Ends the span, renaming it to `name` when given (a collective's hand-over point is named at its wait). */
  end(name?: string): void;
}

export class Tracer {
  private readonly events: TraceEvent[] = [];
  private readonly openCompute = new Map<number, { start: number; name: string }>();
  private readonly layer = new Map<number, number>();
  private step = 0;
  /** Start of the step in progress (µs), or null between steps. */
  private stepStart: number | null = null;
  private readonly t0 = performance.now();

  constructor(
    private readonly dir: string,
    readonly rank: number,
  ) {
    for (const mb of [0, 1]) {
      for (const kind of ['compute', 'comm'] as const) {
        this.events.push({
          name: 'thread_name',
          cat: '__metadata',
          ph: 'M',
          ts: 0,
          pid: rank,
          tid: lane(mb, kind),
          args: {
            name: `micro-batch ${mb === 0 ? 'A' : 'B'} ${kind === 'compute' ? 'compute' : 'communication'}`,
          },
        });
      }
    }
    this.events.push({
      name: 'thread_name',
      cat: '__metadata',
      ph: 'M',
      ts: 0,
      pid: rank,
      tid: STEP_LANE,
      args: { name: 'steps' },
    });
    this.events.push({
      name: 'process_name',
      cat: '__metadata',
      ph: 'M',
      ts: 0,
      pid: rank,
      tid: 0,
      args: { name: `rank ${rank}` },
    });
  }

  private now(): number {
    return (performance.now() - this.t0) * 1000;
  }

  /** A step starts: everything until `endStep` belongs to it. */
  beginStep(): void {
    this.step++;
    this.stepStart = this.now();
  }

  /** The step begun last ends: records it as a span on the steps lane, with `args` (the split decision). */
  endStep(args: Record<string, unknown>): void {
    if (this.stepStart === null) return;
    const ts = this.stepStart;
    this.stepStart = null;
    this.events.push({
      name: `step ${this.step}`,
      cat: 'step',
      ph: 'X',
      ts,
      dur: this.now() - ts,
      pid: this.rank,
      tid: STEP_LANE,
      args,
    });
  }

  /** The micro-batch entered decoder layer `layer` (recorded with its collectives). */
  setLayer(mb: number, layer: number): void {
    this.layer.set(mb, layer);
  }

  /** Micro-batch `mb` computes; the span is named `name` (the stage: the hand-over point it runs to). */
  beginCompute(mb: number, name = 'compute'): void {
    if (this.openCompute.has(mb)) return;
    this.openCompute.set(mb, { start: this.now(), name });
  }

  endCompute(mb: number): void {
    const open = this.openCompute.get(mb);
    if (!open) return;
    this.openCompute.delete(mb);
    const ts = open.start;
    this.events.push({
      name: open.name,
      cat: 'compute',
      ph: 'X',
      ts,
      dur: this.now() - ts,
      pid: this.rank,
      tid: lane(mb, 'compute'),
    });
  }

  beginComm(mb: number, name: string): TraceSpan {
    const ts = this.now();
    const layer = this.layer.get(mb);
    return {
      end: (renamed?: string) => {
        this.events.push({
          name: renamed ?? name,
          cat: 'comm',
          ph: 'X',
          ts,
          dur: this.now() - ts,
          pid: this.rank,
          tid: lane(mb, 'comm'),
          args: layer === undefined ? {} : { layer },
        });
      },
    };
  }

  /** Forgets the layer positions (between steps). */
  resetLayers(): void {
    this.layer.clear();
  }

  /** Writes `DIR/rank-R.trace.json`; returns its path. */
  flush(): string {
    mkdirSync(this.dir, { recursive: true });
    const path = join(this.dir, `rank-${this.rank}.trace.json`);
    writeFileSync(path, JSON.stringify({ traceEvents: this.events, displayTimeUnit: 'ms' }));
    return path;
  }

  get numEvents(): number {
    return this.events.length;
  }
}
