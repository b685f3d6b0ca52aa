// The multi-host rendezvous under hostile input (issue 10, finding 5): malformed lines close only their
// connection, endless lines and silent connections are cut off, a join must answer the head's fresh
// challenge with the cluster secret (so it cannot be replayed or altered), and a headless node checks the
// head's welcome. Every test ends with a real node joining, to show the head is still up.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { engineConfigFromOptions } from '../../src/cli/engine-args.js';
import { EngineConfigError, validateEngineConfig } from '../../src/config/engine-config.js';
import type { TcpPeerAddress } from '../../src/distributed/group.js';
import {
  fingerprintOf,
  joinRendezvous,
  type RendezvousSettings,
  serveRendezvous,
} from '../../src/distributed/rendezvous.js';
import { freeLoopbackPort } from './multi-host-harness.js';

const SUMMARY = { model: 'tiny', tensorParallelSize: 2 };
const HEAD_PEERS: TcpPeerAddress[] = [{ host: '127.0.0.1', port: 41001 }];
const NODE_PEERS: TcpPeerAddress[] = [{ host: '127.0.0.1', port: 41002 }];

function settings(port: number, nodeRank: number, secret: string | null): RendezvousSettings {
  return {
    nnodes: 2,
    nodeRank,
    masterAddr: '127.0.0.1',
    masterPort: port,
    secret,
    timeoutMs: 20_000,
    ranksPerNode: 1,
    joinTimeoutMs: 1500,
  };
}

/** Starts a head on a free port; `refusals` collects what it logs about refused connections. */
async function startHead(secret: string | null) {
  const port = await freeLoopbackPort();
  const refusals: string[] = [];
  const result = serveRendezvous(settings(port, 0, secret), SUMMARY, HEAD_PEERS, 7, (r) => refusals.push(r));
  await waitUntilListening(port);
  return { port, refusals, result };
}

async function waitUntilListening(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`nothing listens on ${port}`);
}

/** A raw connection to the head: the lines it received so far, and whether the head closed it. */
async function rawClient(port: number) {
  const socket = await new Promise<Socket>((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
  const state = { text: '', closed: false, socket };
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    state.text += d;
  });
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      state.closed = true;
      resolve();
    }),
  );
  return { state, closed };
}

/** Waits for `p` at most `ms`; true when it settled in time. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const r = await Promise.race([p.then(() => true), late]);
  clearTimeout(timer);
  return r;
}

/** A real node joins `port`; resolves with the rendezvous result. */
function realNode(port: number, secret: string | null) {
  return joinRendezvous(settings(port, 1, secret), SUMMARY, async () => NODE_PEERS);
}

function hmac(secret: string, parts: unknown[]): string {
  return createHmac('sha256', secret).update(JSON.stringify(parts)).digest('hex');
}

test("finding 5: a 'null' line (or any malformed message) does not crash the head", async () => {
  const head = await startHead(null);
  for (const line of ['null', '[]', '"join"', '42', '{}', '{"type":"join","nodeRank":"1"}', '{not json']) {
    const c = await rawClient(head.port);
    c.state.socket.write(`${line}\n`);
    assert.ok(await within(c.closed, 3000), `the head left the connection that sent ${line} open`);
  }
  assert.ok(
    head.refusals.some((r) => /not a valid join message/.test(r)),
    `logged: ${head.refusals.join(' | ')}`,
  );
  const node = await realNode(head.port, null);
  const done = await head.result;
  assert.equal(done.groupId, node.groupId);
  assert.deepEqual(node.peers, [...HEAD_PEERS, ...NODE_PEERS]);
});

test('finding 5: a line without a newline is cut off at the cap, and a silent connection after the join timeout', async () => {
  const head = await startHead(null);
  const endless = await rawClient(head.port);
  const piece = 'x'.repeat(1 << 16);
  // 4 MiB with no newline: past the 1 MiB cap the head must close the connection.
  for (let i = 0; i < 64 && !endless.state.closed; i++) {
    endless.state.socket.write(piece);
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(await within(endless.closed, 3000), 'the head kept reading an endless line');
  const silent = await rawClient(head.port);
  assert.ok(
    await within(silent.closed, 4000),
    'a connection that never joins stays open (join timeout 1.5 s)',
  );
  assert.ok(head.refusals.some((r) => /no join within 1500 ms/.test(r)));
  await realNode(head.port, null);
  await head.result;
});

test('finding 5: a join must answer the fresh challenge with the secret: no guessing, no replay, no tampering', async () => {
  const secret = 'rendezvous-test-secret';
  const head = await startHead(secret);
  const fingerprint = fingerprintOf(SUMMARY);
  const nonce = 'ab'.repeat(32);
  const joinFor = (challenge: string, peers: TcpPeerAddress[], signedPeers = peers) => ({
    type: 'join',
    nodeRank: 1,
    fingerprint,
    summary: SUMMARY,
    peers,
    nonce,
    auth: hmac(secret, ['join', challenge, 1, fingerprint, signedPeers]),
  });
  const challengeOf = async (c: Awaited<ReturnType<typeof rawClient>>) => {
    for (let i = 0; i < 100 && !c.state.text.includes('\n'); i++) await new Promise((r) => setTimeout(r, 20));
    return (JSON.parse(c.state.text.split('\n')[0]!) as { nonce: string }).nonce;
  };

  // Without the secret (an HMAC under another key): refused.
  const guess = await rawClient(head.port);
  const c0 = await challengeOf(guess);
  guess.state.socket.write(`${JSON.stringify({ ...joinFor(c0, NODE_PEERS), auth: hmac('guess', [c0]) })}\n`);
  await guess.closed;
  assert.match(guess.state.text, /"refused".*does not know the cluster secret/);

  // A join that was valid for one connection's challenge is refused on the next (replay).
  const first = await rawClient(head.port);
  const c1 = await challengeOf(first);
  first.state.socket.destroy();
  const replay = await rawClient(head.port);
  await challengeOf(replay);
  replay.state.socket.write(`${JSON.stringify(joinFor(c1, NODE_PEERS))}\n`);
  await replay.closed;
  assert.match(replay.state.text, /does not know the cluster secret/);

  // Peer addresses changed after signing (a squatter redirecting rank 1's traffic): refused.
  const tamper = await rawClient(head.port);
  const c2 = await challengeOf(tamper);
  const evil: TcpPeerAddress[] = [{ host: '127.0.0.1', port: 6666 }];
  tamper.state.socket.write(`${JSON.stringify(joinFor(c2, evil, NODE_PEERS))}\n`);
  await tamper.closed;
  assert.match(tamper.state.text, /does not know the cluster secret/);

  // The real node, with the secret, joins; both sides derive the same link key, which the secret shapes.
  const node = await realNode(head.port, secret);
  const done = await head.result;
  assert.equal(node.linkKey, done.linkKey);
  assert.match(node.linkKey, /^[0-9a-f]{64}$/);
});

test("finding 5: a headless node validates the head's welcome (types, ranges, its own ranks, the secret)", async () => {
  const secret = 's3cret';
  /** A fake head that answers a join with `welcome(joinNonce)`. */
  const fakeHead = async (welcome: (joinNonce: string) => unknown) => {
    const server = createServer((socket) => {
      socket.on('error', () => {});
      socket.write(`${JSON.stringify({ type: 'challenge', protocol: 2, nonce: 'cd'.repeat(32) })}\n`);
      let buf = '';
      socket.setEncoding('utf8');
      socket.on('data', (d: string) => {
        buf += d;
        if (!buf.includes('\n')) return;
        const join = JSON.parse(buf.split('\n')[0]!) as { nonce: string };
        socket.end(`${JSON.stringify(welcome(join.nonce))}\n`);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, port: (server.address() as { port: number }).port };
  };
  const peers = [...HEAD_PEERS, ...NODE_PEERS];
  const linkNonce = 'ef'.repeat(32);
  const signed = (nonce: string, w: { groupId: string; peers: unknown; numBlocks: unknown }) => ({
    type: 'welcome',
    ...w,
    linkNonce,
    auth: hmac(secret, ['welcome', nonce, w.groupId, w.peers, w.numBlocks, linkNonce]),
  });
  const cases: [string, (nonce: string) => unknown, RegExp][] = [
    ['numBlocks -1', (n) => signed(n, { groupId: 'g', peers, numBlocks: -1 }), /malformed/],
    ['numBlocks "7"', (n) => signed(n, { groupId: 'g', peers, numBlocks: '7' }), /malformed/],
    [
      'a port of 70000',
      (n) => signed(n, { groupId: 'g', peers: [HEAD_PEERS[0], { host: 'h', port: 70000 }], numBlocks: 7 }),
      /malformed/,
    ],
    ['peers null', (n) => signed(n, { groupId: 'g', peers: null, numBlocks: 7 }), /malformed/],
    [
      'one peer for two ranks',
      (n) => signed(n, { groupId: 'g', peers: HEAD_PEERS, numBlocks: 7 }),
      /lists 1 rank addresses/,
    ],
    [
      "another node's address at this node's rank",
      (n) => signed(n, { groupId: 'g', peers: [HEAD_PEERS[0], { host: '10.9.9.9', port: 1 }], numBlocks: 7 }),
      /does not list this node's ranks/,
    ],
    [
      'a forged welcome',
      (n) => ({ ...signed(n, { groupId: 'g', peers, numBlocks: 7 }), auth: hmac('x', [n]) }),
      /head does not know the cluster secret/,
    ],
    ['null', () => null, /malformed/],
  ];
  for (const [what, welcome, expected] of cases) {
    const head = await fakeHead(welcome);
    try {
      await assert.rejects(realNode(head.port, secret), expected, what);
    } finally {
      head.server.close();
    }
  }
  // The same fake head with a valid welcome is accepted: the checks above refuse only what is wrong.
  const good = await fakeHead((n) => signed(n, { groupId: 'g', peers, numBlocks: 7 }));
  try {
    const r = await realNode(good.port, secret);
    assert.equal(r.numBlocks, 7);
  } finally {
    good.server.close();
  }
});

test('finding 5: a multi-host start on a non-loopback address needs a secret or --allow-insecure-cluster', () => {
  const base = { nnodes: 2, nodeRank: 0, tensorParallelSize: 2, masterAddr: '10.0.0.1' };
  assert.throws(
    () => validateEngineConfig(engineConfigFromOptions(base)),
    (e: unknown) =>
      e instanceof EngineConfigError &&
      /10\.0\.0\.1 \(not loopback\) needs a cluster secret/.test(e.message) &&
      /--allow-insecure-cluster/.test(e.message),
  );
  validateEngineConfig(engineConfigFromOptions({ ...base, clusterSecret: 'x' }));
  validateEngineConfig(engineConfigFromOptions({ ...base, allowInsecureCluster: true }));
  validateEngineConfig(engineConfigFromOptions({ ...base, masterAddr: '127.0.0.1' }));
  validateEngineConfig(engineConfigFromOptions({ ...base, masterAddr: 'localhost' }));
});

test('finding 5: a node that joined and went away before the others frees its rank', async () => {
  const fingerprint = fingerprintOf(SUMMARY);
  const join = { type: 'join', nodeRank: 1, fingerprint, summary: SUMMARY, peers: NODE_PEERS };
  const port = await freeLoopbackPort();
  // Three nodes, so the first join does not complete the rendezvous.
  const three = { ...settings(port, 0, null), nnodes: 3 };
  const result = serveRendezvous(three, SUMMARY, HEAD_PEERS, 7);
  await waitUntilListening(port);
  const leaver = await rawClient(port);
  for (let i = 0; i < 100 && !leaver.state.text.includes('\n'); i++)
    await new Promise((r) => setTimeout(r, 20));
  leaver.state.socket.write(`${JSON.stringify({ ...join, nonce: 'ab'.repeat(32), auth: '' })}\n`);
  await new Promise((r) => setTimeout(r, 200));
  leaver.state.socket.destroy();
  await new Promise((r) => setTimeout(r, 200));
  const nodeSettings = (rank: number) => ({ ...settings(port, rank, null), nnodes: 3 });
  const peersOf = (rank: number): TcpPeerAddress[] => [{ host: '127.0.0.1', port: 41000 + 10 * rank }];
  const [one, two] = await Promise.all([
    joinRendezvous(nodeSettings(1), SUMMARY, async () => peersOf(1)),
    joinRendezvous(nodeSettings(2), SUMMARY, async () => peersOf(2)),
  ]);
  assert.deepEqual(one.peers, [...HEAD_PEERS, ...peersOf(1), ...peersOf(2)]);
  assert.equal(two.groupId, (await result).groupId);
});
