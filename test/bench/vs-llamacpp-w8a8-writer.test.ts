// The W8A8 checkpoint writer of bench:vs-llamacpp (bench/vs-llamacpp-weights.ts) with its SmoothQuant
// recipe, on a tiny config (the golden v2-tiny's, which has a query LoRA and MoE layers) with seeded dummy
// weights: the folder Duet loads gives exactly the logits of smoothing and quantizing the BF16 folder in
// memory, stores the smoothed norms and routers in F32, and records its recipe in recipe.yaml.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { writeHfFolder, writeW8A8Folder } from '../../bench/vs-llamacpp-weights.js';
import { loadDeepseekConfig, parseDeepseekConfig } from '../../src/loader/hf-config.js';
import { openModelWeights } from '../../src/loader/model-folder.js';
import { openSafetensors } from '../../src/loader/safetensors.js';
import { quantizingLinearSource } from '../../src/loader/w8a8/linear-source.js';
import {
  groupWeightMaxima,
  smoothedWeightSource,
  smoothingFactors,
} from '../../src/loader/w8a8/quantize-smoothquant.js';
import { DeepseekForCausalLM } from '../../src/models/deepseek.js';
import { calibrateNormMaxima, deepseekSmoothingGroups } from '../../src/models/deepseek-smoothing.js';
import { deepseekCheckpointLayout, deepseekLinearRole } from '../../src/models/deepseek-weights.js';
import { createWasmKernels } from '../../src/platforms/cpu/wasm-kernels.js';
import { fixtureDir } from '../helpers/golden.js';
import { prefillAll } from '../helpers/prefill.js';

const kernels = await createWasmKernels({ numThreads: 2 });
const dir = mkdtempSync(join(tmpdir(), 'duet-w8a8-writer-'));
after(() => {
  kernels.dispose();
  rmSync(dir, { recursive: true, force: true });
});

test('a SmoothQuant W8A8 folder holds exactly the smoothed, quantized weights and names its recipe', async () => {
  const configJson = JSON.parse(readFileSync(join(fixtureDir('v2-tiny'), 'config.json'), 'utf8')) as Record<
    string,
    unknown
  >;
  const config = parseDeepseekConfig(configJson);
  const hf = join(dir, 'hf');
  const w8a8 = join(dir, 'hf-w8a8-sq');
  writeHfFolder(hf, configJson, config, 3);
  const groups = deepseekSmoothingGroups(config);
  const calib = [Array.from({ length: 32 }, (_, i) => (i * 37 + 5) % config.vocabSize)];
  const normMaxima = await calibrateNormMaxima(config, kernels, openSafetensors(hf), groups, calib);
  const alpha = 0.5;
  writeW8A8Folder(w8a8, configJson, config, 3, {
    kind: 'smoothquant',
    alpha,
    calibration: 'one prompt of 32 tokens',
    normMaxima,
  });

  const recipe = readFileSync(join(w8a8, 'recipe.yaml'), 'utf8');
  assert.match(recipe, /SmoothQuantModifier:\n\s+smoothing_strength: 0\.5\n/);
  assert.match(recipe, /"model\.layers\.\*\.post_attention_layernorm"/);
  assert.match(recipe, /QuantizationModifier:/);
  const stored = openSafetensors(w8a8);
  const p = `model.layers.${config.numHiddenLayers - 1}.`;
  assert.equal(stored.info(`${p}post_attention_layernorm.weight`).dtype, 'F32');
  assert.equal(stored.info(`${p}mlp.gate.weight`).dtype, 'F32');
  assert.equal(stored.info(`${p}self_attn.q_b_proj.weight`).dtype, 'I8');
  assert.equal(stored.info(`${p}self_attn.kv_a_layernorm.weight`).dtype, 'BF16'); // not smoothed
  stored.close();

  // The same recipe in memory over the BF16 folder (the int8 LM head as the writer stores it).
  const source = openSafetensors(hf);
  const weightMax = groupWeightMaxima(source, groups);
  const factors = new Map(
    groups.map((g) => [g.norm, smoothingFactors(normMaxima.get(g.norm)!, weightMax.get(g.norm)!, alpha)]),
  );
  const smoothed = smoothedWeightSource(source, groups, factors);
  const roleWithHead = (name: string) =>
    name === 'lm_head.weight' || deepseekLinearRole(name) === 'dequantize'
      ? 'int8'
      : deepseekLinearRole(name);
  const inMemory = new DeepseekForCausalLM(config, {
    kernels,
    source: smoothed,
    linears: quantizingLinearSource(smoothed, roleWithHead),
    weightDType: 'f32',
  });
  const cfg = loadDeepseekConfig(w8a8);
  const weights = openModelWeights(w8a8, cfg, deepseekCheckpointLayout(cfg), 'auto');
  const loaded = new DeepseekForCausalLM(cfg, {
    kernels,
    source: weights.source,
    linears: weights.linears,
    weightDType: 'f32',
  });
  const prompts = [{ ids: Array.from({ length: 24 }, (_, i) => (i * 11 + 3) % config.vocabSize) }];
  const [want] = await prefillAll(config, kernels, inMemory, prompts);
  const [got] = await prefillAll(cfg, kernels, loaded, prompts);
  assert.deepEqual(got, want);
});
