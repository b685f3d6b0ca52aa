// Tensor-, expert- and data-parallel serving through the offline API: ranks as worker threads joined over
// shared memory give the golden greedy tokens and log-probs (fp32 tolerance 1e-3) in both MoE modes, with
// data-parallel engine replicas (each its own scheduler and KV cache, sharing the MoE layers; both must
// take requests) and with dual-batch overlap on; a rank killed mid-request fails the request with a clear
// error and leaves the engine marked dead, without hanging.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { LLM, type LLMOptions } from '../../src/engine/llm.js';
import { fixtureDir, loadGolden } from '../helpers/golden.js';
import { usablePlatforms } from '../helpers/platforms.js';

// Every usable platform (test/helpers/platforms.ts) runs the same assertions.
const devices = await usablePlatforms();

const TOL = 1e-3;

for (const device of devices) {
  describe(`parallel ranks in worker threads (${device})`, () => {
    const golden = loadGolden('v2-tiny');
    const inputs = golden.prompts.map((p) => ({ prompt_token_ids: p.ids }));
    const params = { temperature: 0, maxTokens: 16, ignoreEos: true, logprobs: 5 };
    const llms: LLM[] = [];
    after(async () => {
      for (const l of llms) await l.close();
    });
    const base: LLMOptions = {
      model: fixtureDir('v2-tiny'),
      blockSize: 16,
      kvCacheMemory: 8 * 2 ** 20,
      numThreads: 2,
      device,
      enablePrefixCaching: true,
    };

    const layouts: [string, LLMOptions][] = [
      ['-tp 2', { tensorParallelSize: 2 }],
      [
        '-tp 2 --enable-expert-parallel (alltoall) with DBO',
        {
          tensorParallelSize: 2,
          enableExpertParallel: true,
          moeComm: 'alltoall',
          enableDbo: true,
          dboAutoOff: false,
          dboPrefillTokenThreshold: 64,
          dboDecodeTokenThreshold: 2,
        },
      ],
      [
        '-tp 2 --enable-expert-parallel (allgather)',
        { tensorParallelSize: 2, enableExpertParallel: true, moeComm: 'allgather' },
      ],
      [
        '-dp 2 --enable-expert-parallel (alltoall)',
        { dataParallelSize: 2, enableExpertParallel: true, moeComm: 'alltoall' },
      ],
      ['-dp 2 (experts split by features over both replicas)', { dataParallelSize: 2 }],
      [
        '-dp 2 -tp 2 --enable-expert-parallel (allgather) with DBO',
        {
          dataParallelSize: 2,
          tensorParallelSize: 2,
          enableExpertParallel: true,
          moeComm: 'allgather',
          enableDbo: true,
          dboAutoOff: false,
          dboPrefillTokenThreshold: 8,
          dboDecodeTokenThreshold: 2,
        },
      ],
    ];
    for (const [name, opts] of layouts) {
      test(`${name}: golden greedy tokens and log-probs`, async () => {
        const llm = new LLM({ ...base, ...opts });
        llms.push(llm);
        const outputs = await llm.generate(inputs, params);
        outputs.forEach((out, i) => {
          const p = golden.prompts[i]!;
          assert.deepEqual(out.outputs[0]!.token_ids, p.greedy.ids, p.name);
          out.outputs[0]!.logprobs!.forEach((lp, step) => {
            lp.top_logprobs.forEach((t, j) => {
              const d = Math.abs(t.logprob - p.greedy.step_top5_logprobs[step]![j]!);
              assert.ok(d <= TOL, `${p.name} step ${step}: log-prob off by ${d}`);
            });
          });
        });
        const engine = await llm.engine();
        // Every admission looks its prompt up in its replica's prefix cache: each replica admitted work.
        const perReplica = engine.replicaStats();
        assert.equal(perReplica.length, opts.dataParallelSize ?? 1);
        for (const [r, s] of perReplica.entries()) {
          assert.ok(s.prefixCacheQueries > 0, `replica ${r} served requests`);
          assert.equal(s.numRunning + s.numWaiting, 0, `replica ${r} is idle at the end`);
        }
        if (opts.enableDbo) assert.ok(engine.dboStats.splitSteps > 0, 'some steps ran as two micro-batches');
      });
    }

    for (const [name, opts] of [
      ['-tp 2', { tensorParallelSize: 2 }],
      ['-dp 2 --enable-expert-parallel', { dataParallelSize: 2, enableExpertParallel: true }],
    ] as const) {
      test(`${name}: rank 1 killed mid-request fails the request and marks the engine dead`, async () => {
        const llm = new LLM({ ...base, ...opts, distTimeout: 3 });
        llms.push(llm);
        const engine = await llm.engine();
        const pending = llm.generate(inputs, { ...params, maxTokens: 100 });
        await new Promise((r) => setTimeout(r, 50));
        const started = performance.now();
        await engine.rankWorkers!.kill(1);
        await assert.rejects(pending, /rank 1|peer|dead|closed/i);
        assert.ok(performance.now() - started < 10_000, 'detected within the timeout');
        assert.equal(engine.isHealthy, false);
      });
    }
  });
}
