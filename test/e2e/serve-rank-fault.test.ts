// `duet serve` spread over two hosts (`-tp 2 --nnodes 2`: the head serves in host 0, the headless node
// runs rank 1 in host 1, separate processes), when things go wrong:
// - the headless node starts 4 s before the head (longer than --dist-timeout: start-up has its own, longer
//   limit) and joins; then it is SIGKILLed mid-request: the in-flight requests (one whole, one streamed)
//   end with an error, /health answers 503 within --dist-timeout (3 s) plus a 2 s margin, and the head
//   still shuts down cleanly on SIGTERM;
// - the headless node stalls (SIGSTOP, its sockets stay open): the same, detected by the timeout alone;
// - a node that runs another model or another setting is refused, both sides say what differs, and the
//   head keeps waiting for a matching node, which then joins;
// - with --cluster-secret on the head, a node with no or a wrong secret is refused and one with the
//   secret (through DUET_CLUSTER_SECRET) joins; the secret never appears in the logs.
// Hosts are two network-namespace hosts of the testbed (10 Gbit/s) where it can be created, otherwise two
// processes on loopback. The server listens on a Unix socket, reachable from every namespace.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { whyNoNetns, withTestbed } from '../../scripts/testbed/testbed.js';
import {
  clusterFlags,
  freeLoopbackPort,
  loopbackNodeHosts,
  type NodeHost,
  ProcessSet,
  testbedNodeHosts,
  udsRequest,
  udsStream,
} from '../distributed/multi-host-harness.js';

/** --dist-timeout of the fault cases, seconds. */
const DIST_TIMEOUT_S = 3;
/** Allowed beyond the timeout: the transport checks silence every timeout/4, plus process scheduling. */
const MARGIN_MS = 2000;

const noNetns = whyNoNetns();
const tmp = mkdtempSync(join(tmpdir(), 'duet-rank-fault-'));
const processes = new ProcessSet();
after(async () => {
  await processes.killAll();
  rmSync(tmp, { recursive: true, force: true });
});

/** Runs `body` with two hosts: the testbed's, or loopback where namespaces are unavailable. */
async function withTwoHosts(
  body: (a: NodeHost, b: NodeHost, nextPort: () => Promise<number>) => Promise<void>,
) {
  if (noNetns === undefined) {
    await withTestbed({ hosts: 2, bandwidth: '10gbit', delay: '100us' }, async (tb) => {
      const [a, b] = testbedNodeHosts(tb);
      let port = 29600;
      await body(a!, b!, async () => port++);
    });
  } else {
    const [a, b] = loopbackNodeHosts(2);
    await body(a!, b!, freeLoopbackPort);
  }
}

let socketCount = 0;

/**
 * The testbed hosts are not loopback, so the nodes share a cluster secret, passed in the environment
 * (the secret test below passes its own on the command line instead).
 */
const CLUSTER_ENV = { DUET_CLUSTER_SECRET: 'serve-rank-fault-secret' };

/** Starts the head server (node rank 0) on a fresh Unix socket; returns it and the socket path. */
function startHead(
  host: NodeHost,
  flags: string[],
  extra: string[] = [],
  env: NodeJS.ProcessEnv = CLUSTER_ENV,
) {
  const socket = join(tmp, `head-${socketCount++}.sock`);
  const head = processes.spawn(
    'head',
    host,
    ['serve', ...flags, '--served-model-name', 'tiny', '--uds', socket, '--disable-log-stats', ...extra],
    env,
  );
  return { head, socket };
}

const LONG_REQUEST = {
  model: 'tiny',
  prompt: [500, 1, 2, 3],
  max_tokens: 240,
  temperature: 0,
  ignore_eos: true,
};

/** Polls /health until it answers 503; returns ms from `since`. */
async function msUntilUnhealthy(socket: string, since: number, limitMs: number): Promise<number> {
  for (;;) {
    const r = await udsRequest(socket, 'GET', '/health');
    if (r.status === 503) return performance.now() - since;
    assert.equal(r.status, 200, `/health: ${r.body}`);
    if (performance.now() - since > limitMs) return performance.now() - since;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

test(`two hosts (${noNetns === undefined ? 'network-namespace testbed' : `loopback: ${noNetns}`})`, async (t) => {
  await withTwoHosts(async (hostA, hostB, nextPort) => {
    for (const [fault, signal] of [
      ['killed (SIGKILL)', 'SIGKILL'],
      ['stalled (SIGSTOP)', 'SIGSTOP'],
    ] as const) {
      await t.test(
        `the headless node ${fault} mid-request: requests fail, /health 503 within the timeout`,
        async () => {
          const flags = clusterFlags('v2-tiny', hostA.address, await nextPort(), DIST_TIMEOUT_S);
          const node = processes.spawn(
            'headless node',
            hostB,
            ['serve', ...flags, '--node-rank', '1', '--headless'],
            CLUSTER_ENV,
          );
          if (signal === 'SIGKILL') {
            // Start-up is not bound by --dist-timeout: a node that dials longer than that still joins.
            await node.waitForOutput(/joining the head/, 30_000);
            await new Promise((resolve) => setTimeout(resolve, DIST_TIMEOUT_S * 1000 + 1000));
          }
          const { head, socket } = startHead(hostA, flags);
          await head.waitForOutput(/serving model "tiny" .* at unix:/, 30_000);
          assert.equal((await udsRequest(socket, 'GET', '/health')).status, 200);

          // Several requests in flight at once, whole and streamed, when the node fails.
          const wholes = Array.from({ length: 3 }, () =>
            udsRequest(socket, 'POST', '/v1/completions', LONG_REQUEST),
          );
          const streams = Array.from({ length: 2 }, () =>
            udsStream(socket, '/v1/completions', { ...LONG_REQUEST, stream: true }),
          );
          for (const stream of streams) assert.equal(await stream.status, 200);
          await Promise.all(streams.map((stream) => stream.firstEvent)); // requests are running now
          const t0 = performance.now();
          node.signal(signal);

          const limitMs = DIST_TIMEOUT_S * 1000 + MARGIN_MS;
          const unhealthyAfter = await msUntilUnhealthy(socket, t0, limitMs + 5000);
          t.diagnostic(`${fault}: /health 503 after ${Math.round(unhealthyAfter)} ms (limit ${limitMs} ms)`);
          assert.ok(unhealthyAfter <= limitMs, `/health turned 503 after ${Math.round(unhealthyAfter)} ms`);
          const health = await udsRequest(socket, 'GET', '/health');
          assert.match(health.body, /the engine is dead.*peer rank 1/);

          const answers = await Promise.all(wholes);
          const answeredAfter = performance.now() - t0;
          t.diagnostic(
            `${fault}: all ${wholes.length + streams.length} requests answered after ${Math.round(answeredAfter)} ms`,
          );
          for (const r of answers) {
            assert.equal(r.status, 500, r.body);
            const error = JSON.parse(r.body).error as { message: string };
            assert.match(error.message, /peer rank 1/, 'the error names the lost rank');
          }
          for (const stream of streams) {
            const streamed = await stream.body;
            assert.match(streamed, /^data: \{"error":/m, `the stream ends with an error event:\n${streamed}`);
            assert.doesNotMatch(
              streamed,
              /"finish_reason":"length"/,
              'the streamed request did not complete',
            );
          }
          assert.ok(
            answeredAfter <= limitMs,
            `the last request was answered ${Math.round(answeredAfter)} ms after the fault`,
          );
          const r = answers[0]!;
          if (signal === 'SIGSTOP') {
            assert.ok(
              unhealthyAfter >= DIST_TIMEOUT_S * 1000 * 0.9,
              'a stall is declared only after the timeout',
            );
            assert.match(r.body, /sent nothing for \d+ ms/);
          }

          // A server whose group died still stops on request.
          head.signal('SIGTERM');
          const headExit = await head.waitExit(15_000);
          assert.equal(headExit.killed, false, `the head hung on SIGTERM\n${head.log}`);
          node.signal('SIGKILL');
          node.signal('SIGCONT');
          await node.exited;
        },
      );
    }

    await t.test(
      'a node with another model or setting is refused, and a matching node then joins',
      async () => {
        const port = await nextPort();
        const flags = clusterFlags('v2-tiny', hostA.address, port, 30);
        const { head, socket } = startHead(hostA, flags);
        await head.waitForOutput(/waiting for 1 node\(s\) to join/, 30_000);

        const otherModel = processes.spawn(
          'node with v2-lite-tiny',
          hostB,
          [
            'serve',
            ...clusterFlags('v2-lite-tiny', hostA.address, port, 30),
            '--node-rank',
            '1',
            '--headless',
          ],
          CLUSTER_ENV,
        );
        const exit1 = await otherModel.waitExit(30_000);
        assert.equal(exit1.code, 1, otherModel.log);
        assert.match(
          otherModel.stderr,
          /error: the head refused this node: node 1 runs another model or configuration than the head \(model\.\w+: head has .+, this node has .+\)/,
        );
        assert.match(
          head.stderr,
          /refused a node: node 1 runs another model or configuration than the head \(model\./,
        );

        const otherSetting = processes.spawn(
          'node with expert parallelism',
          hostB,
          ['serve', ...flags, '--enable-expert-parallel', '--node-rank', '1', '--headless'],
          CLUSTER_ENV,
        );
        const exit2 = await otherSetting.waitExit(30_000);
        assert.equal(exit2.code, 1, otherSetting.log);
        assert.match(otherSetting.stderr, /enableExpertParallel: head has false, this node has true/);
        assert.match(
          head.stderr,
          /refused a node: .*enableExpertParallel: head has false, this node has true/,
        );

        assert.ok(head.isRunning, `the head gave up after refusing nodes\n${head.log}`);
        processes.spawn(
          'matching node',
          hostB,
          ['serve', ...flags, '--node-rank', '1', '--headless'],
          CLUSTER_ENV,
        );
        await head.waitForOutput(/serving model "tiny" .* at unix:/, 30_000);
        assert.equal((await udsRequest(socket, 'GET', '/health')).status, 200);
        const r = await udsRequest(socket, 'POST', '/v1/completions', { ...LONG_REQUEST, max_tokens: 4 });
        assert.equal(r.status, 200, r.body);
      },
    );

    await t.test('with --cluster-secret, a node without it or with a wrong one is refused', async () => {
      const secret = 'tb-secret-7f3a';
      const port = await nextPort();
      const flags = clusterFlags('v2-tiny', hostA.address, port, 30);
      const { head, socket } = startHead(hostA, flags, ['--cluster-secret', secret], {});
      await head.waitForOutput(/waiting for 1 node\(s\) to join .*\(cluster secret required\)/, 30_000);
      const nodeArgs = ['serve', ...flags, '--node-rank', '1', '--headless'];

      for (const [label, extra] of [
        // Without a secret a node on a non-loopback address must say it means it to reach the head at all.
        ['node without a secret', noNetns === undefined ? ['--allow-insecure-cluster'] : []],
        ['node with a wrong secret', ['--cluster-secret', 'not-the-secret']],
      ] as const) {
        const node = processes.spawn(label, hostB, [...nodeArgs, ...extra]);
        const exit = await node.waitExit(30_000);
        assert.equal(exit.code, 1, node.log);
        assert.match(node.stderr, /the head refused this node: node 1 does not know the cluster secret/);
      }
      assert.equal(head.stderr.match(/refused a node: node 1 does not know the cluster secret/g)?.length, 2);

      const good = processes.spawn('node with the secret', hostB, nodeArgs, { DUET_CLUSTER_SECRET: secret });
      await head.waitForOutput(/serving model "tiny" .* at unix:/, 30_000);
      assert.equal((await udsRequest(socket, 'GET', '/health')).status, 200);
      for (const p of [head, good])
        assert.doesNotMatch(p.stderr + p.stdout, new RegExp(secret), 'the secret is not logged');
    });
  });
});
