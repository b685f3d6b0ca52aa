// CPU time of a process's threads, by role, from Linux's /proc (bench/serve-overhead.ts's split), and the
// time each role's threads spent runnable but waiting for a core (the scheduler's run queue: what other
// busy threads on the same cores cost them). Duet names its threads (src/util/thread-name.ts); the main
// thread is the one whose id is the process id; the rest (V8's compiler and GC helpers, libuv's pool)
// count as the Node runtime. A native thread takes the name of the thread that started it (Linux copies
// it): OpenMP's threads, started by the engine thread, are also called `duet-engine`, so all but the
// first (lowest id) thread of a Duet name count as the runtime, as the same threads do where the engine
// runs on the main thread. CPU times are in seconds at the kernel's USER_HZ resolution (10 ms), waits in
// seconds from nanoseconds (/proc/<pid>/task/<tid>/schedstat). Elsewhere than Linux every reading is
// empty.

import { readdirSync, readFileSync } from 'node:fs';

/** Linux's USER_HZ: the unit of /proc/<pid>/stat's CPU times (100 on every mainstream kernel). */
const CLOCK_TICKS_PER_S = 100;

/** CPU seconds per thread role of one process. */
export type ThreadCpu = Map<string, number>;

/** The fields of a /proc stat line after the command name (which may hold spaces and parentheses). */
function statFields(text: string): string[] {
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** The role a thread's CPU is booked under: `main`, its Duet name without a trailing index, or `runtime`. */
function roleOf(pid: number, tid: number, comm: string): string {
  if (tid === pid) return 'main';
  if (comm.startsWith('duet-')) return comm.replace(/-\d+$/, '');
  return 'runtime';
}

/** Seconds per role of each live thread of `pid` ('self' for this process), as `read` gives them. */
function byRole(pid: number | 'self', read: (taskDir: string) => number): ThreadCpu {
  const out: ThreadCpu = new Map();
  if (process.platform !== 'linux') return out;
  const realPid = pid === 'self' ? process.pid : pid;
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${realPid}/task`);
  } catch {
    return out;
  }
  const named = new Set<string>();
  for (const tid of tids.sort((a, b) => Number(a) - Number(b))) {
    try {
      const dir = `/proc/${realPid}/task/${tid}`;
      const comm = readFileSync(`${dir}/comm`, 'utf8').trim();
      const seconds = read(dir);
      const inherited = comm.startsWith('duet-') && named.has(comm);
      named.add(comm);
      const role = inherited ? 'runtime' : roleOf(realPid, Number(tid), comm);
      out.set(role, (out.get(role) ?? 0) + seconds);
    } catch {
      // The thread ended between the listing and the read: its time is lost, as for any exited thread.
    }
  }
  return out;
}

/** CPU seconds (user + system) of each live thread of `pid` ('self' for this process), by role. */
export function threadCpu(pid: number | 'self'): ThreadCpu {
  return byRole(pid, (dir) => {
    const f = statFields(readFileSync(`${dir}/stat`, 'utf8'));
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name.
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS_PER_S;
  });
}

/**
 * Seconds each live thread of `pid` ('self' for this process) spent runnable but waiting for a core, by
 * role (schedstat's second field; a kernel without schedstats reads 0).
 */
export function threadRunqueueWait(pid: number | 'self'): ThreadCpu {
  return byRole(pid, (dir) => Number(readFileSync(`${dir}/schedstat`, 'utf8').split(' ')[1]) / 1e9);
}

/** What each role used between two readings (roles of threads started in between count from 0). */
export function perRoleSince(before: ThreadCpu, after: ThreadCpu): ThreadCpu {
  const out: ThreadCpu = new Map();
  for (const [role, s] of after) out.set(role, Math.max(0, s - (before.get(role) ?? 0)));
  return out;
}

/** CPU seconds of this process's children that have ended and been waited for (cutime + cstime). */
export function endedChildrenCpu(): number {
  if (process.platform !== 'linux') return Number.NaN;
  const f = statFields(readFileSync('/proc/self/stat', 'utf8'));
  return (Number(f[13]) + Number(f[14])) / CLOCK_TICKS_PER_S;
}

/** The 1-minute load average of the machine (other processes competing for its cores). */
export function loadAverage1(): number {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return Number.NaN;
  }
}
