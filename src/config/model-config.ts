// The typed model configuration of the DeepSeek family (V2, V2-Lite, V3, R1), as read from a Hugging Face
// config.json. Field names are camelCase forms of the config.json keys; validation lives in
// src/loader/hf-config.ts.

export type DeepseekArchitecture = 'DeepseekV2ForCausalLM' | 'DeepseekV3ForCausalLM';
export type TopkMethod = 'greedy' | 'group_limited_greedy' | 'noaux_tc';
export type ScoringFunc = 'softmax' | 'sigmoid';

/**
 * A quantized checkpoint (`quantization_config` in config.json), e.g. DeepSeek-V3's block FP8
 * (`{method: 'fp8'}`). Kept so a weight loader can refuse what it cannot read; dummy weights ignore it.
 */
export interface QuantizationConfig {
  /** `quantization_config.quant_method`, e.g. `fp8`. */
  readonly method: string;
  /** The whole `quantization_config` object, for the loader of that method (src/loader/w8a8/). */
  readonly fields: Readonly<Record<string, unknown>>;
}

/** YaRN context extension (`rope_scaling.type == "yarn"`). */
export interface YarnScaling {
  readonly type: 'yarn';
  readonly factor: number;
  readonly originalMaxPositionEmbeddings: number;
  readonly betaFast: number;
  readonly betaSlow: number;
  readonly mscale: number;
  readonly mscaleAllDim: number;
}

export interface DeepseekConfig {
  readonly architecture: DeepseekArchitecture;
  readonly modelType: 'deepseek_v2' | 'deepseek_v3';
  readonly vocabSize: number;
  readonly hiddenSize: number;
  /** Dense MLP intermediate size (the first `firstKDenseReplace` layers, and non-MoE layers). */
  readonly intermediateSize: number;
  /** Per-expert intermediate size; shared experts use `moeIntermediateSize · nSharedExperts`. */
  readonly moeIntermediateSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  /** null: q comes from one projection `q_proj`; otherwise `q_a_proj` → `q_a_layernorm` → `q_b_proj`. */
  readonly qLoraRank: number | null;
  readonly kvLoraRank: number;
  readonly qkNopeHeadDim: number;
  readonly qkRopeHeadDim: number;
  readonly vHeadDim: number;
  /** null: no MoE layers (every layer dense). */
  readonly nRoutedExperts: number | null;
  readonly nSharedExperts: number;
  readonly numExpertsPerTok: number;
  readonly nGroup: number;
  readonly topkGroup: number;
  readonly topkMethod: TopkMethod;
  readonly scoringFunc: ScoringFunc;
  readonly normTopkProb: boolean;
  readonly routedScalingFactor: number;
  readonly firstKDenseReplace: number;
  readonly moeLayerFreq: number;
  readonly maxPositionEmbeddings: number;
  readonly ropeTheta: number;
  readonly ropeScaling: YarnScaling | null;
  readonly rmsNormEps: number;
  readonly tieWordEmbeddings: boolean;
  readonly bosTokenId: number | null;
  /** One or more end-of-sequence ids. */
  readonly eosTokenIds: readonly number[];
  /** The checkpoint's dtype (`torch_dtype`), e.g. `bfloat16`. */
  readonly torchDtype: string;
  /** null: plain (unquantized) weights. */
  readonly quantization: QuantizationConfig | null;
}

/** Whether decoder layer `i` (0-based) has a MoE feed-forward (else a dense MLP). */
export function isMoeLayer(config: DeepseekConfig, i: number): boolean {
  return config.nRoutedExperts !== null && i >= config.firstKDenseReplace && i % config.moeLayerFreq === 0;
}
