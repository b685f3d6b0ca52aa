// Runs `duet` as separate processes on "hosts" — network-namespace hosts of the testbed, or this machine's
// loopback where namespaces are unavailable — and talks HTTP to a server listening on a Unix socket (a
// path-bound socket is reachable from every namespace, so the test process needs no route into the
// testbed). Every process started here is killed by `killAll`, whatever state the test ends in.

import { type ChildProcess, spawn } from 'node:child_process';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inHost, type TestbedHost } from '../../scripts/testbed/testbed.js';
import { fixtureDir } from '../helpers/golden.js';

/** bin/duet.js of this checkout (compiled tests live in dist/test/distributed). */
export const DUET_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'duet.js');

/** Where a process runs: its command prefix and the address other hosts reach it at. */
export interface NodeHost {
  readonly name: string;
  readonly address: string;
  /** Command that runs a program inside the host ([] on loopback). */
  readonly prefix: readonly string[];
}

/** The testbed's hosts as places to run processes. */
export function testbedNodeHosts(hosts: readonly TestbedHost[]): NodeHost[] {
  return hosts.map((h) => ({
    name: `host ${h.index} (${h.address})`,
    address: h.address,
    prefix: inHost(h),
  }));
}

/** `n` "hosts" that are all this machine's loopback. */
export function loopbackNodeHosts(n: number): NodeHost[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `loopback process ${i}`,
    address: '127.0.0.1',
    prefix: [],
  }));
}

/** A TCP port free on 127.0.0.1 right now (for the rendezvous on loopback). */
export async function freeLoopbackPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no port from listen(0)');
  return address.port;
}

export interface ExitStatus {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** One `duet` process and everything it printed so far. */
export class DuetProcess {
  stdout = '';
  stderr = '';
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitStatus>;
  private exitStatus: ExitStatus | null = null;
  private readonly child: ChildProcess;

  constructor(
    readonly label: string,
    host: NodeHost,
    args: readonly string[],
    env: NodeJS.ProcessEnv = {},
  ) {
    const argv = [...host.prefix, process.execPath, DUET_BIN, ...args];
    // The cluster secret comes only from the test, never from the environment the tests run in.
    const { DUET_CLUSTER_SECRET: _ignored, ...inherited } = process.env;
    this.child = spawn(argv[0]!, argv.slice(1), {
      env: { ...inherited, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      this.stdout += s;
    });
    this.child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      this.stderr += s;
    });
    this.exited = new Promise((resolve) => {
      this.child.once('close', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
      });
      this.child.once('error', (e) => {
        this.stderr += `\nspawn failed: ${e.message}`;
        this.exitStatus = { code: null, signal: null };
        resolve(this.exitStatus);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get isRunning(): boolean {
    return this.exitStatus === null;
  }

  /** The process's stderr and stdout, labelled, for assertion messages. */
  get log(): string {
    return `--- ${this.label} stderr ---\n${this.stderr}\n--- ${this.label} stdout ---\n${this.stdout.slice(0, 2000)}`;
  }

  /** Sends `signal` (the process is node itself: `ip netns exec` execs it in place). */
  signal(signal: NodeJS.Signals): void {
    if (this.isRunning) this.child.kill(signal);
  }

  /**
   * Waits until stderr or stdout matches `pattern`; rejects when the process exits first or `timeoutMs`
   * passes, with its log in the message.
   */
  async waitForOutput(pattern: RegExp, timeoutMs: number): Promise<RegExpExecArray> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const m = pattern.exec(this.stderr) ?? pattern.exec(this.stdout);
      if (m) return m;
      if (!this.isRunning) throw new Error(`${this.label} exited before printing ${pattern}\n${this.log}`);
      if (Date.now() > end)
        throw new Error(`${this.label} did not print ${pattern} in ${timeoutMs} ms\n${this.log}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Waits for the exit; SIGKILLs the process after `timeoutMs` and reports that in the status. */
  async waitExit(timeoutMs: number): Promise<ExitStatus & { readonly killed: boolean }> {
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      this.signal('SIGKILL');
    }, timeoutMs);
    const status = await this.exited;
    clearTimeout(timer);
    return { ...status, killed };
  }
}

/** The processes a test started, so that all of them are stopped at the end. */
export class ProcessSet {
  private readonly all: DuetProcess[] = [];

  /** Starts `duet ARGS` in `host`. */
  spawn(label: string, host: NodeHost, args: readonly string[], env: NodeJS.ProcessEnv = {}): DuetProcess {
    const p = new DuetProcess(label, host, args, env);
    this.all.push(p);
    return p;
  }

  /** SIGKILLs (and resumes, in case one was stopped) every process still running; waits for them. */
  async killAll(): Promise<void> {
    for (const p of this.all) {
      p.signal('SIGKILL');
      p.signal('SIGCONT');
    }
    await Promise.all(this.all.map((p) => p.exited));
  }
}

/** An HTTP reply read whole. */
export interface UdsReply {
  readonly status: number;
  readonly body: string;
}

/** One HTTP request to a server on a Unix socket; resolves with the whole reply. */
export function udsRequest(
  socketPath: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  timeoutMs = 30_000,
): Promise<UdsReply> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath,
        method,
        path,
        headers: payload === undefined ? {} : { 'content-type': 'application/json' },
        timeout: timeoutMs,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (s: string) => {
          text += s;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${path} got no reply in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

/** A streaming (server-sent events) reply: resolves `firstEvent` with the first `data:` line. */
export interface UdsStream {
  readonly status: Promise<number>;
  readonly firstEvent: Promise<string>;
  /** The whole body once the server ends the response (or the connection closes). */
  readonly body: Promise<string>;
}

/** POSTs `body` and reads the reply as it arrives. */
export function udsStream(socketPath: string, path: string, body: unknown): UdsStream {
  let resolveStatus!: (s: number) => void;
  let resolveFirst!: (s: string) => void;
  let rejectFirst!: (e: Error) => void;
  const status = new Promise<number>((r) => {
    resolveStatus = r;
  });
  const firstEvent = new Promise<string>((res, rej) => {
    resolveFirst = res;
    rejectFirst = rej;
  });
  firstEvent.catch(() => {});
  const whole = new Promise<string>((resolve, reject) => {
    const req = request(
      { socketPath, method: 'POST', path, headers: { 'content-type': 'application/json' } },
      (res) => {
        resolveStatus(res.statusCode ?? 0);
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (s: string) => {
          text += s;
          const m = /^data: (.*)$/m.exec(text);
          if (m) resolveFirst(m[1]!);
        });
        const finish = () => {
          rejectFirst(new Error(`the stream ended without an event: ${text}`));
          resolve(text);
        };
        res.on('end', finish);
        res.on('close', finish);
        res.on('error', () => finish());
      },
    );
    req.on('error', (e) => {
      rejectFirst(e);
      reject(e);
    });
    req.end(JSON.stringify(body));
  });
  return { status, firstEvent, body: whole };
}

/** `duet serve` flags both nodes of a `-tp 2 --nnodes 2` test cluster share: fixture `model`, rendezvous at `masterAddr`:`port`. */
export function clusterFlags(
  model: string,
  masterAddr: string,
  port: number,
  distTimeoutS: number,
): string[] {
  return [
    '--model',
    fixtureDir(model),
    '--block-size',
    '16',
    '--kv-cache-memory',
    '8MiB',
    '-tp',
    '2',
    '--nnodes',
    '2',
    '--master-addr',
    masterAddr,
    '--master-port',
    String(port),
    '--num-threads',
    '1',
    '--dist-timeout',
    String(distTimeoutS),
  ];
}
