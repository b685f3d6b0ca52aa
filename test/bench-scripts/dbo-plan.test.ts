// The DBO planner's model (bench/dbo-plan.ts): the link's ring collectives, the step played on one compute
// thread and one link, and the CPU floor of ranks that share one machine's cores (the testbed's "hosts").

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { collectiveMs, LinkTimeline, type PlanStage, predict, type SharedCpu } from '../../bench/dbo-plan.js';

/** One dense layer of 10 ms attention and 20 ms MLP compute, each closed by a 1 MB all-reduce. */
const STAGES: PlanStage[] = [
  {
    name: 'L0 attn all-reduce',
    end: 'collective',
    computeMs: 10,
    collective: { kind: 'all_reduce', bytes: 1e6 },
  },
  {
    name: 'L0 mlp all-reduce',
    end: 'collective',
    computeMs: 20,
    collective: { kind: 'all_reduce', bytes: 1e6 },
  },
  { name: 'done', end: 'done', computeMs: 0 },
];
// 800 mbit/s, no latency, 2 ranks: a 1 MB ring all-reduce moves 2 x 0.5 MB = 8 Mbit = 10 ms.
const LINK = { bitsPerSecond: 800e6, latencyMs: 0, ranks: 2 };

describe('DBO planner', () => {
  test('a ring all-reduce costs 2(P-1) messages of bytes/P', () => {
    assert.equal(collectiveMs(LINK, 'all_reduce', 1e6), 10);
    assert.equal(collectiveMs({ ...LINK, ranks: 4 }, 'all_gather', 1e6), 7.5);
  });

  test("a token-bucket link (the testbed's tc tbf) lets a burst through at once and refills while idle", () => {
    // 800 mbit/s = 0.1 MB/ms, a 0.5 MB bucket. A 1 MB all-reduce puts 1 MB on each rank's link: 0.5 MB
    // pass at once, 0.5 MB take 5 ms. Exact up to float rounding (tolerance 1e-9 ms).
    const close = (a: number, b: number) => assert.ok(Math.abs(a - b) < 1e-9, `${a} vs ${b}`);
    const link = new LinkTimeline({ ...LINK, burstBytes: 0.5e6 });
    close(link.run(0, 'all_reduce', 1e6), 5);
    // Issued at once after: the bucket is empty, the whole megabyte at the rate.
    close(link.run(5, 'all_reduce', 1e6), 15);
    // Issued 2 ms after the link went idle: 0.2 MB of tokens.
    close(link.run(17, 'all_reduce', 1e6), 17 + 8);
    // A small collective after a long idle passes within the bucket: no time on the wire at all.
    close(link.run(100, 'all_gather', 0.2e6), 100);
    // Without a bucket every collective takes collectiveMs.
    close(new LinkTimeline(LINK).run(3, 'all_reduce', 1e6), 3 + collectiveMs(LINK, 'all_reduce', 1e6));
  });

  test('without a shared CPU the step is the timeline (no floor)', () => {
    const p = predict(STAGES, LINK, 'alternate', 0.1);
    assert.equal(p.offMs, 30 + 20);
    assert.equal(p.floorOffMs, 0);
    assert.equal(p.floorOnMs, 0);
    assert.equal(p.onMs, p.timelineOnMs);
    assert.ok(p.onMs < p.offMs, `DBO hides some of the 20 ms of communication: ${p.onMs}`);
  });

  test('ranks sharing cores are held to the CPU floor: all threads over the cores', () => {
    const cpu: SharedCpu = { cores: 2, otherCpuMs: 30, commCpuBaseMs: 0.25, commCpuPerMiBMs: 0.5 };
    const p = predict(STAGES, LINK, 'alternate', 0.1, cpu);
    const mib = 1e6 / (1 << 20);
    // A rank's communication thread: 0.25 + 0.5 x MiB per collective; 2 ranks of 30 ms compute each.
    // Off: (60 + 30 + 2 collectives of 1 MB x 2 ranks) / 2 cores ≈ 46.5 ms, below the serial 50 ms.
    // On: (60 x 1.1 + 30 + 4 collectives of 0.5 MB x 2 ranks) / 2 ≈ 50.0 ms, above the timeline.
    // Exact up to float rounding (tolerance 1e-9 ms).
    const offFloor = (60 + 30 + 2 * (0.25 + 0.5 * mib) * 2) / 2;
    const onFloor = (60 * 1.1 + 30 + 4 * (0.25 + 0.25 * mib) * 2) / 2;
    assert.equal(p.offMs, 50);
    assert.ok(Math.abs(p.floorOffMs - offFloor) < 1e-9, `floor off ${p.floorOffMs} vs ${offFloor}`);
    assert.ok(Math.abs(p.floorOnMs - onFloor) < 1e-9, `floor on ${p.floorOnMs} vs ${onFloor}`);
    assert.ok(p.timelineOnMs < p.floorOnMs, `timeline ${p.timelineOnMs} below the floor`);
    assert.equal(p.onMs, p.floorOnMs);
    // With cores to spare the floor drops below the timeline and stops binding.
    const roomy = predict(STAGES, LINK, 'alternate', 0.1, { ...cpu, cores: 8 });
    assert.equal(roomy.onMs, roomy.timelineOnMs);
  });

  test('back-to-back figures apply to the DBO side only: its link latency and its communication CPU', () => {
    // DBO's split steps keep collectives back to back (no wake-ups): a smaller per-message latency and
    // communication-thread CPU than a step without DBO, whose collectives each follow a compute stage.
    const idle = { ...LINK, latencyMs: 1.5 };
    const cpu: SharedCpu = { cores: 2, otherCpuMs: 0, commCpuBaseMs: 2, commCpuPerMiBMs: 4 };
    const busyComm = { baseMs: 0.5, perMiBMs: 1 };
    const both = predict(STAGES, { ...idle, busyLatencyMs: 0.25 }, 'alternate', 0.1, { ...cpu, busyComm });
    const plain = predict(STAGES, idle, 'alternate', 0.1, cpu);
    // Without DBO: as without back-to-back figures.
    assert.equal(both.offMs, plain.offMs);
    assert.equal(both.floorOffMs, plain.floorOffMs);
    // With DBO: as if the link's latency and the communication CPU were the back-to-back ones throughout.
    const allBusy = predict(STAGES, { ...idle, latencyMs: 0.25 }, 'alternate', 0.1, {
      ...cpu,
      commCpuBaseMs: 0.5,
      commCpuPerMiBMs: 1,
    });
    assert.equal(both.timelineOnMs, allBusy.timelineOnMs);
    assert.equal(both.floorOnMs, allBusy.floorOnMs);
    assert.ok(both.timelineOnMs < plain.timelineOnMs && both.floorOnMs < plain.floorOnMs);
  });
});
