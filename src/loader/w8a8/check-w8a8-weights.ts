// Checks an int8 (W8A8) checkpoint against the tensors a model needs before any weight is read (headers
// only): every tensor present with its shape; each int8 weight stored as I8 where the model allows int8,
// with the scales its scheme needs in the right shapes and dtypes; every other tensor in float; nothing
// unexpected. Each refusal names the tensor and what was expected.

import { QuantizedCheckpointError, UnexpectedTensorError } from '../checkpoint-errors.js';
import type { SafetensorsWeightSource } from '../safetensors.js';
import { FLOAT_DTYPES, MissingTensorError, TensorShapeError } from '../weight-source.js';
import type { LinearStorage, W8A8Format } from './checkpoint-format.js';
import type { LinearRole } from './linear-source.js';

/** A tensor the model needs. */
export interface NeededTensor {
  readonly name: string;
  readonly shape: readonly number[];
}

/** One scale tensor an int8 weight of `n` output channels carries. */
interface ScaleSpec {
  readonly suffix: string;
  readonly dtypes: readonly string[];
  /** Element counts allowed (n per channel, 1 per tensor). */
  readonly counts: readonly number[];
  readonly required: boolean;
}

function scaleSpecs(format: W8A8Format, storage: LinearStorage, n: number): ScaleSpec[] {
  const floats = FLOAT_DTYPES as readonly string[];
  const perChannel = format.method === 'compressed-tensors' ? [n, 1] : [n];
  const out: ScaleSpec[] = [
    {
      suffix: 'weight_scale',
      dtypes: floats,
      counts: perChannel,
      required: format.method === 'compressed-tensors' || storage === 'int8-dynamic',
    },
  ];
  if (format.method === 'modelslim') {
    out.push({ suffix: 'weight_offset', dtypes: floats, counts: [n], required: false });
  }
  if (storage === 'int8-static') {
    out.push({ suffix: 'input_scale', dtypes: floats, counts: [1], required: true });
    if (format.method === 'modelslim') {
      out.push(
        { suffix: 'input_offset', dtypes: [...floats, 'I8', 'I32', 'I64'], counts: [1], required: true },
        { suffix: 'quant_bias', dtypes: ['I32'], counts: [n], required: true },
        { suffix: 'deq_scale', dtypes: ['F32', 'I64'], counts: [n], required: true },
      );
    }
  }
  return out;
}

/**
 * Throws `MissingTensorError`, `TensorShapeError`, `QuantizedCheckpointError` or `UnexpectedTensorError`
 * for the first problem found. `roleOf` is the model's use of each linear weight; `isIgnored` names the
 * checkpoint tensors the model skips.
 */
export function checkW8A8Weights(
  source: SafetensorsWeightSource,
  needed: readonly NeededTensor[],
  format: W8A8Format,
  roleOf: (name: string) => LinearRole,
  isIgnored: (name: string) => boolean,
  where: string,
): void {
  const file = format.declaredIn;
  const allowed = new Set<string>();
  for (const spec of needed) {
    if (!source.has(spec.name)) throw new MissingTensorError(spec.name, where);
    allowed.add(spec.name);
    const { shape, dtype } = source.info(spec.name);
    const same = shape.length === spec.shape.length && shape.every((d, i) => d === spec.shape[i]);
    if (!same) throw new TensorShapeError(spec.name, spec.shape, shape);
    const storage = format.storageOf(spec.name, dtype);
    if (storage === 'float') {
      if (!(FLOAT_DTYPES as readonly string[]).includes(dtype)) {
        throw new QuantizedCheckpointError(
          file,
          spec.name,
          `is stored as ${dtype}; expected a float dtype (${FLOAT_DTYPES.join(', ')})`,
        );
      }
      continue;
    }
    const role = roleOf(spec.name);
    if (role === 'float' || role === null) {
      throw new QuantizedCheckpointError(
        file,
        spec.name,
        `is stored as int8, but Duet keeps this tensor in float (embeddings, norms and the MoE router); expected a float dtype`,
      );
    }
    const module = spec.name.replace(/\.weight$/, '');
    for (const s of scaleSpecs(format, storage, spec.shape[0]!)) {
      const name = `${module}.${s.suffix}`;
      if (!source.has(name)) {
        if (!s.required) continue;
        throw new QuantizedCheckpointError(
          file,
          name,
          `is missing; the int8 weight "${spec.name}" (${storage}) needs it (${s.dtypes.join(' or ')}, ${s.counts[0]} element(s))`,
        );
      }
      allowed.add(name);
      const info = source.info(name);
      const count = info.shape.reduce((a, d) => a * d, 1);
      const shapeOk =
        s.counts.includes(count) && info.shape.length <= 2 && (count === 1 || info.shape[0] === count);
      if (!shapeOk) {
        throw new QuantizedCheckpointError(
          file,
          name,
          `has shape [${info.shape.join(', ')}]; expected ${s.counts.map((c) => `[${c}] or [${c}, 1]`).join(' or ')}`,
        );
      }
      if (!s.dtypes.includes(info.dtype)) {
        throw new QuantizedCheckpointError(
          file,
          name,
          `has dtype ${info.dtype}; expected ${s.dtypes.join(' or ')}`,
        );
      }
    }
  }
  const unexpected = source.names().filter((n) => !allowed.has(n) && !isIgnored(n));
  if (unexpected.length > 0) throw new UnexpectedTensorError(where, unexpected);
}
