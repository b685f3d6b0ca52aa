// SmoothQuant for DeepSeek checkpoints (see src/loader/w8a8/quantize-smoothquant.ts for the transform):
// which norms feed which int8 linear layers, and the calibration of each norm's per-channel activation
// maximum by running the float model on calibration prompts.
//
// The groups, per decoder layer (a norm must directly precede its consumers for the fold to be exact):
// - input_layernorm → q_proj (or q_a_proj) and kv_a_proj_with_mqa;
// - q_a_layernorm → q_b_proj (models with a query LoRA);
// - post_attention_layernorm → the dense MLP's gate_proj / up_proj, or the shared experts' and every
//   routed expert's gate_proj / up_proj, with the router (mlp.gate, float) scaled alongside;
// and after the last layer, the final norm → lm_head (an int8 head only: a float one gains nothing).
// kv_a_layernorm feeds kv_b_proj, which Duet keeps float (absorbed into MLA), so it is left alone;
// o_proj and down_proj have no norm before them.

import type { DeepseekConfig } from '../config/model-config.js';
import type { Kernels, WeightDType } from '../kernels/kernels.js';
import type { SmoothingGroup } from '../loader/w8a8/quantize-smoothquant.js';
import type { WeightSource } from '../loader/weight-source.js';
import { DeepseekForCausalLM } from './deepseek.js';
import { deepseekTensorSpecs } from './deepseek-weights.js';
import { prefillPrompt } from './prefill-prompt.js';

/** The smoothing groups of `config`'s checkpoint (names as in `deepseekTensorSpecs`). */
export function deepseekSmoothingGroups(config: DeepseekConfig): SmoothingGroup[] {
  const names = deepseekTensorSpecs(config).map((s) => s.name);
  const groups: SmoothingGroup[] = [];
  for (let i = 0; i < config.numHiddenLayers; i++) {
    const p = `model.layers.${i}.`;
    const inLayer = (re: RegExp) => names.filter((n) => n.startsWith(p) && re.test(n.slice(p.length)));
    groups.push({
      norm: `${p}input_layernorm.weight`,
      int8: inLayer(/^self_attn\.(q_proj|q_a_proj|kv_a_proj_with_mqa)\.weight$/),
      float: [],
    });
    if (config.qLoraRank !== null) {
      groups.push({
        norm: `${p}self_attn.q_a_layernorm.weight`,
        int8: inLayer(/^self_attn\.q_b_proj\.weight$/),
        float: [],
      });
    }
    groups.push({
      norm: `${p}post_attention_layernorm.weight`,
      int8: inLayer(/^mlp\.((shared_experts|experts\.\d+)\.)?(gate_proj|up_proj)\.weight$/),
      float: inLayer(/^mlp\.gate\.weight$/),
    });
  }
  // A tied head is the embedding table, whose columns cannot be scaled without changing the residual stream.
  if (names.includes('lm_head.weight')) {
    groups.push({ norm: 'model.norm.weight', int8: ['lm_head.weight'], float: [] });
  }
  return groups;
}

/**
 * max|X[:, c]| of each group norm's output over every token of `prompts`, run one by one through the float
 * model of `source` (linear weights kept as `weightDType`, float32 by default; bf16 is exact for a bf16
 * checkpoint and takes half the memory). The norms are recognised by their weight arrays: `source` hands
 * them to the model as fresh float32 arrays that the model keeps, and the kernels' `rmsNorm` is watched.
 */
export async function calibrateNormMaxima(
  config: DeepseekConfig,
  kernels: Kernels,
  source: WeightSource,
  groups: readonly SmoothingGroup[],
  prompts: readonly (readonly number[])[],
  weightDType: WeightDType = 'f32',
): Promise<Map<string, Float32Array>> {
  const normNames = new Set(groups.map((g) => g.norm));
  const nameOf = new Map<Float32Array, string>();
  const watched: WeightSource = {
    names: () => source.names(),
    info: (n) => source.info(n),
    has: (n) => source.has(n),
    readBlock: (...args) => source.readBlock(...args),
    close: () => source.close(),
    read(name, expectedShape) {
      const raw = source.read(name, expectedShape);
      if (!normNames.has(name)) return raw;
      const data = new Float32Array(raw.data.length);
      if (raw.dtype === 'f32') data.set(raw.data);
      else new Uint32Array(data.buffer).set(Array.from(raw.data, (b) => b << 16));
      nameOf.set(data, name);
      return { dtype: 'f32', data };
    },
  };
  const maxima = new Map<string, Float32Array>();
  const observing = new Proxy(kernels, {
    get(target, prop) {
      if (prop === 'rmsNorm') {
        return (
          out: Float32Array,
          x: Float32Array,
          weight: Float32Array,
          m: number,
          n: number,
          eps: number,
        ) => {
          target.rmsNorm(out, x, weight, m, n, eps);
          const name = nameOf.get(weight);
          if (name === undefined) return;
          const max = maxima.get(name) ?? new Float32Array(n);
          for (let i = 0; i < m; i++) {
            for (let c = 0; c < n; c++) max[c] = Math.max(max[c]!, Math.abs(out[i * n + c]!));
          }
          maxima.set(name, max);
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const model = new DeepseekForCausalLM(config, { kernels: observing, source: watched, weightDType });
  // Every position: the final norm's rows are those the LM head is run on.
  for (const ids of prompts) {
    await prefillPrompt(config, kernels, model, ids);
  }
  for (const g of groups) {
    if (!maxima.has(g.norm)) throw new Error(`calibrateNormMaxima: ${g.norm} was never run`);
  }
  return maxima;
}
