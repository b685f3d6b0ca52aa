// Data parallelism of the DeepSeek model against the golden reference: two engine replicas, each with its
// own requests, its own latent cache and its own tensor-parallel group (of 1 or 2 ranks), share the MoE
// layers, whose experts are spread over all their ranks. Each replica runs a different golden prompt in
// the same steps (prefill, then greedy decoding), and every rank's logits must match the golden outputs
// of its own prompt within the fp32 tolerance (1e-3), in both MoE modes; a replica with no work runs an
// empty batch without disturbing the other.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SingleRankCommunicator } from '../../src/distributed/communicator.js';
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
const DP = 2;

const layouts: [string, number, Pick<ParallelPlan, 'expertParallel' | 'moeComm'>][] = [
  ['-dp 2 (experts split by features over 2 ranks)', 1, { expertParallel: false, moeComm: 'allgather' }],
  ['-dp 2 --enable-expert-parallel, moe_comm allgather', 1, { expertParallel: true, moeComm: 'allgather' }],
  ['-dp 2 --enable-expert-parallel, moe_comm alltoall', 1, { expertParallel: true, moeComm: 'alltoall' }],
  [
    '-dp 2 -tp 2 --enable-expert-parallel, moe_comm alltoall',
    2,
    { expertParallel: true, moeComm: 'alltoall' },
  ],
  ['-dp 2 -tp 2, moe_comm allgather', 2, { expertParallel: false, moeComm: 'allgather' }],
];

/** One sequence's batch of `ids` starting at position `start`, logits for every token. */
function batchOf(ids: readonly number[], start: number, blockTable: Int32Array): ForwardBatch {
  const L = ids.length;
  const slot = (pos: number) => blockTable[Math.floor(pos / BLOCK)]! * BLOCK + (pos % BLOCK);
  return {
    numTokens: L,
    tokenIds: Int32Array.from(ids),
    positions: Int32Array.from({ length: L }, (_, i) => start + i),
    slotMapping: Int32Array.from({ length: L }, (_, i) => slot(start + i)),
    seqs: L > 0 ? [{ queryStart: 0, queryLen: L, blockTable }] : [],
    logitsIndices: Int32Array.from({ length: L }, (_, i) => i),
  };
}

for (const fixture of ['v2-lite-tiny', 'v2-tiny']) {
  for (const [name, tp, layout] of layouts) {
    describe(`${fixture} with ${name}`, () => {
      const dir = fixtureDir(fixture);
      const golden = loadGolden(fixture);
      const config = loadDeepseekConfig(dir);
      const kernels = new ReferenceKernels();
      const world = createLocalGroup(DP * tp);
      const tpGroups = Array.from({ length: DP }, () =>
        tp === 1 ? [new SingleRankCommunicator()] : createLocalGroup(tp),
      );
      const source = openSafetensors(dir);
      // Global rank g: tensor-parallel rank g % tp of replica ⌊g / tp⌋.
      const models = world.map(
        (moeCommunicator, g) =>
          new DeepseekForCausalLM(config, {
            kernels,
            source,
            weightDType: 'bf16',
            communicator: tpGroups[Math.floor(g / tp)]![g % tp]!,
            moeCommunicator,
            plan: {
              rank: g % tp,
              size: tp,
              ...layout,
              dataParallelRank: Math.floor(g / tp),
              dataParallelSize: DP,
            },
          }),
      );
      source.close();
      const V = config.vocabSize;
      const newCaches = () => models.map(() => MlaKvCache.forModel(kernels, config, NUM_BLOCKS, BLOCK));
      const blockTable = Int32Array.from({ length: NUM_BLOCKS }, (_, i) => NUM_BLOCKS - 1 - i);
      /** Runs replica r's batch on each of its ranks; returns every rank's logits. */
      const step = (caches: MlaKvCache[], batches: readonly ForwardBatch[]) =>
        Promise.all(models.map((m, g) => m.forward(batches[Math.floor(g / tp)]!, caches[g]!)));

      const prompts = golden.prompts.filter((x) => x.name !== 'p150_text');
      prompts.forEach((a, i) => {
        const b = prompts[(i + 1) % prompts.length]!;
        test(`replica 0 runs ${a.name} while replica 1 runs ${b.name}: both match the reference`, async () => {
          const caches = newCaches();
          const prefill = await step(caches, [batchOf(a.ids, 0, blockTable), batchOf(b.ids, 0, blockTable)]);
          prefill.forEach((logits, g) => {
            const p = g < tp ? a : b;
            assertPrefillMatchesGolden(logits, p, V, TOL, `rank ${g} (${p.name})`);
          });
          // Greedy decoding of both prompts in the same steps.
          const ps = [a, b];
          const next = ps.map((p, r) => argmax(prefill[r * tp]!.subarray((p.ids.length - 1) * V)));
          const generated: number[][] = [[], []];
          for (let s = 0; s < a.greedy.ids.length; s++) {
            ps.forEach((_, r) => generated[r]!.push(next[r]!));
            const out = await step(
              caches,
              ps.map((p, r) => batchOf([next[r]!], p.ids.length + s, blockTable)),
            );
            out.forEach((logits, g) => {
              const pick = argmax(logits);
              const r = Math.floor(g / tp);
              if (g % tp === 0) next[r] = pick;
              else assert.equal(pick, next[r], `ranks of replica ${r} disagree at step ${s}`);
            });
          }
          assert.deepEqual(generated[0], a.greedy.ids, `${a.name} on replica 0`);
          assert.deepEqual(generated[1], b.greedy.ids, `${b.name} on replica 1`);
        });
      });

      test('a replica without work runs an empty batch; the other still matches the reference', async () => {
        const caches = newCaches();
        const p = prompts[2]!;
        const out = await step(caches, [batchOf([], 0, blockTable), batchOf(p.ids, 0, blockTable)]);
        for (let g = 0; g < DP * tp; g++) {
          if (g < tp) assert.equal(out[g]!.length, 0, 'the idle replica has no logits');
          else assertPrefillMatchesGolden(out[g]!, p, V, TOL, `rank ${g}`);
        }
      });
    });
  }
}
