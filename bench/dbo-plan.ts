// The DBO planner: predicts a step's time with and without dual-batch overlap, and the overlap efficiency,
// from per-stage compute times and a link model, by playing DBO's order (src/dbo/dbo-order.ts) on an
// event timeline: one compute thread per rank, one link that runs collectives one after another, each
// collective starting when the last rank has issued it.
//
//   node dist/bench/dbo-plan.js --trace OFF_TRACE_DIR --bandwidth 800mbit [--latency-us 60] [--ranks 2]
//       [--hidden 256] [--vocab 129280] [--split-cost 0.10] [--order alternate|staggered] [--rank R]
//   node dist/bench/dbo-plan.js --trace OFF_TRACE_DIR --phase decode --top-k 4 ...   (a decode step)
//   node dist/bench/dbo-plan.js --preset vllm-ascend-r1     (the setting vLLM-Ascend published; docs/dbo.md)
//
// With --trace, the stage compute times are those of a DBO-off run's traces (the compute spans are named
// by their stage), of multi-token steps (--phase prefill) or decode-only steps of the full batch (--phase
// decode, one logits row per sequence): every such step of every rank's trace (rank-0 .. rank-<ranks-1>),
// each played with every rank's own stage times and the step times averaged (per 512 tokens for prefill,
// as bench:dbo normalises; per step for decode), leaving out the first --skip-steps steps (bench:dbo
// leaves out its warm-up requests' steps); with --rank R, the median step of rank R's trace alone,
// every rank taken to compute as R did. --testbed plays the link as bench:dbo does (testbedLink: the
// rate, the testbed's token bucket and measured per-message latency, after an idle link without DBO and
// back to back under DBO; with --cores, the communication CPU likewise) instead of --latency-us and
// --burst-bytes. The stage names give each stage's collective (ring all-reduce, all-gather and
// reduce-scatter; the all-to-alls of `moe_comm alltoall`); with a preset, the stage times are computed
// from the model's shapes and the device's throughput. Each micro-batch is given its share of a stage's
// time, times (1 + split-cost) for the half-size batches' lower kernel efficiency (default 0.10; the toy
// model on the testbed's CPU: TESTBED_SPLIT_COST).
//
// Ranks that share one machine's cores (the testbed's two "hosts" on a 2-core machine) also have a CPU
// floor: a step takes at least all its threads' CPU spread over the cores. With --cores N the prediction
// is the larger of the timeline and that floor: the ranks' compute (the stage times; times 1 + split-cost
// with DBO), each collective's communication-thread CPU on every rank (--comm-cpu-ms BASE,PER_MIB: the
// testbed's measured TESTBED_COMM_CPU by default; with DBO twice the collectives at half the bytes) and
// --other-cpu-ms of other competing work per step (default 0).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { testbedBurstBytes } from '../scripts/testbed/testbed.js';
import { buildOrder, type DboOrderName } from '../src/dbo/dbo-order.js';
import type { ForwardStage } from '../src/layers/hand-over.js';
import {
  fullDecodeSteps,
  LANES,
  NoDecodeStepsError,
  parseRankTrace,
  type RankStep,
  TraceFormatError,
} from './dbo-trace.js';

/** One stage: compute ms for the whole step's batch, and the bytes its closing collective moves. */
export interface PlanStage {
  readonly name: string;
  readonly end: ForwardStage['end'];
  readonly computeMs: number;
  /** The collective closing the stage, with the bytes of the whole batch's buffer (see collectiveMs). */
  readonly collective?: { readonly kind: CollectiveKind; readonly bytes: number };
}

/** The collectives a forward's stages end at. */
export type CollectiveKind = 'all_reduce' | 'all_gather' | 'reduce_scatter' | 'all_to_all';

/** A link: bandwidth each way and per-message latency, between `ranks` ranks (ring collectives). */
export interface LinkModel {
  readonly bitsPerSecond: number;
  readonly latencyMs: number;
  readonly ranks: number;
  /**
   * The shaper's token bucket (bytes), where the rate is a token bucket (the testbed's tc tbf): after the
   * link was idle, up to this many bytes pass at once, the rest at the rate; the bucket refills at the
   * rate while the link is idle. 0 or absent: a plain link (real NICs).
   */
  readonly burstBytes?: number;
  /**
   * Per-message latency while collectives follow one another (DBO's split steps keep the communication
   * threads busy, so no wake-up is paid); absent: `latencyMs`.
   */
  readonly busyLatencyMs?: number;
}

/**
 * Milliseconds a collective of a `bytes` buffer takes on the link. Ring all-reduce: 2(P−1) messages of
 * bytes/P; ring all-gather and reduce-scatter (`bytes`: the gathered / the input buffer): P−1 of bytes/P.
 * All-to-all (`bytes`: all rows every rank sends, e.g. the dispatch's T·topK rows): each rank sends its
 * 1/P of them, of which (P−1)/P go to other ranks (routing spread evenly over the experts), as P−1
 * messages that share the rank's link.
 */
export function collectiveMs(link: LinkModel, kind: CollectiveKind, bytes: number): number {
  const w = collectiveWire(link.ranks, kind, bytes);
  return w.messages * link.latencyMs + (w.bytes * 8 * 1000) / link.bitsPerSecond;
}

/** The messages a rank sends in one collective and their bytes in all (see collectiveMs). */
function collectiveWire(P: number, kind: CollectiveKind, bytes: number): { messages: number; bytes: number } {
  if (kind === 'all_to_all') return { messages: P - 1, bytes: ((bytes / P) * (P - 1)) / P };
  const messages = kind === 'all_reduce' ? 2 * (P - 1) : P - 1;
  return { messages, bytes: (messages * bytes) / P };
}

/**
 * The link over one step: collectives one after another (each starts when it is issued and the link is
 * free), and the shaper's token bucket (LinkModel.burstBytes), full at the step's start, refilling while
 * the link is idle. Without a bucket a collective takes collectiveMs.
 */
export class LinkTimeline {
  private freeAt = 0;
  private tokens: number;
  private readonly bytesPerMs: number;

  constructor(private readonly link: LinkModel) {
    this.tokens = link.burstBytes ?? 0;
    this.bytesPerMs = link.bitsPerSecond / 8 / 1000;
  }

  /** A collective issued at `issueMs`; returns when it completes. */
  run(issueMs: number, kind: CollectiveKind, bytes: number): number {
    const begin = Math.max(issueMs, this.freeAt);
    const burst = this.link.burstBytes ?? 0;
    const tokens = Math.min(burst, this.tokens + (begin - this.freeAt) * this.bytesPerMs);
    const w = collectiveWire(this.link.ranks, kind, bytes);
    const free = Math.min(tokens, w.bytes);
    this.tokens = tokens - free;
    this.freeAt = begin + w.messages * this.link.latencyMs + (w.bytes - free) / this.bytesPerMs;
    return this.freeAt;
  }
}

/**
 * Ranks that share one machine's cores (the testbed's "hosts"): a step cannot take less than the CPU its
 * threads need over the cores — the ranks' compute (the stage times, times 1 + split cost with DBO), the
 * communication threads' work on every collective (commCpuMs: with DBO twice as many, of half the bytes),
 * and other work that competes with the step.
 */
export interface SharedCpu {
  readonly cores: number;
  /** CPU per step of other threads that compete with the step, all ranks (HTTP server, GC); often 0. */
  readonly otherCpuMs: number;
  /** A rank's communication thread's CPU per collective: this much, plus commCpuPerMiBMs per MiB of buffer. */
  readonly commCpuBaseMs: number;
  readonly commCpuPerMiBMs: number;
  /** The same while collectives follow one another (DBO's split steps); absent: the figures above. */
  readonly busyComm?: { readonly baseMs: number; readonly perMiBMs: number };
}

/** A rank's communication-thread CPU for one collective of a `bytes` buffer (see SharedCpu). */
export function commCpuMs(cpu: SharedCpu, bytes: number, busy = false): number {
  const [base, perMiB] =
    busy && cpu.busyComm
      ? [cpu.busyComm.baseMs, cpu.busyComm.perMiBMs]
      : [cpu.commCpuBaseMs, cpu.commCpuPerMiBMs];
  return base + (perMiB * bytes) / (1 << 20);
}

export interface Prediction {
  readonly offMs: number;
  readonly onMs: number;
  /** The DBO step on the timeline alone (compute thread and link), before the CPU floor. */
  readonly timelineOnMs: number;
  /** The CPU floor without and with DBO (0 without a SharedCpu). */
  readonly floorOffMs: number;
  readonly floorOnMs: number;
  readonly computeMs: number;
  readonly commMs: number;
  /** (off − on) / (off − max(compute, comm)). */
  readonly efficiency: number;
}

/**
 * Plays one step without DBO (compute, then each collective) and with DBO in `order`; with `cpu`, neither
 * is faster than its CPU floor. Every rank has the same stage times (`stages`); predictRanks plays ranks
 * whose stage times differ.
 */
export function predict(
  stages: readonly PlanStage[],
  link: LinkModel,
  order: DboOrderName,
  splitCost: number,
  cpu?: SharedCpu,
): Prediction {
  return predictRanks([stages], link, order, splitCost, cpu);
}

/**
 * Plays one step on every rank at once: `ranks[r]` is rank r's stage list (the same stages, each rank's
 * own compute times, as a trace of each rank gives them). A collective starts when the last rank issues
 * it (the others wait for their peer) and the link is free; all ranks resume when it completes. Without
 * DBO each rank computes a stage then waits for its collective; with DBO the two micro-batches take turns
 * in `order` on each rank's compute thread.
 */
export function predictRanks(
  ranks: readonly (readonly PlanStage[])[],
  link: LinkModel,
  order: DboOrderName,
  splitCost: number,
  cpu?: SharedCpu,
): Prediction {
  const stages = ranks[0]!;
  if (!sameStages(ranks)) throw new Error('every rank must have the same stages, in the same order');
  // The busiest rank's compute, as bench:dbo's T_compute.
  const computeMs = Math.max(...ranks.map((r) => r.reduce((a, s) => a + s.computeMs, 0)));
  // Without DBO: each stage's compute, then its collective once every rank has issued it.
  const offLink = new LinkTimeline(link);
  const at = ranks.map(() => 0);
  stages.forEach((s, k) => {
    ranks.forEach((r, i) => {
      at[i]! += r[k]!.computeMs;
    });
    if (s.collective) at.fill(offLink.run(Math.max(...at), s.collective.kind, s.collective.bytes));
  });
  const serialMs = Math.max(...at);
  const timelineOnMs = playDbo(ranks, link, order, splitCost);
  return held({ serialMs, computeMs, timelineOnMs, ...cpuFloors(ranks, link.ranks, splitCost, cpu) });
}

/** A prediction from the timelines without and with DBO, each held to its CPU floor. */
function held(t: {
  serialMs: number;
  computeMs: number;
  timelineOnMs: number;
  floorOffMs: number;
  floorOnMs: number;
}): Prediction {
  const offMs = Math.max(t.serialMs, t.floorOffMs);
  const onMs = Math.max(t.timelineOnMs, t.floorOnMs);
  const commMs = t.serialMs - t.computeMs;
  return {
    offMs,
    onMs,
    timelineOnMs: t.timelineOnMs,
    floorOffMs: t.floorOffMs,
    floorOnMs: t.floorOnMs,
    computeMs: t.computeMs,
    commMs,
    efficiency: (offMs - onMs) / (offMs - Math.max(t.computeMs, commMs)),
  };
}

/**
 * The CPU floors of a step without and with DBO (0 without `cpu`): every rank's compute (`ranks` stands
 * for `numRanks` ranks: one list for identical ranks) and every collective's communication-thread CPU on
 * each rank, over the cores. With DBO the compute costs 1 + splitCost and each collective but the
 * embedding's runs twice at half the bytes.
 */
function cpuFloors(
  ranks: readonly (readonly PlanStage[])[],
  numRanks: number,
  splitCost: number,
  cpu: SharedCpu | undefined,
): { floorOffMs: number; floorOnMs: number } {
  if (!cpu) return { floorOffMs: 0, floorOnMs: 0 };
  const perRank = numRanks / ranks.length;
  const compute = ranks.reduce((a, r) => a + r.reduce((b, s) => b + s.computeMs, 0), 0) * perRank;
  let offComm = 0;
  let onComm = 0;
  for (const s of ranks[0]!) {
    if (!s.collective) continue;
    offComm += commCpuMs(cpu, s.collective.bytes);
    if (s.name !== 'embed all-reduce') onComm += 2 * commCpuMs(cpu, s.collective.bytes / 2, true);
  }
  return {
    floorOffMs: (compute + cpu.otherCpuMs + offComm * numRanks) / cpu.cores,
    floorOnMs: (compute * (1 + splitCost) + cpu.otherCpuMs + onComm * numRanks) / cpu.cores,
  };
}

/**
 * The DBO step on the timeline: two halves of every stage (times 1 + splitCost) taking turns in `order`
 * on each rank's compute thread; a micro-batch's collective starts when every rank has issued it and the
 * link is free. The embedding all-reduce is gone (the table is replicated under DBO); its compute joins
 * the first stage.
 */
function playDbo(
  ranks: readonly (readonly PlanStage[])[],
  link: LinkModel,
  order: DboOrderName,
  splitCost: number,
): number {
  const keep = (s: PlanStage) => s.name !== 'embed all-reduce';
  const on = ranks.map((r) => r.filter(keep));
  const embedMs = ranks.map((r) => r.find((s) => !keep(s))?.computeMs ?? 0);
  const turns = buildOrder(order, on[0]!);
  const onLink = new LinkTimeline({ ...link, latencyMs: link.busyLatencyMs ?? link.latencyMs });
  const busy = ranks.map(() => 0);
  // ready[r][mb]: when micro-batch mb may compute again on rank r.
  const ready = ranks.map(() => [0, 0]);
  for (const t of turns) {
    on.forEach((r, i) => {
      const s = r[t.stage]!;
      const work = ((t.stage === 0 ? s.computeMs + embedMs[i]! : s.computeMs) / 2) * (1 + splitCost);
      busy[i] = Math.max(busy[i]!, ready[i]![t.mb]!) + work;
    });
    const c = on[0]![t.stage]!.collective;
    const done = c ? onLink.run(Math.max(...busy), c.kind, c.bytes / 2) : 0;
    on.forEach((_, i) => {
      ready[i]![t.mb] = c ? done : busy[i]!;
    });
  }
  return Math.max(...busy, ...ready.flat());
}

/** The model sizes that set a stage's bytes. */
export interface PlanModelSizes {
  readonly hidden: number;
  readonly vocab: number;
  /** Routed experts per token (the all-to-all dispatch sends one row per token and expert). */
  readonly topK: number;
}

/** The kind of step the planner takes from a trace. */
export type PlanPhase = 'prefill' | 'decode';

/** A stage name in a trace that the planner does not know how to play. */
export class UnknownStageError extends Error {
  constructor(name: string) {
    super(`the planner does not know the stage ${JSON.stringify(name)} (no collective model for it)`);
    this.name = 'UnknownStageError';
  }
}

/**
 * The collective that closes stage `name` of a step of `tokens` tokens with `rows` logits rows (fp32
 * activations, as the CPU platform sends them); undefined for a pause or the end.
 */
export function stageCollective(
  name: string,
  tokens: number,
  rows: number,
  m: PlanModelSizes,
): PlanStage['collective'] | undefined {
  const d = m.hidden;
  if (name === 'done' || / experts 1\/2$/.test(name)) return undefined;
  if (name === 'logits all-gather') return { kind: 'all_gather', bytes: rows * m.vocab * 4 };
  if (/ all-reduce$/.test(name)) return { kind: 'all_reduce', bytes: tokens * d * 4 };
  // alltoall mode: a dispatched row is [expert id, hidden...]; the combine returns [hidden] per row.
  if (/^L\d+ dispatch$/.test(name)) return { kind: 'all_to_all', bytes: tokens * m.topK * (d + 1) * 4 };
  if (/^L\d+ combine$/.test(name)) return { kind: 'all_to_all', bytes: tokens * m.topK * d * 4 };
  if (/^L\d+ shared reduce-scatter$/.test(name)) return { kind: 'reduce_scatter', bytes: tokens * d * 4 };
  if (/^L\d+ all-gather$/.test(name)) return { kind: 'all_gather', bytes: tokens * d * 4 };
  // Data parallelism's small exchanges: one number per rank (latency only).
  if (/^L\d+ counts all-to-all$/.test(name) || name === 'replica tokens all-gather') {
    return { kind: 'all_to_all', bytes: 4 };
  }
  throw new UnknownStageError(name);
}

/**
 * The stages of the median DBO-off step of `rank`'s trace, with bytes from the model's sizes. Prefill: a
 * multi-token step (logits: one row per 512 tokens, the bench's random prompts); decode: a decode-only step
 * of the full batch (dbo-trace.ts's fullDecodeSteps; one logits row per sequence).
 */
export function stagesFromTrace(
  dir: string,
  rank: number,
  sizes: PlanModelSizes,
  phase: PlanPhase = 'prefill',
  /** Decode: the batch size of the steps to take (default: the most frequent decode batch). */
  numSeqs?: number,
): PlanStage[] {
  const file = join(dir, `rank-${rank}.trace.json`);
  const steps = offSteps(parseRankTrace(readFileSync(file, 'utf8'), rank), phase, numSeqs);
  if (steps.length === 0) throw new Error(`no multi-token steps in ${file}`);
  const step = [...steps].sort((a, b) => a.wallMs - b.wallMs)[Math.floor(steps.length / 2)]!;
  return stagesOfStep(step, sizes, phase);
}

/** One step of a DBO-off trace as the planner plays it: its tokens and each rank's stages. */
export interface PlanStep {
  readonly tokens: number;
  readonly ranks: readonly (readonly PlanStage[])[];
}

/**
 * Every DBO-off step of `phase` in the ranks' traces (`ranks[r]`: rank r's steps, dbo-trace.ts; the same
 * index is the same step on every rank), each with every rank's own stage times: the planner plays them
 * all (predictRanks) and averages, so that the ranks' uneven compute (a collective waits for the later
 * rank) enters the prediction as the trace recorded it. A step whose ranks recorded different stages (a
 * trace cut mid-step) is left out.
 */
export function planSteps(
  ranks: readonly (readonly RankStep[])[],
  sizes: PlanModelSizes,
  phase: PlanPhase = 'prefill',
  numSeqs?: number,
): PlanStep[] {
  const n = Math.min(...ranks.map((r) => r.length));
  const together = Array.from({ length: n }, (_, i) => ranks.map((r) => r[i]!));
  const keep = new Set(
    offSteps(
      together.map((per) => per[0]!),
      phase,
      numSeqs,
    ),
  );
  return together
    .filter((per) => keep.has(per[0]!))
    .map((per) => ({ tokens: per[0]!.tokens, ranks: per.map((st) => stagesOfStep(st, sizes, phase)) }))
    .filter((st) => sameStages(st.ranks));
}

/** Whether every rank's stage list names the same stages in the same order (a trace cut mid-step does not). */
function sameStages(ranks: readonly (readonly PlanStage[])[]): boolean {
  const first = ranks[0]!;
  return ranks.every((r) => r.length === first.length && r.every((s, k) => s.name === first[k]!.name));
}

/** The steps the planner takes from a trace: unsplit; multi-token (prefill) or the full decode batch. */
function offSteps(steps: readonly RankStep[], phase: PlanPhase, numSeqs?: number): RankStep[] {
  const unsplit = steps.filter((s) => !s.split);
  return phase === 'decode'
    ? fullDecodeSteps(unsplit, numSeqs)
    : unsplit.filter((s) => s.tokens > 1 && s.kind !== 'decode');
}

/** A step's stages: its A-lane compute spans (named by stage) and the collective each stage ends at. */
function stagesOfStep(step: RankStep, sizes: PlanModelSizes, phase: PlanPhase): PlanStage[] {
  const rows = phase === 'decode' ? step.tokens : Math.max(1, Math.round(step.tokens / 512));
  const out: PlanStage[] = [];
  for (const span of step.spans.filter((x) => x.lane === LANES.aCompute)) {
    const name = span.name;
    const collective = stageCollective(name, step.tokens, rows, sizes);
    const end: ForwardStage['end'] = name === 'done' ? 'done' : collective ? 'collective' : 'pause';
    out.push({ name, end, computeMs: span.durMs, ...(collective ? { collective } : {}) });
  }
  return out;
}

/**
 * The planner over many steps: each played on its own (predictRanks), the step times and CPU floors
 * averaged — per `perTokens` tokens (Σ time / Σ tokens · perTokens, as bench:dbo normalises prefill
 * steps), or per step when `perTokens` is null — and the averaged timeline held to the averaged floor.
 */
export function predictSteps(
  steps: readonly PlanStep[],
  link: LinkModel,
  order: DboOrderName,
  splitCost: number,
  perTokens: number | null,
  cpu?: SharedCpu,
): Prediction {
  if (steps.length === 0) throw new Error('no steps to play');
  const played = steps.map((st) => predictRanks(st.ranks, link, order, splitCost, cpu));
  const tokens = steps.reduce((a, st) => a + st.tokens, 0);
  const mean = (f: (p: Prediction) => number) =>
    played.reduce((a, p) => a + f(p), 0) / (perTokens === null ? steps.length : tokens / perTokens);
  return held({
    // Each step's timeline without its floor (a step's offMs is max(timeline, floor)).
    serialMs: mean((p) => p.computeMs + p.commMs),
    computeMs: mean((p) => p.computeMs),
    timelineOnMs: mean((p) => p.timelineOnMs),
    floorOffMs: mean((p) => p.floorOffMs),
    floorOnMs: mean((p) => p.floorOnMs),
  });
}

/** DeepSeek-R1 prefill on vLLM-Ascend's setting: per-stage compute from FLOPs at a device's throughput. */
export function r1Stages(tokens: number, tp: number, tflops: number, mfu: number): PlanStage[] {
  const H = 7168;
  const layers = 61;
  const dense = 3;
  // MLA projections (q_lora 1536, kv_lora 512, 128 heads of 128+64 / 128) and attention over the prompt.
  const heads = 128;
  const projFlops =
    2 * (H * 1536 + 1536 * heads * 192 + H * (512 + 64) + 512 * heads * 256 + heads * 128 * H);
  const attnFlops = (ctx: number) => 2 * heads * ctx * (192 + 128);
  const avgCtx = tokens / 2;
  const perTokenAttn = (projFlops + attnFlops(avgCtx)) / tp;
  // MoE: 8 routed experts of 2048 + 1 shared of 2048 per token, spread over the ranks (ep = tp here).
  const expertFlops = 2 * 3 * H * 2048;
  const perTokenMoe = (9 * expertFlops) / tp;
  const perTokenDense = (2 * 3 * H * 18432) / tp;
  const ms = (flops: number) => ((flops * tokens) / (tflops * 1e12 * mfu)) * 1000;
  const bytes = tokens * H * 2; // bf16 activations on the device
  const out: PlanStage[] = [];
  for (let l = 0; l < layers; l++) {
    out.push({
      name: `L${l} attn all-reduce`,
      end: 'collective',
      computeMs: ms(perTokenAttn),
      collective: { kind: 'all_reduce', bytes },
    });
    if (l < dense) {
      out.push({
        name: `L${l} mlp all-reduce`,
        end: 'collective',
        computeMs: ms(perTokenDense),
        collective: { kind: 'all_reduce', bytes },
      });
    } else {
      out.push({ name: `L${l} experts 1/2`, end: 'pause', computeMs: ms(perTokenMoe) / 2 });
      out.push({
        name: `L${l} moe all-reduce`,
        end: 'collective',
        computeMs: ms(perTokenMoe) / 2,
        collective: { kind: 'all_reduce', bytes },
      });
    }
  }
  out.push({ name: 'done', end: 'done', computeMs: 0 });
  return out;
}

/**
 * Per-message latency of the testbed's links, as a step's collectives meet it: after a compute stage, with
 * the communication threads asleep. A 4 KB all-reduce (2 messages) between two testbed hosts after 8 ms
 * idle took 1.46–2.35 ms, median 1.57 ms (`node dist/bench/collectives.js --only testbed --link RATE
 * --sizes 4096,131072,262144,524288 --seconds 2 --gap-ms 8`, 200, 500 and 800 mbit/s, three runs each,
 * load average 5–6, 7 December 2026); back to back, without the wake-ups, it takes about half (0.4 ms a
 * message, the figure used before).
 */
export const TESTBED_MESSAGE_LATENCY_MS = 0.78;

/**
 * A testbed rank's communication-thread CPU per collective (SharedCpu): the same runs' CPU per all-reduce
 * of the communication thread, medians over the nine runs: 1.96 ms at 256 KB (a DBO micro-batch's
 * buffer), 2.81 ms at 512 KB (a 512-token step's), the line through them.
 */
export const TESTBED_COMM_CPU = { commCpuBaseMs: 1.11, commCpuPerMiBMs: 3.4 } as const;

/**
 * The same two figures with collectives back to back, as DBO's split steps run them in steady state
 * (`collectives.js ... --gap-ms 0`, sizes 128, 256 and 512 KB, 200, 500 and 800 mbit/s, 8 December 2026,
 * quiet machine): per all-reduce, the communication thread's CPU (medians of seven runs: 1.16 ms at 256
 * KB, 1.53 ms at 512 KB, the line through them) and the time beyond the bytes at the rate, per message
 * (median of 21: 0.24 ms). The DBO-on servers' other threads spent half the CPU a step of the DBO-off
 * ones' (54–57 against 108–109 ms, docs/dbo.md).
 */
export const TESTBED_BUSY_COMM_CPU = { baseMs: 0.79, perMiBMs: 1.49 } as const;
export const TESTBED_BUSY_MESSAGE_LATENCY_MS = 0.24;

/**
 * The split cost of the toy model's prefill steps on this machine's CPU kernels: per-thread CPU of the
 * compute threads, every eligible 512-token step split against DBO off, +3.9% (docs/dbo.md, "Where the CPU
 * goes": half-size micro-batches use the kernels less well and each layer's work is issued twice).
 */
export const TESTBED_SPLIT_COST = 0.04;

/**
 * The testbed's link between `ranks` hosts at `bitsPerSecond`: its rate, its tc token bucket
 * (testbedBurstBytes, as scripts/testbed/testbed.sh sets it) and its measured per-message latency.
 */
export function testbedLink(
  bitsPerSecond: number,
  ranks: number,
): LinkModel & { burstBytes: number; busyLatencyMs: number } {
  return {
    bitsPerSecond,
    latencyMs: TESTBED_MESSAGE_LATENCY_MS,
    busyLatencyMs: TESTBED_BUSY_MESSAGE_LATENCY_MS,
    ranks,
    burstBytes: testbedBurstBytes(bitsPerSecond),
  };
}

/** `800mbit`, `1gbit`, `56GB` (bytes/s), or a plain number of bits per second. */
export function parseRate(text: string): number {
  const m = /^([\d.]+)\s*(kbit|mbit|gbit|GB|MB)?$/.exec(text);
  if (!m) throw new Error(`bad rate ${JSON.stringify(text)} (e.g. 800mbit, 10gbit, 56GB)`);
  const scale = { kbit: 1e3, mbit: 1e6, gbit: 1e9, GB: 8e9, MB: 8e6 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * scale;
}

const USAGE = `usage: node dist/bench/dbo-plan.js --trace OFF_TRACE_DIR [--bandwidth 800mbit] [--latency-us 60]
         [--ranks 2] [--hidden 256] [--vocab 129280] [--top-k 4] [--phase prefill|decode [--decode-seqs N]] [--split-cost 0.10]
         [--order alternate|staggered] [--rank R] [--skip-steps 0] [--burst-bytes 0 (a tc token bucket) | --testbed] [--cores 2 [--comm-cpu-ms 1.11,3.4] [--other-cpu-ms 0]]
       node dist/bench/dbo-plan.js --preset vllm-ascend-r1 [--bandwidth 56GB] [--latency-us 20] [--tflops 320]
         [--mfu 0.5] [--tokens 4096]`;

/** The flags, or usage on stderr and exit 2 for a flag that is not one of them (usage and 0 for --help). */
function parseFlags() {
  try {
    const parsed = parseArgs(FLAGS);
    if (parsed.values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    return parsed;
  } catch (e) {
    console.error(`dbo-plan: ${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}

const FLAGS = {
  options: {
    help: { type: 'boolean' },
    trace: { type: 'string' },
    preset: { type: 'string' },
    bandwidth: { type: 'string' },
    'latency-us': { type: 'string' },
    ranks: { type: 'string', default: '2' },
    hidden: { type: 'string', default: '256' },
    vocab: { type: 'string', default: '129280' },
    'top-k': { type: 'string', default: '4' },
    'decode-seqs': { type: 'string' },
    'burst-bytes': { type: 'string', default: '0' },
    phase: { type: 'string', default: 'prefill' },
    'split-cost': { type: 'string', default: '0.10' },
    order: { type: 'string' },
    rank: { type: 'string' },
    'skip-steps': { type: 'string', default: '0' },
    testbed: { type: 'boolean' },
    tflops: { type: 'string', default: '320' },
    mfu: { type: 'string', default: '0.5' },
    tokens: { type: 'string', default: '4096' },
    cores: { type: 'string' },
    'other-cpu-ms': { type: 'string' },
    'comm-cpu-ms': { type: 'string' },
  },
} as const;

/**
 * The shared-CPU model from the flags: with --cores, the ranks' compute from the stage times, the
 * communication threads' CPU per collective (--comm-cpu-ms BASE,PER_MIB; the testbed's by default) and
 * --other-cpu-ms (default 0); without --cores, none.
 */
function sharedCpuOf(values: Record<string, string | boolean | undefined>): SharedCpu | undefined {
  if (values.cores === undefined) return undefined;
  const bad = (flag: string, allowed: string) => {
    console.error(`dbo-plan: --${flag} must be ${allowed}, got ${JSON.stringify(values[flag])}\n${USAGE}`);
    process.exit(2);
  };
  const cores = Number(values.cores);
  if (!(cores > 0)) bad('cores', 'a positive number');
  const otherCpuMs = Number(values['other-cpu-ms'] ?? '0');
  if (!(otherCpuMs >= 0)) bad('other-cpu-ms', 'a number >= 0');
  const comm = String(
    values['comm-cpu-ms'] ?? `${TESTBED_COMM_CPU.commCpuBaseMs},${TESTBED_COMM_CPU.commCpuPerMiBMs}`,
  )
    .split(',')
    .map(Number);
  if (comm.length !== 2 || !comm.every((x) => x >= 0)) bad('comm-cpu-ms', 'BASE,PER_MIB: two numbers >= 0');
  return { cores, otherCpuMs, commCpuBaseMs: comm[0]!, commCpuPerMiBMs: comm[1]! };
}

function main(): void {
  const { values } = parseFlags();
  const splitCost = Number(values['split-cost']);
  let stages: PlanStage[];
  let steps: PlanStep[] | undefined;
  let link: LinkModel;
  if (values.preset === 'vllm-ascend-r1') {
    stages = r1Stages(Number(values.tokens), 16, Number(values.tflops), Number(values.mfu));
    // Defaults: the preset's interconnect (docs/dbo.md gives the sources).
    link = {
      bitsPerSecond: parseRate(values.bandwidth ?? '56GB'),
      latencyMs: Number(values['latency-us'] ?? '20') / 1000,
      ranks: 16,
    };
  } else if (values.trace) {
    const phase = values.phase;
    if (phase !== 'prefill' && phase !== 'decode') {
      console.error(`dbo-plan: --phase must be prefill or decode, got ${JSON.stringify(phase)}\n${USAGE}`);
      process.exit(2);
    }
    const sizes = {
      hidden: Number(values.hidden),
      vocab: Number(values.vocab),
      topK: Number(values['top-k']),
    };
    for (const [flag, x] of [
      ['hidden', sizes.hidden],
      ['vocab', sizes.vocab],
      ['top-k', sizes.topK],
    ] as const) {
      if (!Number.isSafeInteger(x) || x < 1) {
        console.error(
          `dbo-plan: --${flag} must be an integer >= 1, got ${JSON.stringify(values[flag])}\n${USAGE}`,
        );
        process.exit(2);
      }
    }
    const seqs = values['decode-seqs'] === undefined ? undefined : Number(values['decode-seqs']);
    if (seqs !== undefined && !(Number.isSafeInteger(seqs) && seqs >= 2)) {
      console.error(
        `dbo-plan: --decode-seqs must be an integer >= 2, got ${JSON.stringify(values['decode-seqs'])}\n${USAGE}`,
      );
      process.exit(2);
    }
    if (values.rank !== undefined)
      stages = stagesFromTrace(values.trace, Number(values.rank), sizes, phase, seqs);
    else {
      const dir = values.trace;
      const skip = Number(values['skip-steps']);
      if (!(Number.isSafeInteger(skip) && skip >= 0)) {
        console.error(
          `dbo-plan: --skip-steps must be an integer >= 0, got ${JSON.stringify(values['skip-steps'])}\n${USAGE}`,
        );
        process.exit(2);
      }
      const traces = Array.from({ length: Number(values.ranks) }, (_, r) =>
        parseRankTrace(readFileSync(join(dir, `rank-${r}.trace.json`), 'utf8'), r).slice(skip),
      );
      steps = planSteps(traces, sizes, phase, seqs);
      if (steps.length === 0) throw new TraceFormatError(`no ${phase} step without DBO in ${dir}`);
      stages = [...steps[0]!.ranks[0]!];
    }
    const rate = parseRate(values.bandwidth ?? '800mbit');
    // --testbed: the link as bench:dbo plays it (its measured latency and tc token bucket).
    link = values.testbed
      ? testbedLink(rate, Number(values.ranks))
      : {
          bitsPerSecond: rate,
          latencyMs: Number(values['latency-us'] ?? '60') / 1000,
          ranks: Number(values.ranks),
          burstBytes: Number(values['burst-bytes']),
        };
    if (!(link.burstBytes! >= 0)) {
      console.error(
        `dbo-plan: --burst-bytes must be a number >= 0, got ${JSON.stringify(values['burst-bytes'])}\n${USAGE}`,
      );
      process.exit(2);
    }
  } else {
    console.error(`dbo-plan: give --trace or --preset\n${USAGE}`);
    process.exit(2);
  }
  const shared = sharedCpuOf(values);
  // --testbed with the testbed's communication CPU: back to back under DBO, as bench:dbo plays it.
  const cpu =
    shared && values.testbed && values['comm-cpu-ms'] === undefined
      ? { ...shared, busyComm: TESTBED_BUSY_COMM_CPU }
      : shared;
  const orders: DboOrderName[] = values.order ? [values.order as DboOrderName] : ['alternate', 'staggered'];
  for (const order of orders) {
    const p = steps
      ? predictSteps(steps, link, order, splitCost, values.phase === 'decode' ? null : 512, cpu)
      : predict(stages, link, order, splitCost, cpu);
    console.log(
      `${order.padEnd(9)} step off ${p.offMs.toFixed(1)} ms (compute ${p.computeMs.toFixed(1)}, comm ${p.commMs.toFixed(1)}, ` +
        `${((p.commMs / p.offMs) * 100).toFixed(1)}%), on ${p.onMs.toFixed(1)} ms (${(((p.onMs - p.offMs) / p.offMs) * 100).toFixed(1)}%, ` +
        `throughput ${((p.offMs / p.onMs - 1) * 100).toFixed(1)}%), efficiency ${p.efficiency.toFixed(2)}` +
        (cpu
          ? `; CPU floor ${p.floorOffMs.toFixed(1)} / ${p.floorOnMs.toFixed(1)} ms, timeline ${p.timelineOnMs.toFixed(1)} ms`
          : ''),
    );
  }
}

if (process.argv[1]?.endsWith('dbo-plan.js')) {
  try {
    main();
  } catch (e) {
    // A trace that cannot give a prediction: say why, without a stack trace.
    const known = [NoDecodeStepsError, UnknownStageError, TraceFormatError].some((c) => e instanceof c);
    if (!known && (e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    console.error(`dbo-plan: ${(e as Error).message}`);
    process.exit(1);
  }
}
