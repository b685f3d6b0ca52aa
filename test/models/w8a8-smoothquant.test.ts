// SmoothQuant smoothing (src/loader/w8a8/quantize-smoothquant.ts, src/models/deepseek-smoothing.ts) on the
// golden tiny checkpoints copied into test/fixtures: the groups name the right tensors, the fold is an
// identity of the float model (logits within float32 rounding of the unsmoothed ones), and the smoothed
// W8A8 model's argmax agreement with the golden float reference is measured and floored.
//
// Measured (α 0.5, 8 calibration prompts of 64 random tokens, 291 golden positions each):
//   v2-lite-tiny: W8A8 0.9553 → smoothed 0.9588; v2-tiny: 0.9381 → 0.9519.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import type { DeepseekConfig } from '../../src/config/model-config.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { openSafetensors } from '../../src/loader/safetensors.js';
import { floatLinearSource, quantizingLinearSource } from '../../src/loader/w8a8/linear-source.js';
import {
  groupWeightMaxima,
  smoothedWeightSource,
  smoothingFactors,
} from '../../src/loader/w8a8/quantize-smoothquant.js';
import type { WeightSource } from '../../src/loader/weight-source.js';
import { DeepseekForCausalLM } from '../../src/models/deepseek.js';
import { calibrateNormMaxima, deepseekSmoothingGroups } from '../../src/models/deepseek-smoothing.js';
import { deepseekLinearRole } from '../../src/models/deepseek-weights.js';
import { createWasmKernels } from '../../src/platforms/cpu/wasm-kernels.js';
import { argmax, fixtureDir, loadGolden } from '../helpers/golden.js';
import { prefillAll } from '../helpers/prefill.js';

const kernels = await createWasmKernels({ numThreads: 2 });
after(() => kernels.dispose());

/** Seeded random token ids (calibration prompts, unrelated to the golden prompts). */
function randomIds(seed: number, n: number, vocab: number): number[] {
  let x = (seed * 2654435761 + 1) >>> 0;
  return Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % vocab;
  });
}

const ALPHA = 0.5;

/** Measured W8A8 agreement floors with smoothing (see the header; the int8 path is exact, so these repeat). */
const SMOOTHED_FLOOR: Record<string, number> = { 'v2-lite-tiny': 0.958, 'v2-tiny': 0.95 };

for (const name of ['v2-lite-tiny', 'v2-tiny'] as const) {
  describe(`SmoothQuant on ${name}`, () => {
    const dir = fixtureDir(name);
    const config = loadDeepseekConfig(dir);
    const golden = loadGolden(name);
    const V = config.vocabSize;
    const groups = deepseekSmoothingGroups(config);

    const model = (source: WeightSource, quantized: boolean, cfg: DeepseekConfig = config) =>
      new DeepseekForCausalLM(cfg, {
        kernels,
        source,
        linears: quantized ? quantizingLinearSource(source, deepseekLinearRole) : floatLinearSource(source),
        weightDType: 'f32',
      });
    const agreement = (logits: readonly Float32Array[]) => {
      let same = 0;
      let total = 0;
      golden.prompts.forEach((p, i) => {
        for (let t = 0; t < p.ids.length; t++) {
          if (argmax(logits[i]!.subarray(t * V, (t + 1) * V)) === p.argmax[t]) same++;
          total++;
        }
      });
      return same / total;
    };
    /** The checkpoint smoothed with factors calibrated on 8 random prompts, and the factors. */
    const smoothed = async () => {
      const source = openSafetensors(dir);
      const calib = Array.from({ length: 8 }, (_, i) => randomIds(5000 + i, 64, V));
      const act = await calibrateNormMaxima(config, kernels, source, groups, calib);
      const weightMax = groupWeightMaxima(source, groups);
      const factors = new Map(
        groups.map((g) => [g.norm, smoothingFactors(act.get(g.norm)!, weightMax.get(g.norm)!, ALPHA)]),
      );
      return { source: smoothedWeightSource(source, groups, factors), factors };
    };

    test('the groups pair each norm with the linear layers that read it', () => {
      const layer = config.numHiddenLayers - 1; // a MoE layer in both models
      const p = `model.layers.${layer}.`;
      const byNorm = new Map(groups.map((g) => [g.norm, g]));
      const attn = byNorm.get(`${p}input_layernorm.weight`)!;
      const q = config.qLoraRank === null ? 'q_proj' : 'q_a_proj';
      assert.deepEqual(attn.int8, [`${p}self_attn.${q}.weight`, `${p}self_attn.kv_a_proj_with_mqa.weight`]);
      assert.equal(byNorm.has(`${p}self_attn.q_a_layernorm.weight`), config.qLoraRank !== null);
      const ffn = byNorm.get(`${p}post_attention_layernorm.weight`)!;
      // gate and up of every routed expert and of the shared experts; the router scaled in float.
      assert.equal(ffn.int8.length, 2 * (config.nRoutedExperts! + 1));
      assert.ok(ffn.int8.every((n) => /\.(gate|up)_proj\.weight$/.test(n)));
      assert.deepEqual(ffn.float, [`${p}mlp.gate.weight`]);
      // kv_b_proj (float), o_proj and down_proj are never smoothed.
      assert.ok(groups.every((g) => g.int8.every((n) => !/(kv_b|o|down)_proj/.test(n))));
    });

    test('smoothing leaves the float model unchanged (within float32 rounding)', async () => {
      const plain = openSafetensors(dir);
      const ref = await prefillAll(config, kernels, model(plain, false), golden.prompts);
      const { source, factors } = await smoothed();
      // The factors really move channels against each other (a common scale would change nothing that
      // per-channel / per-token rounding sees): measured spans 1.77x (v2-lite-tiny) and 2.37x (v2-tiny).
      const all = [...factors.values()].flatMap((s) => Array.from(s));
      const span = Math.max(...all) / Math.min(...all);
      assert.ok(span > 1.5, `smoothing factors span ${span}x, expected over 1.5x`);
      const logits = await prefillAll(config, kernels, model(source, false), golden.prompts);
      // g / s and W · s each round once in float32 (relative 6e-8); through the layers this moved the
      // logits (magnitudes up to ~1) by at most 1.4e-5 in measurement. Tolerance: 1e-4 absolute.
      let maxDiff = 0;
      logits.forEach((l, i) => {
        for (let t = 0; t < l.length; t++) maxDiff = Math.max(maxDiff, Math.abs(l[t]! - ref[i]![t]!));
      });
      assert.ok(maxDiff <= 1e-4, `smoothed float logits differ by ${maxDiff}`);
      assert.equal(agreement(logits), agreement(ref));
    });

    test(`smoothed W8A8 (α ${ALPHA}) keeps argmax at >= ${SMOOTHED_FLOOR[name]} of positions`, async () => {
      const plain = agreement(
        await prefillAll(config, kernels, model(openSafetensors(dir), true), golden.prompts),
      );
      const { source } = await smoothed();
      const a = agreement(await prefillAll(config, kernels, model(source, true), golden.prompts));
      console.log(`# ${name}: W8A8 argmax agreement ${plain.toFixed(4)}, with SmoothQuant ${a.toFixed(4)}`);
      assert.ok(a >= SMOOTHED_FLOOR[name]!, `smoothed W8A8 argmax agreement ${a}`);
      assert.ok(a >= plain, `smoothed ${a} below plain W8A8 ${plain}`);
    });
  });
}
