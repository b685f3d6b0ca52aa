// A DeepSeek V2/V3 model as a llama.cpp GGUF file (architecture `deepseek2`), from any `WeightSource` of
// Hugging Face tensors (a checkpoint or Duet's dummy weights), so llama.cpp runs exactly the weights Duet
// runs. What llama.cpp expects, learnt from its converter (convert_hf_to_gguf.py, DeepseekV2Model):
// - MLA as MQA with one kv head: head_count_kv = 1, key_length = kv_lora_rank + rope dim, value_length =
//   kv_lora_rank; the per-head sizes go to key_length_mla / value_length_mla.
// - kv_b_proj [heads · (nope + v), kv_lora] split per head into attn_k_b (the nope part, transposed:
//   ggml dims [nope, kv_lora, heads]) and attn_v_b (ggml dims [kv_lora, v, heads]).
// - Routed experts stacked per layer into one 3-D tensor each (ffn_{gate,up,down}_exps).
// - The V3 routing: expert_gating_func (sigmoid), the score-correction bias (exp_probs_b), the group
//   limit (expert_group_count / _used_count: llama.cpp scores a group by the sum of its top two, as
//   noaux_tc does), expert_weights_norm and _scale; leading_dense_block_count for first_k_dense_replace.
// - YaRN as llama.cpp's deepseek2 reads it: factor, original context, and the attention mscale through
//   yarn_log_multiplier (0.1 · mscale_all_dim; llama.cpp divides the 0.1 back out). llama.cpp fixes
//   beta_fast / beta_slow at 32 / 1 and mscale at mscale_all_dim (or 1): other values are refused, since
//   llama.cpp would silently run another model.
// - A tokenizer block (gguf-vocab.ts): the model's own byte-level BPE one when given, or a placeholder.
// Tensor types: F32, BF16 or Q8_0 for matrices; norms, biases and the router stay F32 (as the converter
// keeps them); a matrix whose rows are not a multiple of 32 falls back to F32 in a Q8_0 file.

import { type DeepseekConfig, isMoeLayer } from '../../src/config/model-config.js';
import type { RawWeight } from '../../src/kernels/kernels.js';
import type { WeightSource } from '../../src/loader/weight-source.js';
import { deepseekTensorSpecs } from '../../src/models/deepseek-weights.js';
import {
  type GgmlTypeName,
  type GgufTensorInfo,
  type GgufValue,
  Q8_0_BLOCK,
  Q8_0_BLOCK_BYTES,
  writeGguf,
} from './gguf-file.js';
import { placeholderVocab } from './gguf-vocab.js';
import { quantizeQ8_0 } from './q8-0.js';

/** The weight types of a written model: F32, BF16 or Q8_0 matrices. */
export type Deepseek2FileType = 'F32' | 'BF16' | 'Q8_0';

/** llama.cpp's general.file_type codes (llama_ftype) of the three. */
const FILE_TYPE_CODE: Record<Deepseek2FileType, number> = { F32: 0, BF16: 32, Q8_0: 7 };

/** A GGUF tensor and how to make its data from the Hugging Face tensors it comes from. */
interface PlannedTensor extends GgufTensorInfo {
  /** The float32 values in ggml order (dims[0] contiguous). */
  readonly values: (source: WeightSource) => Float32Array;
}

/** A whole tensor as float32 (bf16 bit patterns expanded exactly). */
function readF32(source: WeightSource, name: string): Float32Array {
  return toF32(source.read(name));
}

function toF32(w: RawWeight): Float32Array {
  if (w.dtype === 'f32') return w.data;
  const out = new Float32Array(w.data.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < w.data.length; i++) bits[i] = w.data[i]! << 16;
  return out;
}

/** A config llama.cpp's deepseek2 cannot run as Duet does; the message says which field and why. */
export class Deepseek2GgufError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'Deepseek2GgufError';
  }
}

/** Throws a Deepseek2GgufError where llama.cpp's deepseek2 would compute something else than `config`. */
export function checkLlamaCppCanRun(config: DeepseekConfig): void {
  const c = config;
  if (c.moeLayerFreq !== 1) {
    throw new Deepseek2GgufError(
      `llama.cpp's deepseek2 needs moe_layer_freq 1; this config has ${c.moeLayerFreq}`,
    );
  }
  if (c.nGroup > 1 && c.topkGroup < c.nGroup && c.topkMethod !== 'noaux_tc') {
    throw new Deepseek2GgufError(
      `llama.cpp's deepseek2 scores an expert group by the sum of its top two experts (noaux_tc); ` +
        `topk_method "${c.topkMethod}" with n_group ${c.nGroup} > topk_group ${c.topkGroup} scores it otherwise`,
    );
  }
  const r = c.ropeScaling;
  if (r === null) return;
  if (r.betaFast !== 32 || r.betaSlow !== 1) {
    throw new Deepseek2GgufError(
      `llama.cpp's deepseek2 runs YaRN with beta_fast 32 and beta_slow 1; this config has ` +
        `${r.betaFast} and ${r.betaSlow}`,
    );
  }
  if (r.mscaleAllDim <= 0 || r.mscale !== r.mscaleAllDim) {
    throw new Deepseek2GgufError(
      `llama.cpp's deepseek2 runs YaRN with mscale equal to mscale_all_dim (> 0); this config has mscale ` +
        `${r.mscale} and mscale_all_dim ${r.mscaleAllDim}`,
    );
  }
}

/**
 * The metadata of a `deepseek2` GGUF for `config`; the tokenizer block is `vocab` (gguf-vocab.ts), or a
 * placeholder vocabulary when none is given.
 */
export function deepseek2Metadata(
  config: DeepseekConfig,
  fileType: Deepseek2FileType,
  vocab?: ReadonlyMap<string, GgufValue>,
): Map<string, GgufValue> {
  const c = config;
  checkLlamaCppCanRun(c);
  const m = new Map<string, GgufValue>();
  const u32 = (key: string, value: number) => m.set(key, { type: 'u32', value });
  const f32 = (key: string, value: number) => m.set(key, { type: 'f32', value });
  const a = 'deepseek2';
  m.set('general.architecture', { type: 'string', value: a });
  m.set('general.name', { type: 'string', value: `duet-bench ${c.modelType} ${c.numHiddenLayers}L` });
  u32('general.file_type', FILE_TYPE_CODE[fileType]);
  u32('general.alignment', 32);
  u32(`${a}.block_count`, c.numHiddenLayers);
  u32(`${a}.context_length`, c.maxPositionEmbeddings);
  u32(`${a}.embedding_length`, c.hiddenSize);
  u32(`${a}.feed_forward_length`, c.intermediateSize);
  u32(`${a}.attention.head_count`, c.numAttentionHeads);
  u32(`${a}.attention.head_count_kv`, 1);
  f32(`${a}.rope.freq_base`, c.ropeTheta);
  f32(`${a}.attention.layer_norm_rms_epsilon`, c.rmsNormEps);
  u32(`${a}.leading_dense_block_count`, Math.min(c.firstKDenseReplace, c.numHiddenLayers));
  u32(`${a}.vocab_size`, c.vocabSize);
  // llama.cpp requires the key unless the model has 27 layers (its V2-Lite test); 0 means no q LoRA.
  u32(`${a}.attention.q_lora_rank`, c.qLoraRank ?? 0);
  u32(`${a}.attention.kv_lora_rank`, c.kvLoraRank);
  u32(`${a}.attention.key_length`, c.kvLoraRank + c.qkRopeHeadDim);
  u32(`${a}.attention.value_length`, c.kvLoraRank);
  u32(`${a}.attention.key_length_mla`, c.qkNopeHeadDim + c.qkRopeHeadDim);
  u32(`${a}.attention.value_length_mla`, c.vHeadDim);
  u32(`${a}.expert_feed_forward_length`, c.moeIntermediateSize);
  if (c.nRoutedExperts !== null) {
    u32(`${a}.expert_count`, c.nRoutedExperts);
    u32(`${a}.expert_used_count`, c.numExpertsPerTok);
  }
  u32(`${a}.expert_shared_count`, c.nSharedExperts);
  f32(`${a}.expert_weights_scale`, c.routedScalingFactor);
  m.set(`${a}.expert_weights_norm`, { type: 'bool', value: c.normTopkProb });
  // llama_expert_gating_func_type: 1 softmax, 2 sigmoid.
  u32(`${a}.expert_gating_func`, c.scoringFunc === 'sigmoid' ? 2 : 1);
  if (c.nGroup > 1) {
    u32(`${a}.expert_group_count`, c.nGroup);
    u32(`${a}.expert_group_used_count`, c.topkGroup);
  }
  u32(`${a}.rope.dimension_count`, c.qkRopeHeadDim);
  if (c.ropeScaling !== null) {
    const r = c.ropeScaling;
    m.set(`${a}.rope.scaling.type`, { type: 'string', value: 'yarn' });
    f32(`${a}.rope.scaling.factor`, r.factor);
    u32(`${a}.rope.scaling.original_context_length`, r.originalMaxPositionEmbeddings);
    f32(`${a}.rope.scaling.yarn_beta_fast`, r.betaFast);
    f32(`${a}.rope.scaling.yarn_beta_slow`, r.betaSlow);
    // As the converter writes it for deepseek2 (llama.cpp derives the attention mscale from it).
    f32(`${a}.rope.scaling.yarn_log_multiplier`, 0.1 * r.mscaleAllDim);
  }
  const vocabOptions = {
    vocabSize: c.vocabSize,
    bosTokenId: c.bosTokenId,
    eosTokenId: c.eosTokenIds[0] ?? null,
    addBos: false,
  };
  for (const [k, v] of vocab ?? placeholderVocab(vocabOptions)) m.set(k, v);
  return m;
}

/** The GGUF tensors of `config`, in llama.cpp's names and ggml dimension order, with their sources. */
export function deepseek2Tensors(config: DeepseekConfig, fileType: Deepseek2FileType): PlannedTensor[] {
  const c = config;
  checkLlamaCppCanRun(c);
  const matrixType = (dims: readonly number[]): GgmlTypeName =>
    fileType === 'Q8_0' && (dims[0] ?? 0) % Q8_0_BLOCK !== 0 ? 'F32' : fileType;
  const out: PlannedTensor[] = [];
  /** A tensor copied as it is: ggml dims are the HF shape reversed. */
  const copy = (gguf: string, hf: string, shape: readonly number[], kind: 'matrix' | 'f32') => {
    const dims = [...shape].reverse();
    out.push({
      name: gguf,
      dims,
      type: kind === 'f32' ? 'F32' : matrixType(dims),
      values: (s) => readF32(s, hf),
    });
  };
  const shapes = new Map(deepseekTensorSpecs(c).map((s) => [s.name, s.shape]));
  const shapeOf = (hf: string) => {
    const s = shapes.get(hf);
    if (s === undefined) throw new RangeError(`no tensor "${hf}" in this config`);
    return s;
  };
  const h = c.hiddenSize;
  copy('token_embd.weight', 'model.embed_tokens.weight', shapeOf('model.embed_tokens.weight'), 'matrix');
  for (let i = 0; i < c.numHiddenLayers; i++) {
    const p = `model.layers.${i}.`;
    const b = `blk.${i}.`;
    const m = (gguf: string, hf: string) => copy(b + gguf, p + hf, shapeOf(p + hf), 'matrix');
    const v = (gguf: string, hf: string) => copy(b + gguf, p + hf, shapeOf(p + hf), 'f32');
    v('attn_norm.weight', 'input_layernorm.weight');
    if (c.qLoraRank === null) m('attn_q.weight', 'self_attn.q_proj.weight');
    else {
      m('attn_q_a.weight', 'self_attn.q_a_proj.weight');
      v('attn_q_a_norm.weight', 'self_attn.q_a_layernorm.weight');
      m('attn_q_b.weight', 'self_attn.q_b_proj.weight');
    }
    m('attn_kv_a_mqa.weight', 'self_attn.kv_a_proj_with_mqa.weight');
    v('attn_kv_a_norm.weight', 'self_attn.kv_a_layernorm.weight');
    out.push(...splitKvB(c, b, `${p}self_attn.kv_b_proj.weight`, matrixType));
    m('attn_output.weight', 'self_attn.o_proj.weight');
    v('ffn_norm.weight', 'post_attention_layernorm.weight');
    if (!isMoeLayer(c, i) || c.nRoutedExperts === null) {
      m('ffn_gate.weight', 'mlp.gate_proj.weight');
      m('ffn_up.weight', 'mlp.up_proj.weight');
      m('ffn_down.weight', 'mlp.down_proj.weight');
      continue;
    }
    v('ffn_gate_inp.weight', 'mlp.gate.weight');
    if (c.topkMethod === 'noaux_tc') v('exp_probs_b.bias', 'mlp.gate.e_score_correction_bias');
    const e = c.nRoutedExperts;
    for (const [gguf, proj] of [
      ['ffn_gate_exps', 'gate_proj'],
      ['ffn_up_exps', 'up_proj'],
      ['ffn_down_exps', 'down_proj'],
    ] as const) {
      const one = shapeOf(`${p}mlp.experts.0.${proj}.weight`);
      const dims = [one[1]!, one[0]!, e];
      out.push({
        name: `${b}${gguf}.weight`,
        dims,
        type: matrixType(dims),
        values: (s) => {
          const size = one[0]! * one[1]!;
          const all = new Float32Array(size * e);
          for (let j = 0; j < e; j++) all.set(readF32(s, `${p}mlp.experts.${j}.${proj}.weight`), j * size);
          return all;
        },
      });
    }
    if (c.nSharedExperts > 0) {
      m('ffn_gate_shexp.weight', 'mlp.shared_experts.gate_proj.weight');
      m('ffn_up_shexp.weight', 'mlp.shared_experts.up_proj.weight');
      m('ffn_down_shexp.weight', 'mlp.shared_experts.down_proj.weight');
    }
  }
  copy('output_norm.weight', 'model.norm.weight', [h], 'f32');
  const head = c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight';
  copy('output.weight', head, shapeOf(head), 'matrix');
  return out;
}

/**
 * kv_b_proj [heads · (nope + v), kvLora] → attn_k_b (per head the nope rows, transposed: ggml dims
 * [nope, kvLora, heads]) and attn_v_b (per head the v rows as they are: ggml dims [kvLora, v, heads]).
 */
function splitKvB(
  c: DeepseekConfig,
  blk: string,
  hf: string,
  matrixType: (dims: readonly number[]) => GgmlTypeName,
): PlannedTensor[] {
  const heads = c.numAttentionHeads;
  const nope = c.qkNopeHeadDim;
  const vDim = c.vHeadDim;
  const r = c.kvLoraRank;
  const kDims = [nope, r, heads];
  const vDims = [r, vDim, heads];
  return [
    {
      name: `${blk}attn_k_b.weight`,
      dims: kDims,
      type: matrixType(kDims),
      values: (s) => {
        const kv = readF32(s, hf);
        const k = new Float32Array(heads * r * nope);
        for (let hd = 0; hd < heads; hd++) {
          const rows = hd * (nope + vDim);
          // k[hd][j][n] = kv[rows + n][j]
          for (let n = 0; n < nope; n++) {
            for (let j = 0; j < r; j++) k[(hd * r + j) * nope + n] = kv[(rows + n) * r + j]!;
          }
        }
        return k;
      },
    },
    {
      name: `${blk}attn_v_b.weight`,
      dims: vDims,
      type: matrixType(vDims),
      values: (s) => {
        const kv = readF32(s, hf);
        const v = new Float32Array(heads * vDim * r);
        for (let hd = 0; hd < heads; hd++) {
          const from = (hd * (nope + vDim) + nope) * r;
          v.set(kv.subarray(from, from + vDim * r), hd * vDim * r);
        }
        return v;
      },
    },
  ];
}

/** The bytes of float32 values stored as `type`. */
export function encodeTensor(values: Float32Array, type: GgmlTypeName): Uint8Array {
  switch (type) {
    case 'F32':
      return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    case 'BF16': {
      // The dummy and checkpoint values are bf16 already: the top half of each float32 is exact.
      const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
      const out = new Uint16Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = bf16Round(bits[i]!);
      return new Uint8Array(out.buffer);
    }
    case 'Q8_0': {
      const out = new Uint8Array((values.length / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES);
      quantizeQ8_0(out, values);
      return out;
    }
    case 'F16':
      throw new RangeError('F16 tensors are not written by this writer');
  }
}

/** float32 bits → bfloat16 bits, round to nearest even (NaN kept quiet). */
function bf16Round(bits: number): number {
  if ((bits & 0x7fffffff) > 0x7f800000) return ((bits >>> 16) | 0x40) & 0xffff;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/**
 * Writes `config`'s model from `source` as a `deepseek2` GGUF file of `fileType` at `path`, with `vocab`
 * as its tokenizer block (a placeholder when absent).
 */
export function writeDeepseek2Gguf(
  path: string,
  config: DeepseekConfig,
  source: WeightSource,
  fileType: Deepseek2FileType,
  vocab?: ReadonlyMap<string, GgufValue>,
): void {
  const tensors = deepseek2Tensors(config, fileType);
  writeGguf(path, deepseek2Metadata(config, fileType, vocab), tensors, (i) =>
    encodeTensor(tensors[i]!.values(source), tensors[i]!.type),
  );
}
