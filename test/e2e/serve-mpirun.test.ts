// A real cluster launcher: Open MPI's `mpirun -np 2` (Debian's openmpi-bin) starts two `duet serve ... -tp 2`
// processes on this machine with no rank flags at all. They find each other from the MPI environment
// (process 0 serves, process 1 runs headless, the rendezvous on 127.0.0.1 since both share this host and
// the port from `-x MASTER_PORT`), and every golden prompt of the v2-tiny fixture gives the golden greedy
// tokens, and its top-5 log-probs within 1e-3 of the reference (the fp32 tolerance of the golden tests:
// the sharded matmuls and the all-reduce sum in another order than one rank). SIGTERM to both processes
// drains a streamed request to its end and stops them cleanly: mpirun exits 0.
// mpirun is required, not optional: without it this test fails (CI installs openmpi-bin in .ci/run).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  freeLoopbackPort,
  type NodeHost,
  ProcessSet,
  udsRequest,
  udsStream,
} from '../distributed/multi-host-harness.js';
import { fixtureDir, loadGolden } from '../helpers/golden.js';

/** |log-prob − golden| allowed: fp32 sums in another order than the reference's single rank. */
const TOL = 1e-3;

const tmp = mkdtempSync(join(tmpdir(), 'duet-mpirun-'));
const processes = new ProcessSet();
after(async () => {
  await processes.killAll();
  rmSync(tmp, { recursive: true, force: true });
});

/** The processes `pid` started (Linux: /proc/PID/task/PID/children). */
function childPids(pid: number): number[] {
  const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  return text === '' ? [] : text.split(/\s+/).map(Number);
}

/** `mpirun --version`'s first line, or a message saying how to install it. */
function mpirunVersion(): string {
  const r = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) {
    assert.fail(
      `mpirun is not available (${r.error?.message ?? r.stderr}): install Debian's openmpi-bin ` +
        '(apt-get install -y openmpi-bin; .ci/run does)',
    );
  }
  return r.stdout.split('\n')[0]!;
}

test('mpirun -np 2 duet serve -tp 2, no rank flags: golden completions, a drained stop on SIGTERM', async (t) => {
  t.diagnostic(mpirunVersion());
  const port = await freeLoopbackPort();
  const socket = join(tmp, 'head.sock');
  // As root (tests run as root here) mpirun needs --allow-run-as-root; --oversubscribe lets 2 processes
  // run on fewer cores; --bind-to none keeps each process free to use every core (mpirun would pin
  // each to one), --tag-output labels each line with the process rank.
  const launcher: NodeHost = {
    name: 'mpirun',
    address: '127.0.0.1',
    prefix: [
      'mpirun',
      '--allow-run-as-root',
      '--oversubscribe',
      '--bind-to',
      'none',
      '--tag-output',
      '-np',
      '2',
      '-x',
      `MASTER_PORT=${port}`,
    ],
  };
  const started = performance.now();
  const mpirun = processes.spawn('mpirun', launcher, [
    'serve',
    fixtureDir('v2-tiny'),
    '-tp',
    '2',
    '--block-size',
    '16',
    '--kv-cache-memory',
    '8MiB',
    '--served-model-name',
    'tiny',
    '--uds',
    socket,
    '--disable-log-stats',
    '--return-tokens-as-token-ids',
  ]);
  await mpirun.waitForOutput(/serving model "tiny" .* at unix:/, 60_000);
  t.diagnostic(`serving ${((performance.now() - started) / 1000).toFixed(1)} s after mpirun started`);
  assert.match(
    mpirun.stderr,
    /\[1,0\]<stderr>:.*Open MPI started this process .*: node 0 of 2, the head, serving/,
  );
  assert.match(mpirun.stderr, /\[1,1\]<stderr>:.*Open MPI started this process .*: node 1 of 2, headless/);
  assert.match(mpirun.stderr, new RegExp(`rendezvous at 127\\.0\\.0\\.1:${port}`));
  assert.match(mpirun.stderr, /\[1,0\]<stderr>:.*all 2 nodes joined; 2 ranks form the group/);
  assert.match(mpirun.stderr, /\[1,1\]<stderr>:.*joined: ranks 1\.\.1 of 2/);

  const golden = loadGolden('v2-tiny');
  for (const p of golden.prompts) {
    const r = await udsRequest(socket, 'POST', '/v1/completions', {
      model: 'tiny',
      prompt: p.ids,
      max_tokens: p.greedy.ids.length,
      temperature: 0,
      ignore_eos: true,
      logprobs: 5,
    });
    assert.equal(r.status, 200, r.body);
    const choice = JSON.parse(r.body).choices[0] as {
      logprobs: { tokens: string[]; top_logprobs: Record<string, number>[] };
      finish_reason: string;
    };
    const ids = choice.logprobs.tokens.map((tok) => Number(/^token_id:(\d+)$/.exec(tok)![1]));
    assert.deepEqual(ids, p.greedy.ids, `${p.name}: greedy tokens`);
    assert.equal(choice.finish_reason, 'length');
    choice.logprobs.top_logprobs.forEach((top, step) => {
      p.greedy.step_top5_ids[step]!.forEach((id, j) => {
        const got = top[`token_id:${id}`];
        const want = p.greedy.step_top5_logprobs[step]![j]!;
        assert.ok(got !== undefined, `${p.name} step ${step}: golden top-${j + 1} token ${id} missing`);
        assert.ok(
          Math.abs(got - want) <= TOL,
          `${p.name} step ${step} top-${j + 1}: log-prob ${got} vs golden ${want} (tolerance ${TOL})`,
        );
      });
    });
  }

  // SIGTERM to both Duet processes, as a manager stopping the group does (mpirun forwards a SIGTERM it
  // gets, but then exits 1 whatever its processes do): a request in flight runs to its end while the
  // head drains, the headless node keeps serving it until the head stops the group, and mpirun exits 0,
  // which it does only when every process exited 0.
  const stream = udsStream(socket, '/v1/completions', {
    model: 'tiny',
    prompt: golden.prompts[0]!.ids,
    max_tokens: 200,
    temperature: 0,
    ignore_eos: true,
    stream: true,
  });
  assert.equal(await stream.status, 200);
  await stream.firstEvent;
  const children = childPids(mpirun.pid!);
  assert.equal(children.length, 2, `mpirun's children: ${children.join(', ')}`);
  for (const pid of children) process.kill(pid, 'SIGTERM');
  const body = await stream.body;
  assert.match(body, /"finish_reason":"length"/, `the streamed request ran to its end:\n${body.slice(-500)}`);
  assert.match(body, /data: \[DONE\]\n\n$/);
  const exit = await mpirun.waitExit(40_000);
  assert.equal(exit.killed, false, `mpirun hung after SIGTERM\n${mpirun.log}`);
  assert.equal(exit.code, 0, `a process did not exit cleanly\n${mpirun.log}`);
  assert.match(mpirun.stderr, /\[1,0\]<stderr>:.*SIGTERM: draining/);
  assert.match(mpirun.stderr, /\[1,0\]<stderr>:.*every open request finished; stopped/);
  assert.match(mpirun.stderr, /\[1,1\]<stderr>:.*the head stopped the group; exiting/);
});
