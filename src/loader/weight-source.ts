// Where a model's weights come from: a safetensors checkpoint (single file or sharded) or seeded dummy
// weights of the right shapes. Models read one tensor at a time and hand it to the kernels, so no second
// full copy of the weights is ever held.

import type { RawWeight } from '../kernels/kernels.js';

export type TensorDType = 'F32' | 'BF16' | 'F16';

export interface TensorInfo {
  readonly name: string;
  readonly dtype: TensorDType;
  readonly shape: readonly number[];
}

export interface WeightSource {
  /** Every tensor name available. */
  names(): readonly string[];
  /** Shape and dtype of one tensor; a `MissingTensorError` when absent. */
  info(name: string): TensorInfo;
  /** Whether the tensor exists. */
  has(name: string): boolean;
  /**
   * Reads one tensor: BF16 stays as bf16 bit patterns; F16 and F32 come back as float32. Checks the
   * shape against `expectedShape` when given (a `TensorShapeError` naming both otherwise).
   */
  read(name: string, expectedShape?: readonly number[]): RawWeight;
  /** Closes open files. */
  close(): void;
}

/** A tensor the model needs is not in the checkpoint. */
export class MissingTensorError extends Error {
  constructor(
    readonly tensorName: string,
    where: string,
  ) {
    super(`tensor "${tensorName}" is missing from ${where}`);
    this.name = 'MissingTensorError';
  }
}

/** A tensor exists but has another shape than the config implies. */
export class TensorShapeError extends Error {
  constructor(
    readonly tensorName: string,
    readonly expected: readonly number[],
    readonly actual: readonly number[],
  ) {
    super(
      `tensor "${tensorName}" has shape [${actual.join(', ')}] but the config implies [${expected.join(', ')}]`,
    );
    this.name = 'TensorShapeError';
  }
}
