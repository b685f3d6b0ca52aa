// Tensor and expert parallelism of the DeepSeek model against the golden reference: N ranks, each with
// its own shard of the weights and its own latent cache, run the same batches concurrently through an
// in-thread group (test/helpers/local-group.ts); every rank's logits must match the golden outputs within
// the fp32 tolerance (1e-3), with identical greedy decoding, in both MoE modes.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ReferenceKernels } from '../../src/kernels/reference/reference-kernels.js';
import type { ForwardBatch } from '../../src/layers/forward-batch.js';
import { MlaKvCache } from '../../src/layers/mla-kv-cache.js';
import type { ParallelPlan } from '../../src/layers/parallel-plan.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { openSafetensors } from '../../src/loader/safetensors.js';
import { DeepseekForCausalLM } from '../../src/models/deepseek.js';
import { argmax, assertPrefillMatchesGolden, fixtureDir, loadGolden } from '../helpers/golden.js';
import { createLocalGroup } from '../helpers/local-group.js';

const TOL = 1e-3;
const BLOCK = 16;
const NUM_BLOCKS = 12;

const layouts: [string, number, Omit<ParallelPlan, 'rank' | 'size'>][] = [
  ['-tp 2', 2, { expertParallel: false, moeComm: 'allgather' }],
  ['-tp 2 --enable-expert-parallel, moe_comm allgather', 2, { expertParallel: true, moeComm: 'allgather' }],
  ['-tp 2 --enable-expert-parallel, moe_comm alltoall', 2, { expertParallel: true, moeComm: 'alltoall' }],
  ['-tp 4 --enable-expert-parallel, moe_comm alltoall', 4, { expertParallel: true, moeComm: 'alltoall' }],
];

for (const fixture of ['v2-lite-tiny', 'v2-tiny']) {
  for (const [name, size, layout] of layouts) {
    describe(`${fixture} with ${name}`, () => {
      const dir = fixtureDir(fixture);
      const golden = loadGolden(fixture);
      const config = loadDeepseekConfig(dir);
      const kernels = new ReferenceKernels();
      const comms = createLocalGroup(size);
      const source = openSafetensors(dir);
      const models = comms.map(
        (communicator, rank) =>
          new DeepseekForCausalLM(config, {
            kernels,
            source,
            weightDType: 'bf16',
            communicator,
            plan: { rank, size, ...layout },
          }),
      );
      source.close();
      const V = config.vocabSize;

      for (const p of golden.prompts.filter((x) => x.name !== 'p150_text')) {
        test(`${p.name}: every rank matches the reference`, async () => {
          const caches = models.map(() => MlaKvCache.forModel(kernels, config, NUM_BLOCKS, BLOCK));
          const blockTable = Int32Array.from({ length: NUM_BLOCKS }, (_, i) => NUM_BLOCKS - 1 - i);
          const slot = (pos: number) => blockTable[Math.floor(pos / BLOCK)]! * BLOCK + (pos % BLOCK);
          const run = (batch: ForwardBatch) =>
            Promise.all(models.map((m, r) => m.forward(batch, caches[r]!)));
          const L = p.ids.length;
          const all = await run({
            numTokens: L,
            tokenIds: Int32Array.from(p.ids),
            positions: Int32Array.from({ length: L }, (_, i) => i),
            slotMapping: Int32Array.from({ length: L }, (_, i) => slot(i)),
            seqs: [{ queryStart: 0, queryLen: L, blockTable }],
            logitsIndices: Int32Array.from({ length: L }, (_, i) => i),
          });
          all.forEach((logits, r) => assertPrefillMatchesGolden(logits, p, V, TOL, `rank ${r}`));
          let next = argmax(all[0]!.subarray((L - 1) * V));
          const generated: number[] = [];
          for (let step = 0; step < p.greedy.ids.length; step++) {
            generated.push(next);
            const pos = L + step;
            const out = await run({
              numTokens: 1,
              tokenIds: Int32Array.of(next),
              positions: Int32Array.of(pos),
              slotMapping: Int32Array.of(slot(pos)),
              seqs: [{ queryStart: 0, queryLen: 1, blockTable }],
              logitsIndices: Int32Array.of(0),
            });
            const picks = out.map((l) => argmax(l));
            assert.ok(
              picks.every((x) => x === picks[0]),
              `ranks disagree at step ${step}: ${picks}`,
            );
            next = picks[0]!;
          }
          assert.deepEqual(generated, p.greedy.ids);
        });
      }
    });
  }
}
