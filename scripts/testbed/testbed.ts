// Access to the network-namespace testbed (scripts/testbed/testbed.sh) for tests and benchmarks: whether
// this machine can host one (root, iproute2, working `ip netns`, veth and tc), and a scope that creates
// N shaped hosts and always removes them afterwards — also when the body throws or the process exits.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';

const SCRIPT = fileURLToPath(new URL('../../../scripts/testbed/testbed.sh', import.meta.url));

export interface TestbedHost {
  readonly index: number;
  /** The host's network namespace. */
  readonly namespace: string;
  /** Its address on the testbed network (198.18.0.0/15). */
  readonly address: string;
}

export interface TestbedOptions {
  readonly hosts: number;
  /** tc rate per link and direction, e.g. '1gbit'; unlimited when absent. */
  readonly bandwidth?: string;
  /** One-way delay per link, e.g. '100us' (applied only where the kernel has netem). */
  readonly delay?: string;
}

function script(args: string[]): { ok: boolean; output: string } {
  const r = spawnSync('bash', [SCRIPT, ...args], { encoding: 'utf8', timeout: 30_000 });
  return {
    ok: r.status === 0,
    output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? r.error.message : ''}`.trim(),
  };
}

/**
 * Why this machine cannot host a testbed, or undefined when it can. Probes for real: it creates and
 * removes a one-host testbed with a rate limit.
 */
export function whyNoNetns(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'network namespaces need root';
  const check = script(['check']);
  if (!check.ok) return check.output;
  const name = `${process.pid}-probe${randomBytes(3).toString('hex')}`;
  const probe = script(['up', '--name', name, '--hosts', '1', '--bandwidth', '10mbit']);
  script(['down', '--name', name]);
  return probe.ok ? undefined : `cannot create a test namespace: ${probe.output}`;
}

/** True when root and `ip netns` (with veth and tc) work here. */
export function canUseNetns(): boolean {
  return whyNoNetns() === undefined;
}

/**
 * The token bucket (bytes) testbed.sh shapes a link of `bitsPerSecond` with: 1 ms of traffic, at least
 * 128 KiB (its MIN_BURST; keep the two in step). After the link was idle that many bytes pass at once.
 */
export function testbedBurstBytes(bitsPerSecond: number): number {
  return Math.max(Math.floor(bitsPerSecond / 8 / 1000), 131072);
}

/** The command prefix that runs a program inside a host. */
export function inHost(host: TestbedHost): string[] {
  return ['ip', 'netns', 'exec', host.namespace];
}

/** Creates a testbed, runs `body` with its hosts, and removes the testbed whatever happens. */
export async function withTestbed<T>(
  options: TestbedOptions,
  body: (hosts: TestbedHost[]) => Promise<T>,
): Promise<T> {
  script(['clean']); // testbeds left by processes that died
  const name = `${process.pid}-${randomBytes(3).toString('hex')}`;
  const args = ['up', '--name', name, '--hosts', String(options.hosts)];
  if (options.bandwidth) args.push('--bandwidth', options.bandwidth);
  if (options.delay) args.push('--delay', options.delay);
  const removeOnExit = () => script(['down', '--name', name]);
  process.once('exit', removeOnExit);
  try {
    const up = script(args);
    if (!up.ok) throw new Error(`testbed.sh ${args.join(' ')} failed: ${up.output}`);
    const hosts = Array.from({ length: options.hosts }, (_, i) => ({
      index: i,
      namespace: `duet-tb-${name}-h${i}`,
      address: `198.18.0.${i + 1}`,
    }));
    return await body(hosts);
  } finally {
    process.removeListener('exit', removeOnExit);
    removeOnExit();
  }
}
