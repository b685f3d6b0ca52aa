// The golden suite for bf16 compute (`--dtype bfloat16` on the oneDNN platform: activations rounded to
// bf16 into every matmul, float32 accumulation), held to the golden README's reduced-precision tolerance
// rather than float32's 1e-3: per prompt, over the prompt's positions and, teacher-forced, over the
// reference's 16 greedy steps (prompt + golden greedy ids in one prefill): mean |Δlogit| ≤ 0.15, argmax
// agreement ≥ 0.9, top-5 set overlap ≥ 0.8. bf16 rounding may flip near-tie expert choices, so routing is
// not compared. The same kernel set must also really compute in bf16: its logits leave float32's 1e-3.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { loadAddon } from '../dist/addon.js';
import { createOnednnPlatform } from '../dist/index.js';
import {
  argmax,
  DeepseekForCausalLM,
  fixtureDir,
  type Kernels,
  loadDeepseekConfig,
  loadGolden,
  MlaKvCache,
  openSafetensors,
  openSafetensorsFile,
} from './duet-test-deps.js';
import { skipReason } from './onednn-available.js';

/** The golden README's reduced-precision tolerances (bf16 or int8 activations), per prompt. */
const MEAN_ABS_TOL = 0.15;
const MIN_ARGMAX_AGREEMENT = 0.9;
const MIN_TOP5_OVERLAP = 0.8;
/** Float32 compute's tolerance: bf16 compute that stays within it would not be computing in bf16. */
const F32_TOL = 1e-3;
const BLOCK = 16;
const NUM_BLOCKS = 24;

async function bf16Kernels(): Promise<Kernels> {
  const load = loadAddon();
  if (!('addon' in load)) throw new Error(load.reason);
  return createOnednnPlatform(load.addon).createKernels({ numThreads: 2, computeDType: 'bfloat16' });
}

function top5(row: Float32Array): Set<number> {
  const ids = Array.from(row.keys()).sort((a, b) => row[b]! - row[a]!);
  return new Set(ids.slice(0, 5));
}

interface Agreement {
  meanAbs: number;
  maxAbs: number;
  argmax: number;
  top5: number;
}

/** How `got` rows agree with `want` rows ([rows, V] each). */
function agreement(got: Float32Array, want: Float32Array, V: number): Agreement {
  const rows = want.length / V;
  let sum = 0;
  let max = 0;
  let same = 0;
  let overlap = 0;
  for (let r = 0; r < rows; r++) {
    const g = got.subarray(r * V, (r + 1) * V);
    const w = want.subarray(r * V, (r + 1) * V);
    for (let i = 0; i < V; i++) {
      const d = Math.abs(g[i]! - w[i]!);
      sum += d;
      max = Math.max(max, d);
    }
    if (argmax(g) === argmax(w)) same++;
    const wt = top5(w);
    overlap += [...top5(g)].filter((id) => wt.has(id)).length / 5;
  }
  return { meanAbs: sum / (rows * V), maxAbs: max, argmax: same / rows, top5: overlap / rows };
}

function assertWithin(a: Agreement, who: string): void {
  const figures = `mean |Δ| ${a.meanAbs.toFixed(4)}, argmax ${a.argmax.toFixed(3)}, top-5 ${a.top5.toFixed(3)}`;
  assert.ok(a.meanAbs <= MEAN_ABS_TOL, `${who}: ${figures}; mean |Δlogit| must be ≤ ${MEAN_ABS_TOL}`);
  assert.ok(a.argmax >= MIN_ARGMAX_AGREEMENT, `${who}: ${figures}; argmax agreement must be ≥ 0.9`);
  assert.ok(a.top5 >= MIN_TOP5_OVERLAP, `${who}: ${figures}; top-5 overlap must be ≥ 0.8`);
}

for (const fixture of ['v2-lite-tiny', 'v2-tiny']) {
  describe(`${fixture} on the onednn platform with bf16 compute`, { skip: skipReason() }, async () => {
    const dir = fixtureDir(fixture);
    const golden = loadGolden(fixture);
    const config = loadDeepseekConfig(dir);
    const kernels = await bf16Kernels();
    const source = openSafetensors(dir);
    const model = new DeepseekForCausalLM(config, { kernels, source, weightDType: 'bf16' });
    source.close();
    const tensors = openSafetensorsFile(join(dir, 'golden_tensors.safetensors'));
    after(() => {
      tensors.close();
      return kernels.dispose();
    });
    const V = config.vocabSize;
    let maxAbsSeen = 0;

    for (const p of golden.prompts) {
      test(`${p.name}: prompt and teacher-forced greedy logits within the reduced-precision tolerance`, async () => {
        const L = p.ids.length;
        const steps = p.greedy.ids.length;
        // The prompt, then the reference's greedy tokens but the last: row L - 1 + s predicts greedy step s.
        const ids = [...p.ids, ...p.greedy.ids.slice(0, steps - 1)];
        const T = ids.length;
        const cache = MlaKvCache.forModel(kernels, config, NUM_BLOCKS, BLOCK);
        const blockTable = Int32Array.from({ length: NUM_BLOCKS }, (_, i) => i);
        const logits = await model.forward(
          {
            numTokens: T,
            tokenIds: Int32Array.from(ids),
            positions: Int32Array.from({ length: T }, (_, i) => i),
            slotMapping: Int32Array.from({ length: T }, (_, i) => i),
            seqs: [{ queryStart: 0, queryLen: T, blockTable }],
            logitsIndices: Int32Array.from({ length: T }, (_, i) => i),
          },
          cache,
        );
        const wantPrompt = tensors.read(`${p.name}.logits`, [L, V]).data as Float32Array;
        const wantGreedy = tensors.read(`${p.name}.greedy_step_logits`, [steps, V]).data as Float32Array;
        const prompt = agreement(logits.subarray(0, L * V), wantPrompt, V);
        const greedy = agreement(logits.subarray((L - 1) * V, (L - 1 + steps) * V), wantGreedy, V);
        console.log(
          `${fixture} ${p.name} bf16: prompt mean |Δ| ${prompt.meanAbs.toFixed(4)} argmax ${prompt.argmax.toFixed(3)} ` +
            `top-5 ${prompt.top5.toFixed(3)}; greedy mean |Δ| ${greedy.meanAbs.toFixed(4)} ` +
            `argmax ${greedy.argmax.toFixed(3)} top-5 ${greedy.top5.toFixed(3)}`,
        );
        assertWithin(prompt, `${p.name} prompt`);
        assertWithin(greedy, `${p.name} teacher-forced greedy`);
        maxAbsSeen = Math.max(maxAbsSeen, prompt.maxAbs, greedy.maxAbs);
      });
    }

    test('the kernel set computes in bf16 (its logits are not float32-grade)', () => {
      assert.ok(maxAbsSeen > F32_TOL, `max |Δlogit| ${maxAbsSeen} is within float32's ${F32_TOL}`);
    });
  });
}
