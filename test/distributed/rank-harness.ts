// Starts the ranks of a test group — as worker threads of this process or as separate processes
// (optionally wrapped, e.g. in `ip netns exec NS`) — and collects their events and results.

import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ConnectOptions } from '../../src/distributed/connect.js';
import type { GroupDescriptor } from '../../src/distributed/group.js';
import type { RankConfig, RankMessage } from './rank-main.js';

const RANK_MAIN = fileURLToPath(new URL('./rank-main.js', import.meta.url));

export interface RankHandle {
  readonly rank: number;
  /** Settles with the scenario's result; rejects if the rank failed or exited without one. */
  readonly result: Promise<unknown>;
  /** Resolves when the rank reports `event`. */
  waitFor(event: string): Promise<Record<string, unknown>>;
  /** Kills the rank abruptly (worker.terminate / SIGKILL). */
  kill(): Promise<void>;
}

export interface StartOptions {
  readonly scenario: string;
  readonly params?: Record<string, unknown>;
  readonly options?: ConnectOptions;
  /** Per-rank descriptors (e.g. to route one rank through a proxy); default: the same for all. */
  readonly descriptorFor?: (rank: number) => GroupDescriptor;
  /** Processes only: a command prefix per rank, e.g. ['ip', 'netns', 'exec', 'ns0']. */
  readonly wrap?: (rank: number) => string[];
}

class Collector {
  private readonly waiters = new Map<string, ((e: Record<string, unknown>) => void)[]>();
  private readonly seen = new Map<string, Record<string, unknown>>();
  resolve!: (v: unknown) => void;
  reject!: (e: Error) => void;
  readonly result: Promise<unknown>;
  settled = false;
  constructor(readonly rank: number) {
    this.result = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.result.catch(() => {});
  }
  onMessage(m: RankMessage): void {
    if (m.type === 'event') {
      const name = String(m.event.event);
      this.seen.set(name, m.event);
      for (const w of this.waiters.get(name) ?? []) w(m.event);
      this.waiters.delete(name);
    } else if (m.type === 'result') {
      this.settled = true;
      this.resolve(m.value);
    } else {
      this.settled = true;
      this.reject(new Error(`rank ${this.rank}: ${m.message}`));
    }
  }
  onExit(detail: string): void {
    if (!this.settled) this.reject(new Error(`rank ${this.rank} exited without a result (${detail})`));
    this.settled = true;
  }
  waitFor(event: string): Promise<Record<string, unknown>> {
    const seen = this.seen.get(event);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => {
      const list = this.waiters.get(event) ?? [];
      list.push(resolve);
      this.waiters.set(event, list);
    });
  }
}

function configFor(descriptor: GroupDescriptor, rank: number, start: StartOptions): RankConfig {
  return {
    descriptor: start.descriptorFor?.(rank) ?? descriptor,
    rank,
    scenario: start.scenario,
    params: start.params ?? {},
    options: start.options ?? {},
  };
}

/** Starts every rank as a worker thread of this process. */
export function startThreadRanks(descriptor: GroupDescriptor, start: StartOptions): RankHandle[] {
  return Array.from({ length: descriptor.worldSize }, (_, rank) => {
    const c = new Collector(rank);
    const worker = new Worker(RANK_MAIN, { workerData: configFor(descriptor, rank, start) });
    worker.on('message', (m: RankMessage) => c.onMessage(m));
    worker.on('error', (e) => c.onExit(`error: ${e.message}`));
    const exited = new Promise<void>((resolve) =>
      worker.on('exit', (code) => {
        c.onExit(`exit code ${code}`);
        resolve();
      }),
    );
    return {
      rank,
      result: c.result,
      waitFor: (event) => c.waitFor(event),
      kill: async () => {
        await worker.terminate();
        await exited;
      },
    };
  });
}

/** Starts every rank as a separate Node process (optionally wrapped in a command such as `ip netns exec`). */
export function startProcessRanks(descriptor: GroupDescriptor, start: StartOptions): RankHandle[] {
  return Array.from({ length: descriptor.worldSize }, (_, rank) => {
    const c = new Collector(rank);
    const argv = [process.execPath, RANK_MAIN, JSON.stringify(configFor(descriptor, rank, start))];
    const prefix = start.wrap?.(rank) ?? [];
    const [cmd, ...args] = [...prefix, ...argv];
    const child: ChildProcess = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      let nl = out.indexOf('\n');
      while (nl >= 0) {
        const line = out.slice(0, nl);
        out = out.slice(nl + 1);
        if (line.startsWith('@@')) c.onMessage(JSON.parse(line.slice(2)) as RankMessage);
        nl = out.indexOf('\n');
      }
    });
    child.stderr!.on('data', (d: Buffer) => {
      err = (err + d.toString()).slice(-4000);
    });
    const exited = new Promise<void>((resolve) =>
      child.on('exit', (code, signal) => {
        c.onExit(`exit code ${code}, signal ${signal}${err ? `; stderr: ${err}` : ''}`);
        resolve();
      }),
    );
    return {
      rank,
      result: c.result,
      waitFor: (event) => c.waitFor(event),
      kill: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
      },
    };
  });
}

/** All ranks' results, in rank order; rejects with the first failure. Kills stragglers after `ms`. */
export async function resultsWithin(ranks: RankHandle[], ms: number): Promise<unknown[]> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`ranks did not finish within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([Promise.all(ranks.map((r) => r.result)), timeout]);
  } finally {
    clearTimeout(timer);
    await Promise.all(ranks.map((r) => r.kill()));
  }
}
