// The network-namespace testbed (scripts/testbed/testbed.sh and its helper): hosts get their addresses and
// only a route to each other, links are rate-limited, and everything is removed afterwards — also when
// the body throws and when a command run by the script fails. Skipped where root or `ip netns` is missing.

import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { inHost, whyNoNetns, withTestbed } from '../../scripts/testbed/testbed.js';

const SCRIPT = fileURLToPath(new URL('../../../scripts/testbed/testbed.sh', import.meta.url));
const noNetns = whyNoNetns();
const skip = noNetns && `skipped: the testbed needs root and ip netns (${noNetns})`;

/** Testbed namespaces that exist now (other tests may run their own testbeds at the same time). */
function namespaces(): string[] {
  return execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith('duet-tb-'));
}

/** Seconds to push `bytes` over TCP from host a to host b (a node one-liner on each side). */
function transferSeconds(from: string[], to: string[], address: string, bytes: number): number {
  const server = `require('net').createServer(c=>{let n=0;c.on('data',d=>{n+=d.length;if(n>=${bytes}){c.end();process.exit(0)}})}).listen(29700,'${address}')`;
  const receiver = spawnSync(
    'bash',
    [
      '-c',
      `${to.join(' ')} node -e "${server}" & sleep 0.3; t0=$(date +%s%N); ${from.join(' ')} node -e "const s=require('net').connect(29700,'${address}',()=>s.write(Buffer.alloc(${bytes})));s.on('end',()=>process.exit(0))"; t1=$(date +%s%N); wait; echo $(( (t1 - t0) / 1000000 ))`,
    ],
    {
      encoding: 'utf8',
      timeout: 20_000,
    },
  );
  return Number(receiver.stdout.trim().split('\n').pop()) / 1000;
}

test('testbed hosts are addressed, isolated, rate-limited, and removed afterwards', { skip }, async () => {
  let mine: string[] = [];
  await withTestbed({ hosts: 3, bandwidth: '20mbit' }, async (hosts) => {
    mine = hosts.map((h) => h.namespace);
    assert.deepEqual(
      hosts.map((h) => h.address),
      ['198.18.0.1', '198.18.0.2', '198.18.0.3'],
    );
    for (const h of hosts) {
      assert.ok(namespaces().includes(h.namespace));
      const addr = execFileSync('ip', ['-n', h.namespace, '-br', 'addr', 'show', 'eth0'], {
        encoding: 'utf8',
      });
      assert.match(addr, new RegExp(`${h.address.replaceAll('.', '\\.')}/24`));
      // The only routes lead to the testbed subnet: nothing leaves the namespaces.
      const routes = execFileSync('ip', ['-n', h.namespace, 'route'], { encoding: 'utf8' })
        .trim()
        .split('\n');
      assert.deepEqual(
        routes.map((r) => r.split(' ')[0]),
        ['198.18.0.0/24'],
      );
    }
    // 1 MB at 20 Mbit/s takes about 0.42 s; unshaped loopback would take milliseconds.
    const s = transferSeconds(inHost(hosts[0]!), inHost(hosts[2]!), hosts[2]!.address, 1 << 20);
    assert.ok(s > 0.3 && s < 5, `1 MB over a 20 Mbit/s link took ${s} s`);
  });
  assert.ok(mine.length === 3 && !mine.some((n) => namespaces().includes(n)), 'the testbed is gone');
});

test('the testbed is removed when the body throws', { skip }, async () => {
  let mine: string[] = [];
  await assert.rejects(
    withTestbed({ hosts: 2 }, async (hosts) => {
      mine = [...hosts.map((h) => h.namespace), hosts[0]!.namespace.replace(/-h0$/, '-sw')];
      for (const n of mine) assert.ok(namespaces().includes(n), `${n} exists`);
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.ok(!mine.some((n) => namespaces().includes(n)), 'the testbed is gone');
});

test('testbed.sh run: substitutes {i} {n} {addr} {addrs}, returns the first failure, cleans up', {
  skip,
}, () => {
  const name = `${process.pid}-runtest`;
  const ok = spawnSync(
    'bash',
    [
      SCRIPT,
      'run',
      '--name',
      name,
      '--hosts',
      '2',
      '--',
      'sh',
      '-c',
      'echo {i}/{n} {addr} {addrs} $DUET_TESTBED_HOST',
    ],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(ok.status, 0, ok.stderr);
  assert.deepEqual(ok.stdout.trim().split('\n').sort(), [
    '0/2 198.18.0.1 198.18.0.1,198.18.0.2 0',
    '1/2 198.18.0.2 198.18.0.1,198.18.0.2 1',
  ]);
  const failed = spawnSync(
    'bash',
    [SCRIPT, 'run', '--name', name, '--hosts', '2', '--', 'sh', '-c', 'exit $((3 + {i}))'],
    {
      encoding: 'utf8',
    },
  );
  assert.equal(failed.status, 3);
  const bad = spawnSync('bash', [SCRIPT, 'up', '--name', 'x', '--hosts', '2', '--bandwidth', '1parsec'], {
    encoding: 'utf8',
  });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /bad rate unit in '1parsec'/);
  assert.deepEqual(
    namespaces().filter((n) => n.startsWith(`duet-tb-${name}-`) || n.startsWith('duet-tb-x-')),
    [],
  );
});
