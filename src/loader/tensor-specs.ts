// The contract between a model and the loader: which tensors a checkpoint must hold (names and shapes)
// and which ones it may carry that the model skips. A model architecture (models/) builds it from its
// config; the loader checks checkpoints against it and generates dummy weights from it, without knowing
// the architecture.

/** One tensor the model needs: its checkpoint name and its shape (Hugging Face layout, [out, in]). */
export interface TensorSpec {
  readonly name: string;
  readonly shape: readonly number[];
}

/** What a model expects of its checkpoint. */
export interface CheckpointLayout {
  /** Every tensor the model loads, in model order. */
  readonly tensors: readonly TensorSpec[];
  /** Whether a tensor a real checkpoint carries is one the model does not use (skipped, not an error). */
  isIgnored(name: string): boolean;
  /** What the model does with each linear weight under W8A8 (null for tensors that are not linear). */
  linearRole(name: string): LinearRole;
}

/**
 * What a model does with a linear weight under W8A8: `int8` runs it through the int8 kernels when quantized
 * (from an int8 checkpoint, or quantized while loading); `int8-from-checkpoint` runs it in int8 when an int8
 * checkpoint stores it so, but keeps it float when quantizing a float checkpoint while loading (the LM head,
 * as vLLM quantizes it only when the checkpoint does); `dequantize` keeps it float (an int8 checkpoint's
 * values are dequantized at load: MLA's kv_b_proj, whose per-head parts are absorbed into the attention);
 * `float` requires a float tensor (the MoE router). null: not a linear weight (embeddings, norms, biases:
 * always float).
 */
export type LinearRole = 'int8' | 'int8-from-checkpoint' | 'dequantize' | 'float' | null;

/** The number of elements of a shape. */
export function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
