// `duet serve`'s engine flags completed by a launcher's environment: node 0 serves and the others run
// headless, the rank flags switch the environment off, --master-addr / --master-port win over it, the
// host's cores are shared by the processes on it, and a setting the launcher makes invalid names the
// variables it came from.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Command } from 'commander';
import { addEngineOptions, EngineConfigError, normaliseFlagSpelling } from '../../src/cli/engine-args.js';
import type { Env } from '../../src/cli/launcher-env.js';
import { engineConfigUnderLauncher } from '../../src/cli/launcher-options.js';
import type { ParallelSettings } from '../../src/config/engine-config.js';
import { createLogger } from '../../src/util/logger.js';

const mpirun = (rank: number, size = 2): Env => ({
  OMPI_COMM_WORLD_RANK: String(rank),
  OMPI_COMM_WORLD_SIZE: String(size),
  OMPI_COMM_WORLD_LOCAL_RANK: String(rank),
  OMPI_COMM_WORLD_LOCAL_SIZE: String(size),
});

/** Parses `argv` as serve's engine flags and builds the config under `env`; returns it and the log. */
function parallelOf(argv: string[], env: Env, cores = 8): { parallel: ParallelSettings; log: string[] } {
  const cmd = addEngineOptions(new Command()).exitOverride();
  // Off loopback a multi-node start needs the cluster secret; every case here has one (docs/security.md).
  cmd.parse(normaliseFlagSpelling([...argv, '--cluster-secret', 'test-secret']), { from: 'user' });
  const log: string[] = [];
  const config = engineConfigUnderLauncher(
    cmd.opts(),
    (key) => cmd.getOptionValueSource(key) === 'cli',
    env,
    cores,
    createLogger('info', (line) => log.push(line)),
  );
  return { parallel: config.parallel, log };
}

test('process 0 is the head that serves, the others run headless, sharing the host cores', () => {
  const head = parallelOf(['-tp', '2'], mpirun(0));
  assert.equal(head.parallel.nnodes, 2);
  assert.equal(head.parallel.nodeRank, 0);
  assert.equal(head.parallel.headless, false);
  assert.equal(head.parallel.masterAddr, '127.0.0.1');
  assert.equal(head.parallel.masterPort, 29500);
  assert.equal(head.parallel.numThreads, 4, '8 cores shared by the 2 processes on this host');
  assert.match(head.log.join('\n'), /Open MPI started this process \(.*\): node 0 of 2, the head, serving/);
  const node = parallelOf(['-tp', '2'], mpirun(1));
  assert.equal(node.parallel.nodeRank, 1);
  assert.equal(node.parallel.headless, true);
  assert.match(node.log.join('\n'), /node 1 of 2, headless; rendezvous at 127\.0\.0\.1:29500/);
  // --num-threads stays as given; one process per host keeps every core (the default, null).
  assert.equal(parallelOf(['-tp', '2', '--num-threads', '3'], mpirun(1)).parallel.numThreads, 3);
  const oneEach = {
    RANK: '1',
    WORLD_SIZE: '2',
    MASTER_ADDR: 'h0',
    MASTER_PORT: '29500',
    LOCAL_WORLD_SIZE: '1',
  };
  assert.equal(parallelOf(['-tp', '2'], oneEach).parallel.numThreads, null);
});

test('--nnodes or --node-rank switch the environment off; --master-addr/--master-port win over it', () => {
  const flags = parallelOf(['-tp', '2', '--nnodes', '2', '--node-rank', '1', '--headless'], mpirun(0));
  assert.equal(flags.parallel.nodeRank, 1);
  assert.equal(flags.log.length, 0, 'nothing read from the environment');
  const single = parallelOf(['--nnodes', '1'], mpirun(1));
  assert.equal(single.parallel.nnodes, 1);
  assert.equal(single.parallel.headless, false);
  const addr = parallelOf(['-tp', '2', '--master-addr', '10.0.0.9', '--master-port', '31000'], mpirun(1));
  assert.equal(addr.parallel.masterAddr, '10.0.0.9');
  assert.equal(addr.parallel.masterPort, 31000);
  // Without launcher variables, nothing changes.
  assert.equal(parallelOf(['-tp', '2'], {}).parallel.nnodes, 1);
});

test('a launcher setting that contradicts the flags is an error naming its variables', () => {
  assert.throws(
    () => parallelOf(['-tp', '2', '--headless'], mpirun(0)),
    /--headless contradicts the Open MPI environment \(OMPI_COMM_WORLD_SIZE=2, OMPI_COMM_WORLD_RANK=0.*\): process 0 is the head/,
  );
  assert.throws(
    () => parallelOf(['-tp', '2'], mpirun(2, 3)),
    (e: Error) =>
      e instanceof EngineConfigError &&
      /--nnodes must be a positive integer dividing the number of ranks \(2\), got 3 \(--nnodes 3 and --node-rank 2 came from the Open MPI environment: OMPI_COMM_WORLD_SIZE=3/.test(
        e.message,
      ),
  );
});
