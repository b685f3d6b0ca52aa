// The single source of truth for the checkpoint tensors of a DeepSeek model (V2, V2-Lite, V3): their
// Hugging Face names and shapes as implied by the config, and which tensors a real checkpoint may carry
// that Duet does not use. Models derive their tensor lists from here, and hand them to the loader as a
// `CheckpointLayout` (deepseekCheckpointLayout) for checking checkpoints and generating dummy weights.

import { type DeepseekConfig, isMoeLayer } from '../config/model-config.js';
import {
  type CheckpointLayout,
  type LinearRole,
  numElements,
  type TensorSpec,
} from '../loader/tensor-specs.js';

export { numElements, type TensorSpec };

/** The name prefix of decoder layer `i`, e.g. `model.layers.3.`. */
export function layerPrefix(i: number): string {
  return `model.layers.${i}.`;
}

/** The three projections of a SwiGLU MLP with `inter` intermediate features, under `prefix`. */
function mlpSpecs(prefix: string, hidden: number, inter: number): TensorSpec[] {
  return [
    { name: `${prefix}gate_proj.weight`, shape: [inter, hidden] },
    { name: `${prefix}up_proj.weight`, shape: [inter, hidden] },
    { name: `${prefix}down_proj.weight`, shape: [hidden, inter] },
  ];
}

/** The MLA attention tensors of one layer. */
function attentionSpecs(c: DeepseekConfig, prefix: string): TensorSpec[] {
  const h = c.hiddenSize;
  const heads = c.numAttentionHeads;
  const qHeadDim = c.qkNopeHeadDim + c.qkRopeHeadDim;
  const p = `${prefix}self_attn.`;
  const q: TensorSpec[] =
    c.qLoraRank === null
      ? [{ name: `${p}q_proj.weight`, shape: [heads * qHeadDim, h] }]
      : [
          { name: `${p}q_a_proj.weight`, shape: [c.qLoraRank, h] },
          { name: `${p}q_a_layernorm.weight`, shape: [c.qLoraRank] },
          { name: `${p}q_b_proj.weight`, shape: [heads * qHeadDim, c.qLoraRank] },
        ];
  return [
    ...q,
    // Latent kv (kvLoraRank) and the shared rope key (qkRopeHeadDim) come from one projection.
    { name: `${p}kv_a_proj_with_mqa.weight`, shape: [c.kvLoraRank + c.qkRopeHeadDim, h] },
    { name: `${p}kv_a_layernorm.weight`, shape: [c.kvLoraRank] },
    { name: `${p}kv_b_proj.weight`, shape: [heads * (c.qkNopeHeadDim + c.vHeadDim), c.kvLoraRank] },
    { name: `${p}o_proj.weight`, shape: [h, heads * c.vHeadDim] },
  ];
}

/** The feed-forward tensors of layer `i`: a dense MLP, or the router, routed and shared experts. */
function feedForwardSpecs(c: DeepseekConfig, i: number, prefix: string): TensorSpec[] {
  const h = c.hiddenSize;
  const p = `${prefix}mlp.`;
  if (!isMoeLayer(c, i) || c.nRoutedExperts === null) return mlpSpecs(p, h, c.intermediateSize);
  const e = c.nRoutedExperts;
  const out: TensorSpec[] = [{ name: `${p}gate.weight`, shape: [e, h] }];
  if (c.topkMethod === 'noaux_tc') out.push({ name: `${p}gate.e_score_correction_bias`, shape: [e] });
  for (let j = 0; j < e; j++) out.push(...mlpSpecs(`${p}experts.${j}.`, h, c.moeIntermediateSize));
  if (c.nSharedExperts > 0) {
    out.push(...mlpSpecs(`${p}shared_experts.`, h, c.moeIntermediateSize * c.nSharedExperts));
  }
  return out;
}

/** The tensors of decoder layer `i`. */
export function deepseekLayerTensorSpecs(config: DeepseekConfig, i: number): TensorSpec[] {
  const prefix = layerPrefix(i);
  const h = config.hiddenSize;
  return [
    { name: `${prefix}input_layernorm.weight`, shape: [h] },
    ...attentionSpecs(config, prefix),
    { name: `${prefix}post_attention_layernorm.weight`, shape: [h] },
    ...feedForwardSpecs(config, i, prefix),
  ];
}

/**
 * Every tensor the model needs, in model order: embeddings, each decoder layer, final norm, and
 * `lm_head` unless the embeddings are tied.
 */
export function deepseekTensorSpecs(config: DeepseekConfig): TensorSpec[] {
  const v = config.vocabSize;
  const h = config.hiddenSize;
  const out: TensorSpec[] = [{ name: 'model.embed_tokens.weight', shape: [v, h] }];
  for (let i = 0; i < config.numHiddenLayers; i++) out.push(...deepseekLayerTensorSpecs(config, i));
  out.push({ name: 'model.norm.weight', shape: [h] });
  if (!config.tieWordEmbeddings) out.push({ name: 'lm_head.weight', shape: [v, h] });
  return out;
}

/** The number of parameters the model loads (every tensor of `deepseekTensorSpecs`). */
export function numParameters(config: DeepseekConfig): number {
  let n = 0;
  for (const s of deepseekTensorSpecs(config)) n += numElements(s.shape);
  return n;
}

const LAYER_INDEX = /^model\.layers\.(\d+)\./;

/**
 * Whether a tensor that a real checkpoint carries is one Duet does not use and skips: layers at or beyond
 * `numHiddenLayers` (DeepSeek-V3's multi-token-prediction layer 61, or layers cut away by
 * `--hf-overrides`), rotary `inv_freq` buffers, and `lm_head.weight` when the embeddings are tied.
 */
export function isIgnoredCheckpointTensor(name: string, config: DeepseekConfig): boolean {
  if (name.endsWith('rotary_emb.inv_freq')) return true;
  if (name === 'lm_head.weight' && config.tieWordEmbeddings) return true;
  const m = LAYER_INDEX.exec(name);
  return m !== null && Number(m[1]) >= config.numHiddenLayers;
}

/** DeepSeek's checkpoint as the loader sees it: `deepseekTensorSpecs` and `isIgnoredCheckpointTensor`. */
export function deepseekCheckpointLayout(config: DeepseekConfig): CheckpointLayout {
  return {
    tensors: deepseekTensorSpecs(config),
    isIgnored: (name) => isIgnoredCheckpointTensor(name, config),
    linearRole: deepseekLinearRole,
  };
}

/**
 * What DeepSeek does with each linear weight under W8A8 (as vLLM: the router is an unquantized layer; the
 * LM head is int8 only when the checkpoint quantizes it, as llama.cpp's Q8_0 does, and stays float when a
 * float checkpoint is quantized while loading; MLA's kv_b_proj is absorbed into per-head attention
 * matrices, which run in float, so an int8 kv_b_proj is dequantized at load). Every other projection runs
 * on the int8 kernels: q_proj / q_a_proj / q_b_proj, kv_a_proj_with_mqa, o_proj, and gate/up/down of dense
 * MLPs, routed and shared experts. null: not a linear weight (embeddings and norms stay float).
 */
export function deepseekLinearRole(name: string): LinearRole {
  if (name === 'lm_head.weight') return 'int8-from-checkpoint';
  if (name.endsWith('.mlp.gate.weight')) return 'float';
  if (name.endsWith('.kv_b_proj.weight')) return 'dequantize';
  if (/_proj(_with_mqa)?\.weight$/.test(name)) return 'int8';
  return null;
}
