// Tensor, expert and data parallelism across two hosts of the network-namespace testbed (10 Gbit/s links;
// 100 µs delay where the kernel has netem): `duet generate -tp 2 --nnodes 2` (or `-dp 2`: one engine
// replica per host, sharing the experts) runs in host 0 and the headless node
// `duet serve ... --node-rank 1 --headless` in host 1, each a separate process whose only way to the other
// is the testbed network. All golden prompts give the golden greedy tokens, and the top-5 log-probs of
// every step are within 1e-3 of the reference (the fp32 tolerance of the golden tests: sharded matmuls and
// the all-reduce sum in another order than one rank). Skipped, with the reason, where the testbed cannot
// be created (no root, no `ip netns`).

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { whyNoNetns, withTestbed } from '../../scripts/testbed/testbed.js';
import { fixtureDir, loadGolden } from '../helpers/golden.js';
import { type NodeHost, ProcessSet, testbedNodeHosts } from './multi-host-harness.js';

/** |log-prob − golden| allowed: fp32 sums in another order than the reference's single rank. */
const TOL = 1e-3;

const noNetns = whyNoNetns();

/** The testbed hosts are not loopback: the nodes share a cluster secret (through the environment). */
const CLUSTER_ENV = { DUET_CLUSTER_SECRET: 'multi-host-test-secret' };

describe('multi-host tensor parallel: golden results across two testbed hosts', {
  skip: noNetns ? `the network-namespace testbed is unavailable here: ${noNetns}` : false,
}, () => {
  const golden = loadGolden('v2-tiny');
  const tmp = mkdtempSync(join(tmpdir(), 'duet-multi-host-'));
  const promptsFile = join(tmp, 'prompts.jsonl');
  writeFileSync(
    promptsFile,
    golden.prompts.map((p) => JSON.stringify({ prompt_token_ids: p.ids })).join('\n'),
  );
  const processes = new ProcessSet();
  after(async () => {
    await processes.killAll();
    rmSync(tmp, { recursive: true, force: true });
  });

  const cases: [string, string[]][] = [
    ['-tp 2', ['-tp', '2']],
    [
      '-tp 2 --enable-expert-parallel, moe_comm allgather',
      ['-tp', '2', '--enable-expert-parallel', '--additional-config', '{"moe_comm": "allgather"}'],
    ],
    [
      '-tp 2 --enable-expert-parallel, moe_comm alltoall',
      ['-tp', '2', '--enable-expert-parallel', '--additional-config', '{"moe_comm": "alltoall"}'],
    ],
    // One data-parallel replica per host, sharing the experts across the network.
    ['-dp 2 --enable-expert-parallel, moe_comm alltoall', ['-dp', '2', '--enable-expert-parallel']],
  ];

  test('10 Gbit/s links (100 µs delay where the kernel has netem)', async (t) => {
    await withTestbed({ hosts: 2, bandwidth: '10gbit', delay: '100us' }, async (testbed) => {
      const [hostA, hostB] = testbedNodeHosts(testbed) as [NodeHost, NodeHost];
      let port = 29500;
      for (const [name, flags] of cases) {
        await t.test(name, async () => {
          const common = [
            '--model',
            fixtureDir('v2-tiny'),
            '--block-size',
            '16',
            '--kv-cache-memory',
            '8MiB',
            '--nnodes',
            '2',
            '--master-addr',
            hostA.address,
            '--master-port',
            String(port++),
            '--num-threads',
            '1',
            '--dist-timeout',
            '20',
            ...flags,
          ];
          const started = performance.now();
          const node = processes.spawn(
            'headless node',
            hostB,
            ['serve', ...common, '--node-rank', '1', '--headless'],
            CLUSTER_ENV,
          );
          const head = processes.spawn(
            'head',
            hostA,
            [
              'generate',
              ...common,
              '--node-rank',
              '0',
              '--prompts-file',
              promptsFile,
              '--max-tokens',
              '16',
              '--temperature',
              '0',
              '--ignore-eos',
              '--logprobs',
              '5',
              '--output',
              'json',
            ],
            CLUSTER_ENV,
          );
          const headExit = await head.waitExit(60_000);
          const nodeExit = await node.waitExit(10_000);
          t.diagnostic(`${name}: ${((performance.now() - started) / 1000).toFixed(1)} s for both processes`);
          assert.equal(headExit.code, 0, `the head failed\n${head.log}\n${node.log}`);
          // Known race in the TCP transport (reported): when the head's stop broadcast, goodbye and close
          // all arrive before the node has posted its receive for that broadcast, the node fails it with
          // "peer rank 0 closed its communicator" although the frame is buffered. Tolerated only in that
          // exact form, after a successful head; any other ending fails.
          const knownCloseRace =
            /error: rank 1: peer rank 0 closed its communicator \(rank 1 was broadcast #\d+\)/;
          if (nodeExit.code !== 0 && knownCloseRace.test(node.stderr)) {
            t.diagnostic(
              `${name}: the headless node hit the known close race: ${knownCloseRace.exec(node.stderr)![0]}`,
            );
          } else {
            assert.equal(
              nodeExit.code,
              0,
              `the headless node did not exit cleanly after the head\n${node.log}`,
            );
          }
          assert.match(head.stderr, /all 2 nodes joined; 2 ranks form the group/);
          assert.match(node.stderr, /joined: ranks 1\.\.1 of 2/);
          const lines = head.stdout
            .trim()
            .split('\n')
            .map((l) => JSON.parse(l));
          assert.equal(lines.length, golden.prompts.length);
          lines.forEach((line, i) => {
            const p = golden.prompts[i]!;
            assert.deepEqual(line.token_ids, p.greedy.ids, `${p.name}: greedy tokens`);
            assert.equal(line.logprobs.length, p.greedy.ids.length);
            line.logprobs.forEach((top: { id: number; logprob: number }[], step: number) => {
              top.forEach((tok, j) => {
                assert.equal(
                  tok.id,
                  p.greedy.step_top5_ids[step]![j],
                  `${p.name} step ${step} top-${j + 1} id`,
                );
                const want = p.greedy.step_top5_logprobs[step]![j]!;
                assert.ok(
                  Math.abs(tok.logprob - want) <= TOL,
                  `${p.name} step ${step} top-${j + 1}: log-prob ${tok.logprob} vs golden ${want} (tolerance ${TOL})`,
                );
              });
            });
          });
        });
      }
    });
  });
});
