// A DeepSeek V2/V3 model as a llama.cpp GGUF file (architecture `deepseek2`), from any `WeightSource` of
// Hugging Face tensors (a checkpoint or Duet's dummy weights), so llama.cpp runs exactly the weights Duet
// runs. What llama.cpp expects, learnt from its converter (convert_hf_to_gguf.py, DeepseekV2Model):
// - MLA as MQA with one kv head: head_count_kv = 1, key_length = kv_lora_rank + rope dim, value_length =
//   kv_lora_rank; the per-head sizes go to key_length_mla / value_length_mla.
// - kv_b_proj [heads · (nope + v), kv_lora] split per head into attn_k_b (the nope part, transposed:
//   ggml dims [nope, kv_lora, heads]) and attn_v_b (ggml dims [kv_lora, v, heads]).
// - Routed experts stacked per layer into one 3-D tensor each (ffn_{gate,up,down}_exps).
// - A vocabulary: a minimal byte-level BPE one of `vocab_size` tokens (the 256 byte tokens of GPT-2's
//   byte encoding, then placeholders), enough for llama.cpp to load; the benchmark feeds token ids.
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

/** GPT-2's byte-level encoding of byte b: printable bytes map to themselves, the others to U+0100 onward. */
function byteToken(b: number): string {
  const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  if (printable) return String.fromCharCode(b);
  let n = 0;
  for (let x = 0; x < b; x++) {
    const p = (x >= 0x21 && x <= 0x7e) || (x >= 0xa1 && x <= 0xac) || (x >= 0xae && x <= 0xff);
    if (!p) n++;
  }
  return String.fromCharCode(256 + n);
}

/** The metadata of a `deepseek2` GGUF for `config`. */
export function deepseek2Metadata(
  config: DeepseekConfig,
  fileType: Deepseek2FileType,
): Map<string, GgufValue> {
  const c = config;
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
  // A minimal byte-level BPE vocabulary (no merges): loads, and is never used to tokenize here.
  const tokens: string[] = [];
  const types: number[] = [];
  const special = new Set<number>([...(c.bosTokenId !== null ? [c.bosTokenId] : []), ...c.eosTokenIds]);
  for (let i = 0; i < c.vocabSize; i++) {
    if (special.has(i)) {
      tokens.push(`<|special_${i}|>`);
      types.push(3); // CONTROL
    } else if (i < 256) {
      tokens.push(byteToken(i));
      types.push(1); // NORMAL
    } else {
      tokens.push(`[PAD${i}]`);
      types.push(5); // UNUSED
    }
  }
  m.set('tokenizer.ggml.model', { type: 'string', value: 'gpt2' });
  m.set('tokenizer.ggml.pre', { type: 'string', value: 'default' });
  m.set('tokenizer.ggml.tokens', { type: 'array', items: 'string', value: tokens });
  m.set('tokenizer.ggml.token_type', { type: 'array', items: 'i32', value: types });
  m.set('tokenizer.ggml.merges', { type: 'array', items: 'string', value: [] });
  if (c.bosTokenId !== null) u32('tokenizer.ggml.bos_token_id', c.bosTokenId);
  if (c.eosTokenIds[0] !== undefined) u32('tokenizer.ggml.eos_token_id', c.eosTokenIds[0]);
  m.set('tokenizer.ggml.add_bos_token', { type: 'bool', value: false });
  return m;
}

/** The GGUF tensors of `config`, in llama.cpp's names and ggml dimension order, with their sources. */
export function deepseek2Tensors(config: DeepseekConfig, fileType: Deepseek2FileType): PlannedTensor[] {
  const c = config;
  if (c.moeLayerFreq !== 1) {
    throw new RangeError(`llama.cpp's deepseek2 needs moe_layer_freq 1; this config has ${c.moeLayerFreq}`);
  }
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

/** Writes `config`'s model from `source` as a `deepseek2` GGUF file of `fileType` at `path`. */
export function writeDeepseek2Gguf(
  path: string,
  config: DeepseekConfig,
  source: WeightSource,
  fileType: Deepseek2FileType,
): void {
  const tensors = deepseek2Tensors(config, fileType);
  writeGguf(path, deepseek2Metadata(config, fileType), tensors, (i) =>
    encodeTensor(tensors[i]!.values(source), tensors[i]!.type),
  );
}
