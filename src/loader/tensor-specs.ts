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
}

/** The number of elements of a shape. */
export function numElements(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
