// Rank discovery from the launchers' environments (torchrun-style, Open MPI, Slurm, LeaderWorkerSet): the
// node rank, node count and the head's address each gives, the flags that win over it, which launcher is
// read when several are present, and the errors for missing, malformed and contradictory variables.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Env, LauncherEnvError, placementFromEnv } from '../../src/cli/launcher-env.js';

/** Asserts that the environment is refused with a LauncherEnvError matching `message`. */
function refuses(env: Env, message: RegExp, given = {}): void {
  assert.throws(
    () => placementFromEnv(env, given),
    (e: Error) => e instanceof LauncherEnvError && message.test(e.message),
    JSON.stringify(env),
  );
}

test('no launcher variables: no placement (a single node, or the flags decide)', () => {
  assert.equal(placementFromEnv({}), null);
  assert.equal(placementFromEnv({ HOME: '/root', LOCAL_RANK: '0', MASTER_ADDR: '10.0.0.1' }), null);
  // Set but empty counts as unset (`export RANK=` in a shell profile).
  assert.equal(placementFromEnv({ RANK: '', WORLD_SIZE: '' }), null);
});

describe('torchrun-style', () => {
  const base = { RANK: '1', WORLD_SIZE: '2', LOCAL_RANK: '0', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29400' };

  test('RANK of WORLD_SIZE, the head at MASTER_ADDR:MASTER_PORT', () => {
    const p = placementFromEnv(base)!;
    assert.equal(p.launcher, 'torchrun');
    assert.equal(p.nodeRank, 1);
    assert.equal(p.nnodes, 2);
    assert.equal(p.masterAddr, '10.0.0.1');
    assert.equal(p.masterPort, 29400);
    assert.equal(p.numLocalProcesses, null);
    assert.match(p.source, /RANK=1/);
    assert.match(p.source, /WORLD_SIZE=2/);
    assert.equal(placementFromEnv({ ...base, RANK: '0' })!.nodeRank, 0);
    assert.equal(placementFromEnv({ ...base, LOCAL_WORLD_SIZE: '2', LOCAL_RANK: '1' })!.numLocalProcesses, 2);
  });

  test("under torchrun's agent, which holds MASTER_PORT, the rendezvous takes the next port", () => {
    const p = placementFromEnv({ ...base, TORCHELASTIC_USE_AGENT_STORE: 'True' })!;
    assert.equal(p.masterPort, 29401);
    assert.match(p.notes.join(), /agent holds MASTER_PORT/);
    // --master-port wins, and is taken as given.
    assert.equal(
      placementFromEnv({ ...base, TORCHELASTIC_USE_AGENT_STORE: 'True' }, { masterPort: 1234 })!.masterPort,
      1234,
    );
    refuses(
      { ...base, MASTER_PORT: '65535', TORCHELASTIC_USE_AGENT_STORE: 'True' },
      /no next port: pass --master-port/,
    );
  });

  test('--master-addr and --master-port win over MASTER_ADDR and MASTER_PORT, and complete a partial env', () => {
    const p = placementFromEnv(base, { masterAddr: '192.168.1.5', masterPort: 7000 })!;
    assert.equal(p.masterAddr, '192.168.1.5');
    assert.equal(p.masterPort, 7000);
    const { MASTER_ADDR: _a, MASTER_PORT: _p, ...noAddress } = base;
    assert.equal(placementFromEnv(noAddress, { masterAddr: 'h0', masterPort: 1 })!.masterAddr, 'h0');
  });

  test('missing variables are named', () => {
    refuses(
      { RANK: '0' },
      /torchrun environment is incomplete: WORLD_SIZE is not set \(found nothing else\)/,
    );
    refuses({ WORLD_SIZE: '2' }, /RANK is not set \(found WORLD_SIZE=2\)/);
    refuses({ RANK: '0', WORLD_SIZE: '2' }, /MASTER_ADDR is not set/);
    refuses({ RANK: '0', WORLD_SIZE: '2', MASTER_ADDR: 'h' }, /MASTER_PORT is not set/);
  });

  test('malformed and contradictory values are refused with the variables', () => {
    refuses({ ...base, RANK: '2' }, /contradicts itself: RANK=2 is not below WORLD_SIZE=2/);
    refuses({ ...base, RANK: 'one' }, /RANK=one must be an integer in 0\.\.65535/);
    refuses({ ...base, RANK: '-1' }, /RANK=-1 must be an integer/);
    refuses({ ...base, RANK: '1.5' }, /RANK=1.5 must be an integer/);
    refuses({ ...base, WORLD_SIZE: '0' }, /WORLD_SIZE=0 must be an integer in 1\.\.65536/);
    refuses({ ...base, WORLD_SIZE: '99999999999' }, /WORLD_SIZE=99999999999 must be an integer/);
    refuses({ ...base, MASTER_PORT: '70000' }, /MASTER_PORT=70000 must be an integer in 1\.\.65535/);
    refuses({ ...base, LOCAL_RANK: '2' }, /LOCAL_RANK=2 exceeds RANK=1/);
    refuses({ ...base, LOCAL_WORLD_SIZE: '3' }, /LOCAL_WORLD_SIZE=3 exceeds WORLD_SIZE=2/);
    refuses(
      { ...base, LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '1' },
      /LOCAL_RANK=1 is not below LOCAL_WORLD_SIZE=1/,
    );
  });
});

describe('Open MPI', () => {
  const oneHost = {
    OMPI_COMM_WORLD_RANK: '1',
    OMPI_COMM_WORLD_SIZE: '2',
    OMPI_COMM_WORLD_LOCAL_RANK: '1',
    OMPI_COMM_WORLD_LOCAL_SIZE: '2',
  };

  test('every process on this host: the head on 127.0.0.1, port MASTER_PORT or 29500', () => {
    const p = placementFromEnv(oneHost)!;
    assert.equal(p.launcher, 'Open MPI');
    assert.equal(p.nodeRank, 1);
    assert.equal(p.nnodes, 2);
    assert.equal(p.masterAddr, '127.0.0.1');
    assert.equal(p.masterPort, 29500);
    assert.equal(p.numLocalProcesses, 2);
    assert.equal(placementFromEnv({ ...oneHost, MASTER_PORT: '31000' })!.masterPort, 31000);
  });

  test('several hosts: the head from --master-addr or MASTER_ADDR (mpirun -x), else an error saying so', () => {
    const twoHosts = {
      OMPI_COMM_WORLD_RANK: '3',
      OMPI_COMM_WORLD_SIZE: '4',
      OMPI_COMM_WORLD_LOCAL_RANK: '1',
      OMPI_COMM_WORLD_LOCAL_SIZE: '2',
    };
    refuses(
      twoHosts,
      /several hosts \(OMPI_COMM_WORLD_LOCAL_SIZE=2, OMPI_COMM_WORLD_SIZE=4\) and does not say where rank 0 runs: pass --master-addr .* mpirun -x MASTER_ADDR/,
    );
    assert.equal(placementFromEnv({ ...twoHosts, MASTER_ADDR: 'node01' })!.masterAddr, 'node01');
    const p = placementFromEnv({ ...twoHosts, MASTER_ADDR: 'node01' }, { masterAddr: '10.1.1.1' })!;
    assert.equal(p.masterAddr, '10.1.1.1');
    assert.equal(p.nodeRank, 3);
    // Without the local size, a single host cannot be assumed either.
    const { OMPI_COMM_WORLD_LOCAL_SIZE: _s, ...noLocalSize } = oneHost;
    refuses(noLocalSize, /OMPI_COMM_WORLD_LOCAL_SIZE is not set/);
  });

  test('missing, malformed and contradictory variables are named', () => {
    refuses(
      { OMPI_COMM_WORLD_RANK: '0' },
      /Open MPI environment is incomplete: OMPI_COMM_WORLD_SIZE is not set/,
    );
    refuses(
      { OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_SIZE: '2' },
      /OMPI_COMM_WORLD_LOCAL_RANK is not set \(found OMPI_COMM_WORLD_SIZE=2, OMPI_COMM_WORLD_RANK=0\)/,
    );
    refuses(
      { ...oneHost, OMPI_COMM_WORLD_RANK: '2' },
      /OMPI_COMM_WORLD_RANK=2 is not below OMPI_COMM_WORLD_SIZE=2/,
    );
    refuses({ ...oneHost, OMPI_COMM_WORLD_SIZE: 'x' }, /OMPI_COMM_WORLD_SIZE=x must be an integer/);
    refuses(
      { ...oneHost, OMPI_COMM_WORLD_RANK: '0', OMPI_COMM_WORLD_LOCAL_RANK: '1' },
      /OMPI_COMM_WORLD_LOCAL_RANK=1 exceeds OMPI_COMM_WORLD_RANK=0/,
    );
    refuses(
      { ...oneHost, OMPI_COMM_WORLD_LOCAL_SIZE: '3' },
      /OMPI_COMM_WORLD_LOCAL_RANK=1 and OMPI_COMM_WORLD_LOCAL_SIZE=3 do not fit OMPI_COMM_WORLD_SIZE=2/,
    );
    refuses({ ...oneHost, MASTER_PORT: '0' }, /MASTER_PORT=0 must be an integer in 1\.\.65535/);
  });
});

describe('Slurm', () => {
  const srun = {
    SLURM_PROCID: '2',
    SLURM_NTASKS: '3',
    SLURM_NODELIST: 'gpu[07-09]',
    SLURM_NNODES: '3',
  };

  test('task SLURM_PROCID of SLURM_NTASKS; the head on the first host of the node list', () => {
    const p = placementFromEnv(srun)!;
    assert.equal(p.launcher, 'Slurm');
    assert.equal(p.nodeRank, 2);
    assert.equal(p.nnodes, 3);
    assert.equal(p.masterAddr, 'gpu07');
    assert.equal(p.masterPort, 29500);
    assert.equal(
      placementFromEnv({ ...srun, SLURM_NODELIST: 'b[3,1],a1', SLURM_NNODES: '3' })!.masterAddr,
      'b3',
    );
    assert.equal(placementFromEnv({ ...srun, MASTER_PORT: '4000' })!.masterPort, 4000);
    assert.equal(placementFromEnv({ ...srun, SLURM_NTASKS_PER_NODE: '1' })!.numLocalProcesses, 1);
  });

  test("the step's node list is preferred over the job's; MASTER_ADDR and --master-addr win", () => {
    const step = { ...srun, SLURM_STEP_NODELIST: 'gpu[08-09]', SLURM_STEP_NUM_NODES: '2' };
    assert.equal(placementFromEnv(step)!.masterAddr, 'gpu08');
    assert.equal(placementFromEnv({ ...srun, MASTER_ADDR: 'gpu07-ib' })!.masterAddr, 'gpu07-ib');
    assert.equal(placementFromEnv(srun, { masterAddr: '10.0.0.7' })!.masterAddr, '10.0.0.7');
    const { SLURM_NODELIST: _l, SLURM_NNODES: _n, ...noList } = srun;
    assert.equal(placementFromEnv({ ...noList, SLURM_JOB_NODELIST: 'x[1-3]' })!.masterAddr, 'x1');
    assert.equal(placementFromEnv(noList, { masterAddr: 'h' })!.masterAddr, 'h');
  });

  test('missing, malformed and contradictory variables are named', () => {
    const { SLURM_NODELIST: _l, SLURM_NNODES: _n, ...noList } = srun;
    refuses(
      noList,
      /Slurm environment is incomplete: SLURM_NODELIST is not set \(found SLURM_PROCID=2, SLURM_NTASKS=3\)/,
    );
    refuses({ SLURM_PROCID: '0' }, /SLURM_NTASKS is not set/);
    refuses({ ...srun, SLURM_PROCID: '3' }, /SLURM_PROCID=3 is not below SLURM_NTASKS=3/);
    refuses({ ...srun, SLURM_NTASKS: 'many' }, /SLURM_NTASKS=many must be an integer/);
    refuses(
      { ...srun, SLURM_NODELIST: 'gpu[07-09' },
      /Slurm: SLURM_NODELIST=gpu\[07-09: a "\[" is never closed/,
    );
    refuses({ ...srun, SLURM_NNODES: '2' }, /SLURM_NODELIST names 3 host\(s\) but SLURM_NNODES=2/);
    refuses(
      { ...srun, SLURM_STEP_NODELIST: 'n[1-4]' },
      /SLURM_STEP_NODELIST names 4 hosts, more than the SLURM_NTASKS=3 tasks/,
    );
  });
});

describe('LeaderWorkerSet', () => {
  const worker = {
    LWS_LEADER_ADDRESS: 'duet-0.duet.default',
    LWS_GROUP_SIZE: '2',
    LWS_WORKER_INDEX: '1',
  };

  test('pod LWS_WORKER_INDEX of LWS_GROUP_SIZE, the leader at LWS_LEADER_ADDRESS', () => {
    const p = placementFromEnv(worker)!;
    assert.equal(p.launcher, 'LeaderWorkerSet');
    assert.equal(p.nodeRank, 1);
    assert.equal(p.nnodes, 2);
    assert.equal(p.masterAddr, 'duet-0.duet.default');
    assert.equal(p.masterPort, 29500);
    assert.equal(placementFromEnv({ ...worker, LWS_WORKER_INDEX: '0' })!.nodeRank, 0);
    assert.equal(placementFromEnv({ ...worker, MASTER_PORT: '29600' })!.masterPort, 29600);
    assert.equal(placementFromEnv(worker, { masterAddr: '10.2.0.4' })!.masterAddr, '10.2.0.4');
  });

  test('missing, malformed and contradictory variables are named', () => {
    refuses(
      { LWS_GROUP_SIZE: '2', LWS_WORKER_INDEX: '1' },
      /LeaderWorkerSet environment is incomplete: LWS_LEADER_ADDRESS is not set/,
    );
    refuses({ LWS_LEADER_ADDRESS: 'x', LWS_WORKER_INDEX: '0' }, /LWS_GROUP_SIZE is not set/);
    refuses({ LWS_LEADER_ADDRESS: 'x', LWS_GROUP_SIZE: '2' }, /LWS_WORKER_INDEX is not set/);
    refuses({ ...worker, LWS_WORKER_INDEX: '2' }, /LWS_WORKER_INDEX=2 is not below LWS_GROUP_SIZE=2/);
    refuses({ ...worker, LWS_GROUP_SIZE: '2x' }, /LWS_GROUP_SIZE=2x must be an integer/);
  });
});

test('the innermost launcher is read when several are present', () => {
  const lws = { LWS_LEADER_ADDRESS: 'leader', LWS_GROUP_SIZE: '4', LWS_WORKER_INDEX: '3' };
  const slurm = { SLURM_PROCID: '1', SLURM_NTASKS: '2', SLURM_NODELIST: 'n[1-2]' };
  const ompi = {
    OMPI_COMM_WORLD_RANK: '0',
    OMPI_COMM_WORLD_SIZE: '1',
    OMPI_COMM_WORLD_LOCAL_RANK: '0',
    OMPI_COMM_WORLD_LOCAL_SIZE: '1',
  };
  const torch = { RANK: '5', WORLD_SIZE: '8', MASTER_ADDR: 'm', MASTER_PORT: '1' };
  assert.equal(placementFromEnv({ ...lws, ...slurm })!.launcher, 'Slurm');
  // mpirun inside a Slurm job: Open MPI numbered the processes (SLURM_PROCID is its daemon's).
  assert.equal(placementFromEnv({ ...lws, ...slurm, ...ompi })!.launcher, 'Open MPI');
  const inner = placementFromEnv({ ...lws, ...slurm, ...ompi, ...torch })!;
  assert.equal(inner.launcher, 'torchrun');
  assert.equal(inner.nodeRank, 5);
  // A broken inner launcher is an error, not a silent fall-back to an outer one.
  refuses({ ...slurm, RANK: '0' }, /torchrun environment is incomplete: WORLD_SIZE is not set/);
});
