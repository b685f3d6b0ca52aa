// The kernel contract: the flat compute functions that models call, implemented twice — by the
// WebAssembly SIMD kernels of the CPU platform and by plain TypeScript reference twins that tests
// compare against. All activations are float32, row-major; arguments come output first.

/** How a float linear layer's weight is kept in memory. Activations and accumulation are float32. */
export type WeightDType = 'f32' | 'bf16';

/**
 * How a prepared weight is kept: a float dtype, or `int8` (W8A8: int8 weights and int8 activations
 * quantized inside `linear`, int32 accumulation; prepared by `prepareInt8Linear`).
 */
export type LinearDType = WeightDType | 'int8';

/**
 * How an int8 weight's activations are quantized and its int32 sums dequantized (W8A8, as vLLM and
 * vLLM-Ascend define it). Float32 arithmetic, rounding half to even; see src/kernels/int8-quant.ts.
 * - `dynamic` (vLLM compressed-tensors, ModelSlim `W8A8_DYNAMIC`): per token, symmetric:
 *   aScale[i] = max|x[i, :]| / 127, xq = clamp(round(x · 127 / max|x[i, :]|), −127, 127);
 *   out[i, j] = f32(acc[i, j]) · aScale[i] · weightScale[j].
 *   With `groupSize` G (compressed-tensors `input_activations.strategy: "group"`, vLLM's per-token-group
 *   int8): one scale per token per group g of G consecutive k values (the last group holds what is left),
 *   aScale[i, g] = max|x[i, g]| / 127, each group's int32 sum acc[i, j, g] dequantized on its own:
 *   out[i, j] = f32(Σ_g f32(acc[i, j, g]) · aScale[i, g]) · weightScale[j] (summed in group order).
 * - `static` (ModelSlim `W8A8`): per tensor with a zero point:
 *   xq = clamp(round(x · (1 / inputScale) + inputOffset), −128, 127);
 *   out[i, j] = f32(acc[i, j] + quantBias[j]) · deqScale[j].
 */
export type Int8Scheme =
  | {
      readonly kind: 'dynamic';
      /** [n]: per output channel. */
      readonly weightScale: Float32Array;
      /**
       * Activation scales per group of this many k values (a multiple of 4 in [4, 256], see
       * ACT_GROUP_SIZE_RULE); absent: one scale per token.
       */
      readonly groupSize?: number;
    }
  | {
      readonly kind: 'static';
      /** Per-tensor activation scale (> 0). */
      readonly inputScale: number;
      /** Per-tensor activation zero point (an integer in [−128, 127]). */
      readonly inputOffset: number;
      /** [n]: added to the int32 sums (ModelSlim folds −inputOffset·Σ_k w and the bias into it). */
      readonly quantBias: Int32Array;
      /** [n]: inputScale · weightScale per output channel. */
      readonly deqScale: Float32Array;
    };

/** An int8 linear weight as read from a checkpoint: `data` [n, k] row-major, and its scheme. */
export interface Int8LinearData {
  readonly data: Int8Array;
  readonly scheme: Int8Scheme;
}

/**
 * A linear layer's weight, `[n, k]` (out_features × in_features, the Hugging Face layout), prepared for
 * one kernel set (packed for its GEMM tile, placed in its memories). Opaque outside that kernel set.
 */
export interface LinearWeight {
  /** Output features. */
  readonly n: number;
  /** Input features. */
  readonly k: number;
  /** Storage dtype of the elements. */
  readonly dtype: LinearDType;
}

/**
 * A stack of `numHeads` linear weights of one shape `[n, k]` (`[numHeads, n, k]` as read), prepared for
 * `headLinear`: the per-head matrices of attention. Opaque outside its kernel set; `freeLinear` frees it.
 */
export interface HeadLinearWeight extends LinearWeight {
  readonly numHeads: number;
}

/** Raw weight data as read from a checkpoint: float32 values, or bfloat16 bit patterns. */
export type RawWeight =
  | { readonly dtype: 'f32'; readonly data: Float32Array }
  | { readonly dtype: 'bf16'; readonly data: Uint16Array };

export interface Kernels {
  /** A short name for logs and benchmarks, e.g. `wasm-relaxed-simd x2` or `reference`. */
  readonly name: string;

  /**
   * Prepares a weight of shape `[n, k]` row-major for `linear`, stored as `dtype` (converting from the
   * raw data's dtype when they differ). The raw data may be dropped by the caller afterwards.
   */
  prepareLinear(raw: RawWeight, n: number, k: number, dtype: WeightDType): LinearWeight;

  /**
   * Prepares a stack of per-head weights `[numHeads, n, k]` (row-major: head h's `[n, k]` matrix at
   * h·n·k) for `headLinear`, stored as `dtype`.
   */
  prepareHeadLinear(
    raw: RawWeight,
    numHeads: number,
    n: number,
    k: number,
    dtype: WeightDType,
  ): HeadLinearWeight;

  /**
   * Prepares an int8 weight of shape `[n, k]` (W8A8, see `Int8Scheme`) for `linear`, which then takes
   * float32 activations, quantizes them itself and returns float32. The data may be dropped afterwards.
   */
  prepareInt8Linear(weight: Int8LinearData, n: number, k: number): LinearWeight;

  /** Releases the memory of a prepared weight (from `prepareLinear`, `prepareInt8Linear` or `prepareHeadLinear`). */
  freeLinear(w: LinearWeight): void;

  /**
   * A zero-filled float32 buffer of `n` elements that the kernels read without copying (the KV cache and
   * other long-lived buffers live there).
   */
  allocate(n: number): Float32Array;

  /** Returns a buffer from `allocate` (the array must not be used afterwards). */
  free(a: Float32Array): void;

  /**
   * A zero-filled float32 activation buffer of `n` elements for one forward (a layer's output, the
   * residual stream, the logits). Owned by the garbage collector: nothing frees it. The kernel set
   * chooses where it lives; models and layers take every activation buffer from here (or from `allocate`).
   */
  allocateActivations(n: number): Float32Array;

  /** As `allocateActivations`, for int32 kernel outputs (the routed experts of each token). */
  allocateIndices(n: number): Int32Array;

  /**
   * out[m, n] = Σ_k x[m, k] · w[n, k]. `x`: [m, k], `out`: [m, n]. For an int8 weight, x is quantized
   * and the int32 sums dequantized as its `Int8Scheme` says (bit for bit the same in every kernel set).
   */
  linear(out: Float32Array, x: Float32Array, w: LinearWeight, m: number): void;

  /**
   * Every head's own linear layer over strided views of [m, numHeads, ·] activations: for i < m, h < numHeads,
   * out[i, h, outOffset + j] = Σ_c x[i, h, xOffset + c] · w[h][j, c] for j < n, c < k.
   * `x`: [m, numHeads, xHeadStride]; `out`: [m, numHeads, outHeadStride] (elements outside the written
   * columns keep their values); `w`: [numHeads, n, k].
   */
  headLinear(
    out: Float32Array,
    outHeadStride: number,
    outOffset: number,
    x: Float32Array,
    xHeadStride: number,
    xOffset: number,
    w: HeadLinearWeight,
    m: number,
  ): void;

  /** out[i, :] = x[i, :] / sqrt(mean(x[i, :]²) + eps) · weight. `x`, `out`: [m, d]; `weight`: [d]. */
  rmsNorm(out: Float32Array, x: Float32Array, weight: Float32Array, m: number, d: number, eps: number): void;

  /**
   * out[i, j] = silu(gateUp[i, j]) · gateUp[i, d + j]. `gateUp`: [m, 2d] (gate half then up half of each
   * row), `out`: [m, d].
   */
  siluAndMul(out: Float32Array, gateUp: Float32Array, m: number, d: number): void;

  /** Softmax of each row in place. `x`: [m, n]. */
  softmax(x: Float32Array, m: number, n: number): void;

  /**
   * Rotary embedding in place on adjacent pairs (x[2j], x[2j+1]) of the rope section of each head, as
   * DeepSeek's reference does: token i, head h, pair j rotates by the angle whose cosine and sine are
   * `cos[positions[i] · rotaryDim/2 + j]` and `sin[...]`.
   * `x`: [m, numHeads, headStride]; the rope section starts at `offset` within each head and has
   * `rotaryDim` elements. `cos`, `sin`: [maxPositions, rotaryDim / 2].
   */
  rope(
    x: Float32Array,
    positions: Int32Array,
    cos: Float32Array,
    sin: Float32Array,
    m: number,
    numHeads: number,
    headStride: number,
    offset: number,
    rotaryDim: number,
  ): void;

  /**
   * MLA attention in the absorbed form, for the query tokens of one sequence, over the latent KV cache.
   * Each cache slot holds one token: its normalised latent (`latentDim`) followed by its rotated rope key
   * (`ropeDim`). Query token t (at absolute position `positions[t]`) attends to the cache positions
   * 0..positions[t] of its sequence (causal); position p lives in slot
   * `blockTable[p / blockSize] · blockSize + p % blockSize`.
   * `out`: [numTokens, numHeads, latentDim] = Σ_p softmax_p(scale · q·cache[p]) · cache[p][:latentDim].
   * `q`: [numTokens, numHeads, latentDim + ropeDim] (absorbed nope part, then rotated rope part).
   * `cache`: [numSlots, latentDim + ropeDim].
   */
  mlaAttention(
    out: Float32Array,
    q: Float32Array,
    cache: Float32Array,
    blockTable: Int32Array,
    positions: Int32Array,
    numTokens: number,
    numHeads: number,
    latentDim: number,
    ropeDim: number,
    blockSize: number,
    scale: number,
  ): void;

  /**
   * `mlaAttention` for a whole batch of sequences in one call (which a kernel set may split across
   * threads). Sequence s owns the query tokens [seqStarts[s], seqStarts[s + 1]), and its block table is
   * row s of `blockTables`: [numSeqs, maxBlocksPerSeq]. `out`: [numTokens, numHeads, latentDim];
   * `q`: [numTokens, numHeads, latentDim + ropeDim]; `positions`: [numTokens]; `seqStarts`: [numSeqs + 1]
   * with seqStarts[numSeqs] = numTokens; `cache`, `blockSize`, `scale` as for `mlaAttention`.
   */
  mlaAttentionBatch(
    out: Float32Array,
    q: Float32Array,
    cache: Float32Array,
    blockTables: Int32Array,
    maxBlocksPerSeq: number,
    seqStarts: Int32Array,
    positions: Int32Array,
    numSeqs: number,
    numHeads: number,
    latentDim: number,
    ropeDim: number,
    blockSize: number,
    scale: number,
  ): void;

  /**
   * Causal attention of one sequence's query tokens over its context, with keys and values per head: MLA
   * without the absorption (the key/value up-projection applied to the context instead), which is cheaper
   * than `mlaAttention` for a long prefill. For t < numTokens, h < numHeads:
   * out[t, h, :] = Σ_{p ≤ positions[t]} softmax_p(scale · (q[t, h, :nopeDim] · kv[p, h, :nopeDim]
   *                + q[t, h, nopeDim:] · kRope[p, :])) · kv[p, h, nopeDim:].
   * `out`: [numTokens, numHeads, vDim]; `q`: [numTokens, numHeads, nopeDim + ropeDim];
   * `kv`: [numCtx, numHeads, nopeDim + vDim] (each head's key part, then its value);
   * `kRope`: [numCtx, ropeDim] (shared by the heads); `positions`: [numTokens], each < numCtx.
   */
  mhaAttention(
    out: Float32Array,
    q: Float32Array,
    kv: Float32Array,
    kRope: Float32Array,
    positions: Int32Array,
    numTokens: number,
    numCtx: number,
    numHeads: number,
    nopeDim: number,
    ropeDim: number,
    vDim: number,
    scale: number,
  ): void;

  /**
   * Top-k of each row, in descending order of value (ties: lower index first).
   * `x`: [m, n]; `outIdx`, `outVal`: [m, k]; k <= n.
   */
  topK(outIdx: Int32Array, outVal: Float32Array, x: Float32Array, m: number, n: number, k: number): void;

  /**
   * Index of the largest value of each row (greedy sampling), ties to the lowest index, NaN values
   * ignored; 0 for a row with nothing above −∞. `outIdx`: [m]; `x`: [m, n].
   */
  argmax(outIdx: Int32Array, x: Float32Array, m: number, n: number): void;

  /** out[i] = a[i] + b[i] for i < n (the residual add). `out` may be `a` or `b`. */
  add(out: Float32Array, a: Float32Array, b: Float32Array, n: number): void;

  /** out[i] = 1 / (1 + e^(−x[i])) for i < n. `out` may be `x`. */
  sigmoid(out: Float32Array, x: Float32Array, n: number): void;

  /**
   * Row copy with optional gather and scatter, the one data-movement kernel: for i < m, j < d,
   * dst[r · dstStride + dstOffset + j] = src[s · srcStride + srcOffset + j] with r = dstRows ? dstRows[i] : i
   * and s = srcRows ? srcRows[i] : i. Column slices (`dstRows`, `srcRows` null), row gathers (`srcRows`),
   * row scatters such as the KV-cache write (`dstRows` = slot mapping). Rows must not overlap between
   * `dst` and `src`. `dst`: [*, dstStride]; `src`: [*, srcStride]; `dstRows`, `srcRows`: [m].
   */
  copyRows(
    dst: Float32Array,
    dstRows: Int32Array | null,
    dstStride: number,
    dstOffset: number,
    src: Float32Array,
    srcRows: Int32Array | null,
    srcStride: number,
    srcOffset: number,
    m: number,
    d: number,
  ): void;

  /**
   * The MoE combine: out[rows[i], :] += weights[i] · x[i, :] for i < m, in order of i (a row named twice
   * accumulates in that order). `out`: [*, d]; `x`: [m, d]; `rows`, `weights`: [m].
   */
  weightedScatterAdd(
    out: Float32Array,
    x: Float32Array,
    rows: Int32Array,
    weights: Float32Array,
    m: number,
    d: number,
  ): void;

  /**
   * Embedding lookup of a vocabulary slice: out[t, :] = table[tokenIds[t] − rowStart, :] (bf16 widened to
   * float32) where 0 ≤ tokenIds[t] − rowStart < numRows, else zeros (another rank holds that row).
   * `out`: [m, d]; `table`: [numRows, d] as read from the checkpoint; `tokenIds`: [m].
   */
  embedding(
    out: Float32Array,
    table: RawWeight,
    tokenIds: Int32Array,
    rowStart: number,
    numRows: number,
    m: number,
    d: number,
  ): void;

  /**
   * DeepSeek's MoE expert choice (vLLM's grouped top-k) from router scores already passed through softmax
   * or sigmoid. Per token t: selection scores sel = scores[t] (+ `bias` when given: noaux_tc); with
   * numGroups > 1 the experts form numGroups equal groups, each scored by its best sel (the sum of its best
   * two when `bias` is given), and experts outside the best `topkGroup` groups are dropped; the `topK`
   * best sel remain (descending; ties to the lower index). Their weights are scores[t, e], divided by
   * their sum when `renormalize`, times `scalingFactor`.
   * `outExperts`, `outWeights`: [m, topK]; `scores`: [m, numExperts]; `bias`: [numExperts] or null.
   */
  groupedTopK(
    outExperts: Int32Array,
    outWeights: Float32Array,
    scores: Float32Array,
    bias: Float32Array | null,
    m: number,
    numExperts: number,
    topK: number,
    numGroups: number,
    topkGroup: number,
    renormalize: boolean,
    scalingFactor: number,
  ): void;

  /** Releases worker threads and memories. The kernel set is unusable afterwards. */
  dispose(): Promise<void>;
}

/**
 * Converts bfloat16 bit patterns to float32 (exact: bf16 is the top half of an f32).
 * `out`: [n], `bits`: [n].
 */
export function bf16ToF32(out: Float32Array, bits: Uint16Array): void {
  const u32 = new Uint32Array(out.buffer, out.byteOffset, out.length);
  for (let i = 0; i < bits.length; i++) u32[i] = bits[i]! << 16;
}

/** The bfloat16 bit pattern nearest to the float32 with bit pattern `f32Bits` (ties to even; NaN kept NaN). */
export function f32BitsToBf16(f32Bits: number): number {
  if ((f32Bits & 0x7fffffff) > 0x7f800000) return ((f32Bits >>> 16) | 0x40) & 0xffff;
  return ((f32Bits + 0x7fff + ((f32Bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Rounds float32 values to bfloat16 bit patterns (round to nearest even; NaN stays NaN). */
export function f32ToBf16(out: Uint16Array, x: Float32Array): void {
  const u32 = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < x.length; i++) out[i] = f32BitsToBf16(u32[i]!);
}
