// An in-thread process group for tests: N ranks run as concurrent async tasks in one thread, and each
// collective completes when every rank has issued it (in the same order on every rank). It moves no
// data between threads; it checks a model's sharding logic independently of any transport.

import type { CollectiveHandle, CommBuffer, Communicator } from '../../src/distributed/communicator.js';

interface Pending {
  readonly inputs: (CommBuffer | null)[];
  readonly outs: (CommBuffer | null)[];
  arrived: number;
  readonly resolves: (() => void)[];
}

class LocalRank implements Communicator {
  private seq = 0;
  constructor(
    readonly rank: number,
    readonly worldSize: number,
    private readonly group: LocalGroup,
  ) {}

  private issue(
    kind: string,
    out: CommBuffer | null,
    input: CommBuffer | null,
    finish: (p: Pending) => void,
  ) {
    const id = this.seq++;
    return this.group.rendezvous(`${id}:${kind}`, this.rank, out, input, finish);
  }

  allReduce(buf: Float32Array): CollectiveHandle {
    return this.issue('allReduce', buf, buf.slice(), (p) => {
      const sum = new Float32Array(buf.length);
      for (const inp of p.inputs) for (let i = 0; i < sum.length; i++) sum[i]! += (inp as Float32Array)[i]!;
      for (const o of p.outs) (o as Float32Array).set(sum);
    });
  }

  allGather<T extends CommBuffer>(out: T, input: T, counts: readonly number[]): CollectiveHandle {
    return this.issue('allGather', out, input.slice() as T, (p) => {
      let at = 0;
      const parts = p.inputs.map((inp, r) => {
        const part = { data: inp!, at };
        at += counts[r]!;
        return part;
      });
      for (const o of p.outs) for (const part of parts) o!.set(part.data as never, part.at);
    });
  }

  reduceScatter(out: Float32Array, input: Float32Array, counts: readonly number[]): CollectiveHandle {
    return this.issue('reduceScatter', out, input.slice(), (p) => {
      const total = counts.reduce((a, b) => a + b, 0);
      const sum = new Float32Array(total);
      for (const inp of p.inputs) for (let i = 0; i < total; i++) sum[i]! += (inp as Float32Array)[i]!;
      let at = 0;
      p.outs.forEach((o, r) => {
        (o as Float32Array).set(sum.subarray(at, at + counts[r]!));
        at += counts[r]!;
      });
    });
  }

  allToAll<T extends CommBuffer>(
    out: T,
    recvCounts: readonly number[],
    input: T,
    sendCounts: readonly number[],
  ) {
    const mine = { sendCounts: [...sendCounts], recvCounts: [...recvCounts] };
    this.group.meta.set(`${this.seq}:${this.rank}`, mine);
    const key = this.seq;
    return this.issue('allToAll', out, input.slice() as T, (p) => {
      const metas = p.inputs.map((_, r) => this.group.meta.get(`${key}:${r}`)!);
      p.outs.forEach((o, dst) => {
        let at = 0;
        metas.forEach((m, src) => {
          const off = m.sendCounts.slice(0, dst).reduce((a, b) => a + b, 0);
          const n = m.sendCounts[dst]!;
          if (n !== metas[dst]!.recvCounts[src]) throw new Error(`allToAll count mismatch ${src}->${dst}`);
          o!.set(p.inputs[src]!.subarray(off, off + n) as never, at);
          at += n;
        });
      });
    });
  }

  broadcast<T extends CommBuffer>(buf: T, root: number): CollectiveHandle {
    return this.issue('broadcast', buf, buf.slice() as T, (p) => {
      for (const o of p.outs) o!.set(p.inputs[root]! as never);
    });
  }

  barrier(): CollectiveHandle {
    return this.issue('barrier', null, null, () => {});
  }

  async close(): Promise<void> {}
}

class LocalGroup {
  private readonly pending = new Map<string, Pending>();
  readonly meta = new Map<string, { sendCounts: number[]; recvCounts: number[] }>();
  constructor(readonly size: number) {}

  rendezvous(
    key: string,
    rank: number,
    out: CommBuffer | null,
    input: CommBuffer | null,
    finish: (p: Pending) => void,
  ): CollectiveHandle {
    let p = this.pending.get(key);
    if (!p) {
      p = {
        inputs: Array(this.size).fill(null),
        outs: Array(this.size).fill(null),
        arrived: 0,
        resolves: [],
      };
      this.pending.set(key, p);
    }
    p.inputs[rank] = input;
    p.outs[rank] = out;
    p.arrived++;
    let done = false;
    const promise = new Promise<void>((resolve) => p!.resolves.push(resolve));
    if (p.arrived === this.size) {
      finish(p);
      this.pending.delete(key);
      for (const r of p.resolves) r();
    }
    void promise.then(() => {
      done = true;
    });
    return {
      get isDone() {
        return done;
      },
      wait: () => promise,
    };
  }
}

/** N communicators of one in-thread group. */
export function createLocalGroup(size: number): Communicator[] {
  const group = new LocalGroup(size);
  return Array.from({ length: size }, (_, r) => new LocalRank(r, size, group));
}
