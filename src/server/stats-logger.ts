// The periodic engine stats line (vLLM's LoggingStatLogger): prompt and generation throughput since the
// last line, running and waiting requests, KV cache usage and prefix cache hit rate. Quiet while idle.

import type { AsyncEngine } from '../engine/async/async-engine.js';
import type { EngineStatsSnapshot } from '../engine/async/protocol.js';
import type { Logger } from '../util/logger.js';

/** Default seconds between two stats lines (vLLM's VLLM_LOG_STATS_INTERVAL). */
export const DEFAULT_LOG_STATS_INTERVAL_S = 10;

/** The stats line for the interval between two snapshots `seconds` apart. */
export function formatStatsLine(
  prev: EngineStatsSnapshot,
  cur: EngineStatsSnapshot,
  seconds: number,
): string {
  const promptRate = (cur.promptTokens - prev.promptTokens) / seconds;
  const genRate = (cur.generationTokens - prev.generationTokens) / seconds;
  const queries = cur.prefixCacheQueries - prev.prefixCacheQueries;
  const hits = cur.prefixCacheHits - prev.prefixCacheHits;
  return (
    `Avg prompt throughput: ${promptRate.toFixed(1)} tokens/s, ` +
    `Avg generation throughput: ${genRate.toFixed(1)} tokens/s, ` +
    `Running: ${cur.numRunning} reqs, Waiting: ${cur.numWaiting} reqs, ` +
    `KV cache usage: ${(cur.kvCacheUsage * 100).toFixed(1)}%, ` +
    `Prefix cache hit rate: ${queries > 0 ? ((hits / queries) * 100).toFixed(1) : '0.0'}%`
  );
}

function isIdle(prev: EngineStatsSnapshot, cur: EngineStatsSnapshot): boolean {
  return (
    cur.numRunning === 0 &&
    cur.numWaiting === 0 &&
    cur.promptTokens === prev.promptTokens &&
    cur.generationTokens === prev.generationTokens
  );
}

/** Logs a stats line every `intervalS` seconds while the engine works; returns a stop function. */
export function startStatsLogger(
  engine: AsyncEngine,
  logger: Logger,
  intervalS = DEFAULT_LOG_STATS_INTERVAL_S,
) {
  let prev: { s: EngineStatsSnapshot; t: number } | null = null;
  let wasIdle = true;
  let busy = false;
  const tick = async () => {
    if (busy || !engine.health().alive) return;
    busy = true;
    try {
      const s = await engine.stats();
      const t = performance.now() / 1000;
      if (prev !== null) {
        const idle = isIdle(prev.s, s);
        // One line after activity ends, so the last line shows the engine idle.
        if (!idle || !wasIdle) logger.info(formatStatsLine(prev.s, s, t - prev.t));
        wasIdle = idle;
      }
      prev = { s, t };
    } catch {
      // The engine died between the check and the query: /health reports it.
    } finally {
      busy = false;
    }
  };
  void tick();
  const timer = setInterval(() => void tick(), intervalS * 1000);
  timer.unref();
  return () => clearInterval(timer);
}
