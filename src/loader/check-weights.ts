// Checks a weight source against the tensors a model calls for, before any weight is loaded: every
// tensor present with its shape, and nothing unexpected (which would mean config and checkpoint disagree).

import { UnexpectedTensorError } from './checkpoint-errors.js';
import type { CheckpointLayout } from './tensor-specs.js';
import {
  FLOAT_DTYPES,
  MissingTensorError,
  TensorDTypeError,
  TensorShapeError,
  type WeightSource,
} from './weight-source.js';

/**
 * Throws `MissingTensorError` for the first tensor of `layout.tensors` the source lacks,
 * `TensorShapeError` for the first of another shape, `TensorDTypeError` for an integer tensor, and `UnexpectedTensorError` when the source holds
 * tensors that are neither needed nor ignorable (`layout.isIgnored`). `where` names the source.
 */
export function checkWeights(source: WeightSource, layout: CheckpointLayout, where: string): void {
  const specs = layout.tensors;
  for (const spec of specs) {
    if (!source.has(spec.name)) throw new MissingTensorError(spec.name, where);
    const { shape, dtype } = source.info(spec.name);
    const same = shape.length === spec.shape.length && shape.every((d, i) => d === spec.shape[i]);
    if (!same) throw new TensorShapeError(spec.name, spec.shape, shape);
    if (!FLOAT_DTYPES.includes(dtype)) {
      // Integer tensors belong to int8 checkpoints, which declare themselves (src/loader/w8a8/).
      throw new TensorDTypeError(
        spec.name,
        dtype,
        `a float dtype (${FLOAT_DTYPES.join(', ')}): the checkpoint declares no int8 format ` +
          '(compressed-tensors quantization_config, or quant_model_description.json)',
      );
    }
  }
  const needed = new Set(specs.map((s) => s.name));
  const unexpected = source.names().filter((n) => !needed.has(n) && !layout.isIgnored(n));
  if (unexpected.length > 0) throw new UnexpectedTensorError(where, unexpected);
}
