// Collectives benchmark: all-reduce time and bus bandwidth (nccl-tests' busBw = size/time · 2(N-1)/N)
// for 2 ranks over shared memory, TCP loopback, Unix sockets, and — where root and `ip netns` work — two
// testbed hosts joined by a tc-limited link. Prints one table, side by side, and a second with the CPU
// the communication threads spent: bytes moved per CPU-second of a communication thread (bytes moved: the
// all-reduce's bus volume per rank, size x 2(N-1)/N, which the ring sends and receives) and the CPU per
// op of the communication and compute threads (mean over ranks; Linux /proc only).
//
//   node dist/bench/collectives.js [--ranks 2] [--sizes 65536,1048576,16777216] [--seconds 1]
//                                  [--link 1gbit] [--only shm,tcp,unix,testbed] [--gap-ms 0]
//
// --gap-ms G: each rank idles G ms before every timed op, which is timed alone (the median op's time, as a
// collective between two compute stages of a step sees it: a tc token bucket refills during the gap).

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { inHost, whyNoNetns, withTestbed } from '../scripts/testbed/testbed.js';
import {
  createLoopbackTcpGroup,
  createSharedMemoryGroup,
  createTcpGroup,
  type GroupDescriptor,
} from '../src/distributed/group.js';
import { parseBenchArgs } from './bench-args.js';
import type { BenchRankConfig, BenchRankResult } from './collectives-rank.js';

const RANK = fileURLToPath(new URL('./collectives-rank.js', import.meta.url));

const { values } = parseBenchArgs(import.meta.url, {
  options: {
    ranks: { type: 'string', default: '2' },
    sizes: { type: 'string', default: '65536,1048576,16777216' },
    seconds: { type: 'string', default: '1' },
    link: { type: 'string', default: '1gbit' },
    only: { type: 'string', default: 'shm,tcp,unix,testbed' },
    'gap-ms': { type: 'string', default: '0' },
  },
});
const gapMs = Number(values['gap-ms']);
if (!(gapMs >= 0 && gapMs <= 10_000)) {
  console.error(
    `collectives: --gap-ms must be 0..10000 milliseconds, got ${JSON.stringify(values['gap-ms'])}`,
  );
  process.exit(2);
}
const ranks = Number(values.ranks);
const sizes = values.sizes.split(',').map(Number);
const seconds = Number(values.seconds);
const only = new Set(values.only.split(','));

function threadRanks(descriptor: GroupDescriptor): Promise<BenchRankResult[]> {
  return Promise.all(
    Array.from({ length: descriptor.worldSize }, (_, rank) => {
      const config: BenchRankConfig = { descriptor, rank, sizes, seconds, gapMs };
      const worker = new Worker(RANK, { workerData: config });
      return new Promise<BenchRankResult>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
    }),
  );
}

function processRanks(
  descriptor: GroupDescriptor,
  wrap: (rank: number) => string[],
): Promise<BenchRankResult[]> {
  return Promise.all(
    Array.from({ length: descriptor.worldSize }, (_, rank) => {
      const config: BenchRankConfig = { descriptor, rank, sizes, seconds, gapMs };
      const [cmd, ...args] = [...wrap(rank), process.execPath, RANK, JSON.stringify(config)];
      const child: ChildProcess = spawn(cmd!, args, { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
      });
      return new Promise<BenchRankResult>((resolve, reject) =>
        child.on('exit', (code) =>
          code === 0
            ? resolve(JSON.parse(out) as BenchRankResult)
            : reject(new Error(`rank ${rank} exited ${code}`)),
        ),
      );
    }),
  );
}

interface Row {
  readonly transport: string;
  readonly secondsPerOp: number[];
  readonly commCpuPerOp: number[];
  readonly computeCpuPerOp: number[];
}
const rows: Row[] = [];
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const rowOf = (transport: string, results: BenchRankResult[]): Row => ({
  transport,
  secondsPerOp: sizes.map((_, i) => Math.max(...results.map((r) => r.secondsPerOp[i]!))),
  commCpuPerOp: sizes.map((_, i) => mean(results.map((r) => r.commCpuPerOp[i]!))),
  computeCpuPerOp: sizes.map((_, i) => mean(results.map((r) => r.computeCpuPerOp[i]!))),
});

if (only.has('shm'))
  rows.push(rowOf('shared memory (threads)', await threadRanks(createSharedMemoryGroup(ranks))));
if (only.has('tcp'))
  rows.push(rowOf('TCP loopback (threads)', await threadRanks(await createLoopbackTcpGroup(ranks))));
if (only.has('unix')) {
  const dir = mkdtempSync(join(tmpdir(), 'duet-bench-'));
  try {
    const group = createTcpGroup(
      Array.from({ length: ranks }, (_, r) => ({ path: join(dir, `r${r}.sock`) })),
    );
    rows.push(rowOf('Unix sockets (threads)', await threadRanks(group)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
if (only.has('testbed')) {
  const why = whyNoNetns();
  if (why) console.log(`testbed skipped: ${why}`);
  else
    await withTestbed({ hosts: ranks, bandwidth: values.link }, async (hosts) => {
      const group = createTcpGroup(hosts.map((h) => ({ host: h.address, port: 29_600 })));
      const results = await processRanks(group, (r) => inHost(hosts[r]!));
      rows.push(rowOf(`testbed ${values.link} link (processes)`, results));
    });
}

const busFactor = (2 * (ranks - 1)) / ranks;
const fmtSize = (b: number) =>
  b >= 1 << 20 ? `${b / (1 << 20)} MB` : b >= 1024 ? `${b / 1024} KB` : `${b} B`;
console.log(
  `\nall-reduce, ${ranks} ranks: time per op and bus bandwidth (busBw = size/time x ${busFactor.toFixed(2)})` +
    (gapMs > 0 ? `, each op after ${gapMs} ms idle` : ''),
);
console.log(['transport'.padEnd(34), ...sizes.map((s) => fmtSize(s).padStart(24))].join(''));
for (const row of rows) {
  const cells = row.secondsPerOp.map((t, i) => {
    const gbps = ((sizes[i]! / t) * busFactor) / 1e9;
    return `${(t * 1000).toFixed(2)} ms ${gbps.toFixed(3)} GB/s`.padStart(24);
  });
  console.log([row.transport.padEnd(34), ...cells].join(''));
}

console.log(
  '\ncommunication-thread CPU: MB moved per CPU-second (bus volume per rank), and CPU ms per op of the',
);
console.log('communication thread / the compute thread (mean over ranks)');
console.log(['transport'.padEnd(34), ...sizes.map((s) => fmtSize(s).padStart(30))].join(''));
for (const row of rows) {
  const cells = row.commCpuPerOp.map((cpu, i) => {
    const mbPerCpuS = (sizes[i]! * busFactor) / cpu / 1e6;
    const ms = (x: number) => (Number.isFinite(x) ? (x * 1000).toFixed(3) : 'n/a');
    const rate = Number.isFinite(mbPerCpuS) ? mbPerCpuS.toFixed(0) : 'n/a';
    return `${rate} MB/s ${ms(cpu)}/${ms(row.computeCpuPerOp[i]!)} ms`.padStart(30);
  });
  console.log([row.transport.padEnd(34), ...cells].join(''));
}
