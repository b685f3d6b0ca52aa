// Where this process stands in a multi-host run, read from the environment a cluster launcher gives each
// process it starts: torchrun-style (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT), Open MPI's mpirun
// (OMPI_COMM_WORLD_*), Slurm's srun (SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST) and Kubernetes'
// LeaderWorkerSet (LWS_*). Pure: an env object in, a placement or a typed error out.
//
// A launcher numbers the processes it starts; Duet's unit is a **node**, one process holding
// `tp × dp / nnodes` ranks as worker threads. So each launched process is one Duet node: the launcher's
// process rank is the node rank, its process count is `--nnodes`, and process 0 is the head that serves.
// Start one process per host (mpirun's `--map-by ppr:1:node`, srun's `--ntasks-per-node=1`, torchrun's
// `--nproc-per-node 1`); several processes on one host also work, each holding its share of the ranks.

import { expandHostList, HostListError } from './slurm-hostlist.js';

/** The launchers whose environment Duet reads, innermost first (the order they are looked for in). */
export type LauncherName = 'torchrun' | 'Open MPI' | 'Slurm' | 'LeaderWorkerSet';

/** Where this process stands, as the launcher says. */
export interface LauncherPlacement {
  readonly launcher: LauncherName;
  /** This process's index among the launched processes: Duet's --node-rank (0 serves). */
  readonly nodeRank: number;
  /** How many processes the launcher started: Duet's --nnodes. */
  readonly nnodes: number;
  /** The head's rendezvous address and port: Duet's --master-addr / --master-port. */
  readonly masterAddr: string;
  readonly masterPort: number;
  /** How many of the launched processes share this host, where the launcher says (else null). */
  readonly numLocalProcesses: number | null;
  /** The variables the placement came from, `NAME=value, ...`, for log lines and error messages. */
  readonly source: string;
  /** Things worth a log line (e.g. a port moved off one the launcher itself holds). */
  readonly notes: readonly string[];
}

/** A launcher environment that is incomplete, malformed or contradicts itself; names the variables. */
export class LauncherEnvError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LauncherEnvError';
  }
}

/** The environment as read here: variable names to values (process.env fits). */
export type Env = Readonly<Record<string, string | undefined>>;

/** What the command line gave, which the environment does not override. */
export interface GivenAddress {
  readonly masterAddr?: string;
  readonly masterPort?: number;
}

/** Rendezvous port when neither a flag, MASTER_PORT nor the launcher gives one (torch's default too). */
export const DEFAULT_MASTER_PORT = 29500;

/** Most processes a launcher may start for one Duet model (bounds hostile values). */
const MAX_PROCESSES = 65_536;

/** Reads the variables a launcher sets; remembers which were read, for `source`. */
class EnvReader {
  private readonly used: string[] = [];
  constructor(
    private readonly env: Env,
    private readonly launcher: LauncherName,
  ) {}

  has(name: string): boolean {
    return this.env[name] !== undefined && this.env[name] !== '';
  }

  /** The value, or an error naming the variable and what else the launcher set. */
  string(name: string): string {
    const v = this.optionalString(name);
    if (v === undefined) {
      throw new LauncherEnvError(
        `${this.launcher} environment is incomplete: ${name} is not set (found ${this.source() || 'nothing else'})`,
      );
    }
    return v;
  }

  optionalString(name: string): string | undefined {
    if (!this.has(name)) return undefined;
    const v = this.env[name]!.trim();
    this.used.push(`${name}=${v}`);
    return v;
  }

  /** A whole number in [min, max]; else an error naming the variable and its value. */
  int(name: string, min: number, max: number): number {
    return this.parseInt(name, this.string(name), min, max);
  }

  optionalInt(name: string, min: number, max: number): number | undefined {
    const v = this.optionalString(name);
    return v === undefined ? undefined : this.parseInt(name, v, min, max);
  }

  private parseInt(name: string, v: string, min: number, max: number): number {
    const n = /^\d{1,9}$/.test(v) ? Number(v) : Number.NaN;
    if (!(n >= min && n <= max)) {
      throw new LauncherEnvError(`${this.launcher}: ${name}=${v} must be an integer in ${min}..${max}`);
    }
    return n;
  }

  contradiction(what: string): LauncherEnvError {
    return new LauncherEnvError(`${this.launcher} environment contradicts itself: ${what}`);
  }

  source(): string {
    return this.used.join(', ');
  }
}

/** A port read from MASTER_PORT, unless the command line gave one. */
function portFrom(r: EnvReader, given: GivenAddress, fallback: number): number {
  return given.masterPort ?? r.optionalInt('MASTER_PORT', 1, 65535) ?? fallback;
}

/**
 * torchrun and launchers that mimic it (Kubeflow's PyTorchJob, ...): RANK of WORLD_SIZE, the head at
 * MASTER_ADDR:MASTER_PORT. LOCAL_RANK / LOCAL_WORLD_SIZE, where set, must agree with them. torchrun's own
 * agent holds MASTER_PORT on the head's host (TORCHELASTIC_USE_AGENT_STORE=True), so there Duet's
 * rendezvous takes the next port.
 */
function torchrun(env: Env, given: GivenAddress): LauncherPlacement {
  const r = new EnvReader(env, 'torchrun');
  const nnodes = r.int('WORLD_SIZE', 1, MAX_PROCESSES);
  const nodeRank = r.int('RANK', 0, MAX_PROCESSES - 1);
  if (nodeRank >= nnodes) throw r.contradiction(`RANK=${nodeRank} is not below WORLD_SIZE=${nnodes}`);
  const localRank = r.optionalInt('LOCAL_RANK', 0, MAX_PROCESSES - 1);
  const localSize = r.optionalInt('LOCAL_WORLD_SIZE', 1, MAX_PROCESSES);
  if (localRank !== undefined && localRank > nodeRank) {
    throw r.contradiction(`LOCAL_RANK=${localRank} exceeds RANK=${nodeRank}`);
  }
  if (localSize !== undefined && localSize > nnodes) {
    throw r.contradiction(`LOCAL_WORLD_SIZE=${localSize} exceeds WORLD_SIZE=${nnodes}`);
  }
  if (localRank !== undefined && localSize !== undefined && localRank >= localSize) {
    throw r.contradiction(`LOCAL_RANK=${localRank} is not below LOCAL_WORLD_SIZE=${localSize}`);
  }
  const masterAddr = given.masterAddr ?? r.string('MASTER_ADDR');
  const notes: string[] = [];
  let masterPort: number;
  if (given.masterPort !== undefined) masterPort = given.masterPort;
  else {
    masterPort = r.int('MASTER_PORT', 1, 65535);
    if (r.optionalString('TORCHELASTIC_USE_AGENT_STORE')?.toLowerCase() === 'true') {
      if (masterPort === 65535) {
        throw new LauncherEnvError(
          "torchrun's agent holds MASTER_PORT=65535 and there is no next port: pass --master-port",
        );
      }
      masterPort += 1;
      notes.push(`torchrun's agent holds MASTER_PORT; Duet's rendezvous uses the next port, ${masterPort}`);
    }
  }
  return {
    launcher: 'torchrun',
    nodeRank,
    nnodes,
    masterAddr,
    masterPort,
    numLocalProcesses: localSize ?? null,
    source: r.source(),
    notes,
  };
}

/**
 * Open MPI's mpirun: OMPI_COMM_WORLD_RANK of OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK of
 * OMPI_COMM_WORLD_LOCAL_SIZE on this host. mpirun does not say where rank 0 runs: the head's address is
 * --master-addr, else MASTER_ADDR (`mpirun -x MASTER_ADDR=...`), else, when every process is on this
 * host, 127.0.0.1; on several hosts without either it is an error.
 */
function openMpi(env: Env, given: GivenAddress): LauncherPlacement {
  const r = new EnvReader(env, 'Open MPI');
  const nnodes = r.int('OMPI_COMM_WORLD_SIZE', 1, MAX_PROCESSES);
  const nodeRank = r.int('OMPI_COMM_WORLD_RANK', 0, MAX_PROCESSES - 1);
  if (nodeRank >= nnodes) {
    throw r.contradiction(`OMPI_COMM_WORLD_RANK=${nodeRank} is not below OMPI_COMM_WORLD_SIZE=${nnodes}`);
  }
  const localRank = r.int('OMPI_COMM_WORLD_LOCAL_RANK', 0, MAX_PROCESSES - 1);
  const localSize = r.optionalInt('OMPI_COMM_WORLD_LOCAL_SIZE', 1, MAX_PROCESSES);
  if (localRank > nodeRank) {
    throw r.contradiction(`OMPI_COMM_WORLD_LOCAL_RANK=${localRank} exceeds OMPI_COMM_WORLD_RANK=${nodeRank}`);
  }
  if (localSize !== undefined && (localSize > nnodes || localRank >= localSize)) {
    throw r.contradiction(
      `OMPI_COMM_WORLD_LOCAL_RANK=${localRank} and OMPI_COMM_WORLD_LOCAL_SIZE=${localSize} do not fit ` +
        `OMPI_COMM_WORLD_SIZE=${nnodes}`,
    );
  }
  let masterAddr = given.masterAddr ?? r.optionalString('MASTER_ADDR');
  if (masterAddr === undefined) {
    if (localSize !== nnodes) {
      throw new LauncherEnvError(
        `Open MPI started processes on several hosts (${localSize === undefined ? 'OMPI_COMM_WORLD_LOCAL_SIZE is not set' : `OMPI_COMM_WORLD_LOCAL_SIZE=${localSize}`}, ` +
          `OMPI_COMM_WORLD_SIZE=${nnodes}) and does not say where rank 0 runs: pass --master-addr ` +
          "with rank 0's host address, or mpirun -x MASTER_ADDR=<that address>",
      );
    }
    masterAddr = '127.0.0.1';
  }
  return {
    launcher: 'Open MPI',
    nodeRank,
    nnodes,
    masterAddr,
    masterPort: portFrom(r, given, DEFAULT_MASTER_PORT),
    numLocalProcesses: localSize ?? null,
    source: r.source(),
    notes: [],
  };
}

/**
 * Slurm's srun: task SLURM_PROCID of SLURM_NTASKS; the head is task 0, which srun places on the first
 * host of the step's node list (SLURM_STEP_NODELIST, else the job's SLURM_NODELIST / SLURM_JOB_NODELIST).
 * MASTER_ADDR, where set, names the head instead (e.g. its address on a faster network).
 */
function slurm(env: Env, given: GivenAddress): LauncherPlacement {
  const r = new EnvReader(env, 'Slurm');
  const nodeRank = r.int('SLURM_PROCID', 0, MAX_PROCESSES - 1);
  const nnodes = r.int('SLURM_NTASKS', 1, MAX_PROCESSES);
  if (nodeRank >= nnodes)
    throw r.contradiction(`SLURM_PROCID=${nodeRank} is not below SLURM_NTASKS=${nnodes}`);
  const listVar = ['SLURM_STEP_NODELIST', 'SLURM_NODELIST', 'SLURM_JOB_NODELIST'].find((v) => r.has(v));
  let masterAddr = given.masterAddr ?? r.optionalString('MASTER_ADDR');
  if (listVar === undefined && masterAddr === undefined) {
    throw new LauncherEnvError(
      `Slurm environment is incomplete: SLURM_NODELIST is not set (found ${r.source()}); run under srun, ` +
        'or pass --master-addr',
    );
  }
  if (listVar !== undefined) {
    const list = r.string(listVar);
    let hosts: string[];
    try {
      hosts = expandHostList(list);
    } catch (e) {
      if (e instanceof HostListError) throw new LauncherEnvError(`Slurm: ${listVar}=${list}: ${e.message}`);
      throw e;
    }
    // The step's (or job's) node count must match the list: a cross-check of the list as read.
    const countVar = listVar === 'SLURM_STEP_NODELIST' ? 'SLURM_STEP_NUM_NODES' : 'SLURM_NNODES';
    const count = r.optionalInt(countVar, 1, MAX_PROCESSES);
    if (count !== undefined && count !== hosts.length) {
      throw r.contradiction(`${listVar} names ${hosts.length} host(s) but ${countVar}=${count}`);
    }
    if (listVar === 'SLURM_STEP_NODELIST' && hosts.length > nnodes) {
      throw r.contradiction(
        `${listVar} names ${hosts.length} hosts, more than the SLURM_NTASKS=${nnodes} tasks; ` +
          'every host of a step runs at least one task',
      );
    }
    masterAddr ??= hosts[0]!;
  }
  return {
    launcher: 'Slurm',
    nodeRank,
    nnodes,
    masterAddr: masterAddr!,
    masterPort: portFrom(r, given, DEFAULT_MASTER_PORT),
    numLocalProcesses: r.optionalInt('SLURM_NTASKS_PER_NODE', 1, MAX_PROCESSES) ?? null,
    source: r.source(),
    notes: [],
  };
}

/**
 * Kubernetes LeaderWorkerSet: pod LWS_WORKER_INDEX of LWS_GROUP_SIZE (the leader is 0), the leader
 * reached at LWS_LEADER_ADDRESS.
 */
function leaderWorkerSet(env: Env, given: GivenAddress): LauncherPlacement {
  const r = new EnvReader(env, 'LeaderWorkerSet');
  const nnodes = r.int('LWS_GROUP_SIZE', 1, MAX_PROCESSES);
  const nodeRank = r.int('LWS_WORKER_INDEX', 0, MAX_PROCESSES - 1);
  if (nodeRank >= nnodes) {
    throw r.contradiction(`LWS_WORKER_INDEX=${nodeRank} is not below LWS_GROUP_SIZE=${nnodes}`);
  }
  const leader = r.string('LWS_LEADER_ADDRESS');
  return {
    launcher: 'LeaderWorkerSet',
    nodeRank,
    nnodes,
    masterAddr: given.masterAddr ?? r.optionalString('MASTER_ADDR') ?? leader,
    masterPort: portFrom(r, given, DEFAULT_MASTER_PORT),
    numLocalProcesses: null,
    source: r.source(),
    notes: [],
  };
}

/** Each launcher, the variables whose presence says it started this process, and its reader. */
const LAUNCHERS: readonly {
  readonly markers: readonly string[];
  readonly read: (env: Env, given: GivenAddress) => LauncherPlacement;
}[] = [
  { markers: ['RANK', 'WORLD_SIZE'], read: torchrun },
  { markers: ['OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE'], read: openMpi },
  { markers: ['SLURM_PROCID'], read: slurm },
  { markers: ['LWS_WORKER_INDEX', 'LWS_GROUP_SIZE', 'LWS_LEADER_ADDRESS'], read: leaderWorkerSet },
];

/**
 * This process's placement from the first launcher whose variables are set, innermost first
 * (torchrun, Open MPI, Slurm, LeaderWorkerSet: mpirun inside a Slurm job sees both and is the one that
 * numbered the processes); null when none is. `given` holds --master-addr / --master-port where the
 * command line has them: they win over the environment. Throws LauncherEnvError for an incomplete,
 * malformed or self-contradictory environment.
 */
export function placementFromEnv(env: Env, given: GivenAddress = {}): LauncherPlacement | null {
  for (const l of LAUNCHERS) {
    if (l.markers.some((m) => env[m] !== undefined && env[m] !== '')) return l.read(env, given);
  }
  return null;
}
