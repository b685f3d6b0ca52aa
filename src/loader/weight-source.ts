// Where a model's weights come from: a safetensors checkpoint (single file or sharded) or seeded dummy
// weights of the right shapes. Models read one tensor at a time and hand it to the kernels, so no second
// full copy of the weights is ever held. A tensor-parallel rank reads only its block of each sharded
// matrix (`readBlock`), so no rank reads, or holds even briefly, the shards of the others.

import type { RawWeight } from '../kernels/kernels.js';

/** Float dtypes (what `read` returns as RawWeight) and the integer dtypes of int8 (W8A8) checkpoints. */
export type TensorDType = 'F32' | 'BF16' | 'F16' | 'I8' | 'I32' | 'I64';

/** The dtypes `read` and `readBlock` return as float data. */
export const FLOAT_DTYPES: readonly TensorDType[] = ['F32', 'BF16', 'F16'];

/** A contiguous range of a dimension: elements [start, start + count). */
export interface Slice {
  readonly start: number;
  readonly count: number;
}

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
   * Reads one float tensor: BF16 stays as bf16 bit patterns; F16 and F32 come back as float32. Checks the
   * shape against `expectedShape` when given (a `TensorShapeError` naming both otherwise); an integer
   * tensor gives a `TensorDTypeError` (read those with `readAny` or `readAnyBlock` of a safetensors source).
   */
  read(name: string, expectedShape?: readonly number[]): RawWeight;
  /**
   * Reads the block `rows` × `cols` of a 2-D tensor of shape `expectedShape` ([R, C]) as a row-major
   * `[rows.count, cols.count]` matrix, in the dtype `read` gives; all columns when `cols` is absent. The
   * values equal the same block of `read`'s result, but only the block is read. A `TensorShapeError` when
   * the shape differs, a `TensorBlockError` when a range is not within it. `staged`: the source may return
   * a view of a buffer it reuses for the next staged read (the caller copies the block out at once).
   */
  readBlock(
    name: string,
    expectedShape: readonly [number, number],
    rows: Slice,
    cols?: Slice,
    staged?: boolean,
  ): RawWeight;
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

/** A tensor has a dtype other than the one its use requires (e.g. int8 where float is required). */
export class TensorDTypeError extends Error {
  constructor(
    readonly tensorName: string,
    readonly dtype: string,
    expected: string,
  ) {
    super(`tensor "${tensorName}" has dtype ${dtype}; expected ${expected}`);
    this.name = 'TensorDTypeError';
  }
}

/** A block read asks for rows or columns outside the tensor. */
export class TensorBlockError extends Error {
  constructor(
    readonly tensorName: string,
    readonly shape: readonly number[],
    readonly rows: Slice,
    readonly cols: Slice,
  ) {
    super(
      `block rows [${rows.start}, ${rows.start + rows.count}) × columns [${cols.start}, ` +
        `${cols.start + cols.count}) of tensor "${tensorName}" [${shape.join(', ')}] is out of range; ` +
        'allowed: integer ranges with 0 ≤ start ≤ start + count ≤ the dimension',
    );
    this.name = 'TensorBlockError';
  }
}

/** Whether two shapes are equal. */
export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function isWithin(s: Slice, dim: number): boolean {
  return (
    Number.isSafeInteger(s.start) &&
    Number.isSafeInteger(s.count) &&
    s.start >= 0 &&
    s.count >= 0 &&
    s.start + s.count <= dim
  );
}

/**
 * The checks every `readBlock` makes: `actual` equals `expectedShape` (else `TensorShapeError`) and both
 * ranges lie within it (else `TensorBlockError`). Returns the column range, all columns when absent.
 */
export function checkBlock(
  name: string,
  expectedShape: readonly [number, number],
  actual: readonly number[],
  rows: Slice,
  cols: Slice | undefined,
): Slice {
  if (!sameShape(expectedShape, actual)) throw new TensorShapeError(name, expectedShape, actual);
  const [R, C] = expectedShape;
  const c = cols ?? { start: 0, count: C };
  if (!isWithin(rows, R) || !isWithin(c, C)) throw new TensorBlockError(name, actual, rows, c);
  return c;
}
