// Checks a weight source against the tensors a config calls for, before any weight is loaded: every
// tensor present with its shape, and nothing unexpected (which would mean config and checkpoint disagree).

import type { DeepseekConfig } from '../config/model-config.js';
import { deepseekTensorSpecs, isIgnoredCheckpointTensor } from '../models/deepseek-weights.js';
import { UnexpectedTensorError } from './checkpoint-errors.js';
import { MissingTensorError, TensorShapeError, type WeightSource } from './weight-source.js';

/**
 * Throws `MissingTensorError` for the first tensor of `deepseekTensorSpecs(config)` the source lacks,
 * `TensorShapeError` for the first of another shape, and `UnexpectedTensorError` when the source holds
 * tensors that are neither needed nor ignorable (`isIgnoredCheckpointTensor`). `where` names the source.
 */
export function checkWeights(source: WeightSource, config: DeepseekConfig, where: string): void {
  const specs = deepseekTensorSpecs(config);
  for (const spec of specs) {
    if (!source.has(spec.name)) throw new MissingTensorError(spec.name, where);
    const { shape } = source.info(spec.name);
    const same = shape.length === spec.shape.length && shape.every((d, i) => d === spec.shape[i]);
    if (!same) throw new TensorShapeError(spec.name, spec.shape, shape);
  }
  const needed = new Set(specs.map((s) => s.name));
  const unexpected = source.names().filter((n) => !needed.has(n) && !isIgnoredCheckpointTensor(n, config));
  if (unexpected.length > 0) throw new UnexpectedTensorError(where, unexpected);
}
