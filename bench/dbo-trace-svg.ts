// Draws a summary picture (SVG) of steps from the Chrome traces: one panel per step, four lanes each
// (micro-batch A compute, A communication, B compute, B communication) on one shared time axis, so that a
// step without DBO and a step with DBO can be compared at a glance. The DBO benchmark calls it; it also
// runs on its own:
//
//   node dist/bench/dbo-trace-svg.js OFF_TRACE_DIR ON_TRACE_DIR OUT.svg [--rank 0] [--step N]
//
// (each trace folder as written by --trace-dir; by default the median step of each is drawn).

import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseBenchArgs } from './bench-args.js';
import { LANES, medianStep, type RankStep, readTraceDir } from './dbo-trace.js';

/** One panel: a step and its title. */
export interface SvgPanel {
  readonly title: string;
  readonly step: RankStep;
}

const LANE_ROWS = [
  { lane: LANES.aCompute, label: 'A compute', color: '#3b6fb6' },
  { lane: LANES.aComm, label: 'A comm', color: '#e8912d' },
  { lane: LANES.bCompute, label: 'B compute', color: '#4a9a5b' },
  { lane: LANES.bComm, label: 'B comm', color: '#c8553d' },
] as const;

const WIDTH = 1100;
const LEFT = 110;
const RIGHT = 30;
const LANE_H = 26;
const LANE_GAP = 6;
const PANEL_TITLE_H = 28;
const PANEL_GAP = 22;
const AXIS_H = 34;

/** Span labels short enough to fit: stages as `L3 attn AR`, AR / AG / RS / A2A for the collectives. */
const SHORT: Record<string, string> = {
  all_reduce: 'AR',
  all_gather: 'AG',
  reduce_scatter: 'RS',
  all_to_all: 'A2A',
  broadcast: 'BC',
  barrier: 'BAR',
  'split vote': 'vote',
};

function shortName(name: string): string {
  const base = name.replace(/ #\d+$/, '');
  return (
    SHORT[base] ??
    base
      .replace(/^layer /, 'L')
      .replace(/ all-reduce$/, ' AR')
      .replace(/ all-gather$/, ' AG')
      .replace(/ reduce-scatter$/, ' RS')
      .replace(/ all-to-all$/, ' A2A')
      .replace(/ experts 1\/2$/, ' e1')
  );
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A round tick spacing giving about `target` ticks over `range`. */
function tickStep(range: number, target: number): number {
  const raw = range / target;
  const pow = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * pow >= raw) return m * pow;
  return 10 * pow;
}

/**
 * Renders the panels on one time axis (the longest step fills the width). `caption` lines go under the
 * picture (e.g. the measured figures).
 */
export function renderStepsSvg(panels: readonly SvgPanel[], caption: readonly string[] = []): string {
  const maxMs = Math.max(1e-3, ...panels.map((p) => p.step.wallMs));
  const plotW = WIDTH - LEFT - RIGHT;
  const x = (ms: number) => LEFT + (ms / maxMs) * plotW;
  const panelH = PANEL_TITLE_H + LANE_ROWS.length * (LANE_H + LANE_GAP);
  const legendH = 40;
  const height = 16 + panels.length * (panelH + PANEL_GAP) + AXIS_H + legendH + caption.length * 18 + 10;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${height}" fill="#ffffff"/>`,
  );
  const tick = tickStep(maxMs, 10);
  let y = 16;
  for (const panel of panels) {
    out.push(`<text x="${LEFT}" y="${y + 16}" font-size="14" font-weight="bold">${esc(panel.title)}</text>`);
    const top = y + PANEL_TITLE_H;
    const bottom = top + LANE_ROWS.length * (LANE_H + LANE_GAP) - LANE_GAP;
    // Grid lines at the ticks, and the step's end.
    for (let t = 0; t <= maxMs + 1e-9; t += tick) {
      out.push(
        `<line x1="${x(t).toFixed(1)}" y1="${top}" x2="${x(t).toFixed(1)}" y2="${bottom}" stroke="#e4e4e4"/>`,
      );
    }
    const endX = x(panel.step.wallMs).toFixed(1);
    out.push(
      `<line x1="${endX}" y1="${top - 4}" x2="${endX}" y2="${bottom + 4}" stroke="#222" stroke-dasharray="4 3"/>`,
    );
    LANE_ROWS.forEach((row, i) => {
      const ly = top + i * (LANE_H + LANE_GAP);
      out.push(
        `<text x="${LEFT - 8}" y="${ly + LANE_H / 2 + 4}" text-anchor="end" fill="#333">${row.label}</text>`,
        `<rect x="${LEFT}" y="${ly}" width="${plotW}" height="${LANE_H}" fill="#f7f7f7"/>`,
      );
      for (const s of panel.step.spans.filter((sp) => sp.lane === row.lane)) {
        const sx = x(s.startMs);
        const w = Math.max(0.6, x(s.startMs + s.durMs) - sx);
        out.push(
          `<rect x="${sx.toFixed(2)}" y="${ly + 2}" width="${w.toFixed(2)}" height="${LANE_H - 4}" fill="${row.color}" stroke="#ffffff" stroke-width="0.6"><title>${esc(s.name)}: ${s.startMs.toFixed(2)} + ${s.durMs.toFixed(2)} ms</title></rect>`,
        );
        // Short labels (layer number, collective) where they fit.
        const label = shortName(s.name);
        if (w > label.length * 6.2 + 4) {
          out.push(
            `<text x="${(sx + w / 2).toFixed(1)}" y="${ly + LANE_H / 2 + 4}" text-anchor="middle" fill="#fff" font-size="10">${esc(label)}</text>`,
          );
        }
      }
    });
    y += panelH + PANEL_GAP;
  }
  // Time axis.
  const axisY = y - PANEL_GAP + 6;
  out.push(`<line x1="${LEFT}" y1="${axisY}" x2="${LEFT + plotW}" y2="${axisY}" stroke="#333"/>`);
  for (let t = 0; t <= maxMs + 1e-9; t += tick) {
    const tx = x(t).toFixed(1);
    out.push(
      `<line x1="${tx}" y1="${axisY}" x2="${tx}" y2="${axisY + 5}" stroke="#333"/>`,
      `<text x="${tx}" y="${axisY + 18}" text-anchor="middle" fill="#333">${Number(t.toPrecision(6))}</text>`,
    );
  }
  out.push(`<text x="${LEFT - 8}" y="${axisY + 18}" text-anchor="end" fill="#333">ms</text>`);
  // Legend.
  let lx = LEFT;
  const ly = axisY + AXIS_H;
  for (const row of LANE_ROWS) {
    out.push(
      `<rect x="${lx}" y="${ly - 10}" width="14" height="12" fill="${row.color}"/>`,
      `<text x="${lx + 19}" y="${ly}" fill="#333">${row.label}</text>`,
    );
    lx += 120;
  }
  out.push(
    `<line x1="${lx}" y1="${ly - 4}" x2="${lx + 20}" y2="${ly - 4}" stroke="#222" stroke-dasharray="4 3"/>`,
    `<text x="${lx + 26}" y="${ly}" fill="#333">end of step</text>`,
  );
  out.push(
    `<text x="${LEFT}" y="${ly + 20}" fill="#555">compute spans are named by the hand-over point that ends them (L3 attn AR: layer 3 up to its attention all-reduce; e1: the first expert half); AR all-reduce, AG all-gather, RS reduce-scatter, A2A all-to-all (issue to completion, waiting for the peer included)</text>`,
  );
  caption.forEach((line, i) => {
    out.push(`<text x="${LEFT}" y="${ly + 44 + i * 18}" fill="#222">${esc(line)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** The title the benchmark gives a step's panel. */
export function panelTitle(label: string, step: RankStep): string {
  const how = step.split ? `split at token ${step.splitToken}` : 'one batch';
  return `${label}: step of ${step.tokens} tokens, ${how}, ${step.wallMs.toFixed(1)} ms (rank ${step.rank})`;
}

function main(): void {
  const { values, positionals } = parseBenchArgs(import.meta.url, {
    allowPositionals: true,
    options: { rank: { type: 'string', default: '0' }, step: { type: 'string' } },
  });
  if (positionals.length !== 3) {
    console.error(
      'usage: node dist/bench/dbo-trace-svg.js OFF_TRACE_DIR ON_TRACE_DIR OUT.svg [--rank R] [--step N]',
    );
    process.exit(2);
  }
  const rank = Number(values.rank);
  const pick = (dir: string): RankStep => {
    const steps = readTraceDir(dir, rank + 1)[rank]!;
    const chosen = values.step !== undefined ? steps[Number(values.step)] : medianStep(steps);
    if (!chosen) throw new Error(`no step ${values.step ?? '(median)'} in ${dir} (it has ${steps.length})`);
    return chosen;
  };
  const off = pick(positionals[0]!);
  const on = pick(positionals[1]!);
  writeFileSync(
    positionals[2]!,
    renderStepsSvg([
      { title: panelTitle('without DBO', off), step: off },
      { title: panelTitle('with DBO', on), step: on },
    ]),
  );
  console.log(`wrote ${positionals[2]}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
