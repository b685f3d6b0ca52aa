// A WeightSource over a safetensors checkpoint folder: one `model.safetensors`, or shards listed by
// `model.safetensors.index.json`. Headers are read and validated when the folder is opened (so a truncated
// download fails at start-up, not mid-load); each tensor, or block of one, is read on demand with
// positioned reads into a fresh buffer. File handles stay open until `close()`.

import { closeSync, existsSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { endianness } from 'node:os';
import { isAbsolute, join } from 'node:path';
import type { RawWeight } from '../kernels/kernels.js';
import {
  CheckpointIndexError,
  CheckpointNotFoundError,
  TruncatedCheckpointError,
  WeightSourceClosedError,
} from './checkpoint-errors.js';
import { f16ToF32 } from './half-float.js';
import {
  DTYPE_BYTES,
  readFully,
  readSafetensorsHeader,
  type SafetensorsEntry,
} from './safetensors-header.js';
import {
  checkBlock,
  FLOAT_DTYPES,
  MissingTensorError,
  type Slice,
  sameShape,
  TensorDTypeError,
  type TensorInfo,
  TensorShapeError,
  type WeightSource,
} from './weight-source.js';

export const SAFETENSORS_FILE = 'model.safetensors';
export const SAFETENSORS_INDEX_FILE = 'model.safetensors.index.json';

/** Options of `openSafetensors`. */
export interface OpenSafetensorsOptions {
  /**
   * Tensors to leave out (not validated, not listed), e.g. `isIgnoredCheckpointTensor` for the layers a
   * `--hf-overrides` cut away.
   */
  readonly skip?: (name: string) => boolean;
}

/**
 * A column block is read in spans of whole rows through a scratch buffer of at most this many bytes when
 * the bytes skipped between rows are few: one read per span instead of one per row.
 */
const MAX_SPAN_BYTES = 1 << 20;
/** Rows further apart than this are read one by one, skipping the bytes between them. */
const MAX_SKIPPED_BYTES = 64 * 1024;

/** One open checkpoint file. */
interface OpenFile {
  readonly path: string;
  readonly fd: number;
}

/** Where one tensor lives. */
interface Located {
  readonly file: OpenFile;
  readonly entry: SafetensorsEntry;
}

/** A `WeightSource` reading tensors from open safetensors files. Build it with `openSafetensors`. */
export class SafetensorsWeightSource implements WeightSource {
  private readonly files: OpenFile[];
  private readonly tensors: Map<string, Located>;
  private closed = false;
  private numBytesRead = 0;
  /**
   * The buffer of staged reads (see `readBlock`), grown to the largest block staged so far and reused: a
   * fresh buffer per tensor costs a page fault per 4 KiB, which on a virtual machine is most of its read.
   */
  private staging = new Uint8Array(0);

  /** @param where how errors name this source, e.g. the folder. */
  constructor(
    readonly where: string,
    files: OpenFile[],
    tensors: Map<string, Located>,
  ) {
    this.files = files;
    this.tensors = tensors;
  }

  names(): readonly string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const { entry } = this.locate(name);
    return { name, dtype: entry.dtype, shape: entry.shape };
  }

  /** Bytes of tensor data read from the files so far (for load statistics and tests). */
  get bytesRead(): number {
    return this.numBytesRead;
  }

  /** The file holding a tensor. */
  fileOf(name: string): string {
    return this.locate(name).file.path;
  }

  read(name: string, expectedShape?: readonly number[]): RawWeight {
    const { entry, bytes } = this.readBytes(name, expectedShape);
    return decode(name, entry, bytes);
  }

  /**
   * `WeightSource.readBlock`. `staged`: read into this source's staging buffer, reused by the next staged
   * read, so the result is valid only until then (for a caller that copies it out at once, e.g. into a
   * kernel's packed weight).
   */
  readBlock(
    name: string,
    expectedShape: readonly [number, number],
    rows: Slice,
    cols?: Slice,
    staged = false,
  ): RawWeight {
    const { entry, bytes } = this.readBlockBytes(name, expectedShape, rows, cols, staged);
    return decode(name, entry, bytes);
  }

  /**
   * Reads one tensor of any dtype as it is stored: float data as `read` gives it, integer data (I8, I32,
   * I64) as its typed array. For the scales and integers of int8 (W8A8) checkpoints.
   */
  readAny(name: string, expectedShape?: readonly number[]): StoredTensor {
    const { entry, bytes } = this.readBytes(name, expectedShape);
    return decodeAny(entry, bytes);
  }

  /** `readBlock` for any dtype (see `readAny`), staged or not. */
  readAnyBlock(
    name: string,
    expectedShape: readonly [number, number],
    rows: Slice,
    cols?: Slice,
    staged = false,
  ): StoredTensor {
    const { entry, bytes } = this.readBlockBytes(name, expectedShape, rows, cols, staged);
    return decodeAny(entry, bytes);
  }

  private readBytes(
    name: string,
    expectedShape: readonly number[] | undefined,
  ): { entry: SafetensorsEntry; bytes: Uint8Array } {
    const { file, entry } = this.locate(name);
    if (expectedShape !== undefined && !sameShape(expectedShape, entry.shape)) {
      throw new TensorShapeError(name, expectedShape, entry.shape);
    }
    if (this.closed) throw new WeightSourceClosedError(name, this.where);
    const bytes = new Uint8Array(entry.byteLength);
    this.readAt(file, name, bytes, entry.offset);
    return { entry, bytes };
  }

  private readBlockBytes(
    name: string,
    expectedShape: readonly [number, number],
    rows: Slice,
    cols: Slice | undefined,
    staged: boolean,
  ): { entry: SafetensorsEntry; bytes: Uint8Array } {
    const { file, entry } = this.locate(name);
    const c = checkBlock(name, expectedShape, entry.shape, rows, cols);
    if (this.closed) throw new WeightSourceClosedError(name, this.where);
    const width = DTYPE_BYTES[entry.dtype];
    const rowBytes = expectedShape[1] * width;
    const numBytes = rows.count * c.count * width;
    const bytes = staged ? this.stage(numBytes) : new Uint8Array(numBytes);
    const first = entry.offset + rows.start * rowBytes + c.start * width;
    if (bytes.length > 0) this.readRows(file, name, bytes, first, rows.count, rowBytes);
    return { entry, bytes };
  }

  /** The first `numBytes` of the staging buffer, grown when too small. */
  private stage(numBytes: number): Uint8Array {
    if (this.staging.length < numBytes) this.staging = new Uint8Array(numBytes);
    return this.staging.subarray(0, numBytes);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.staging = new Uint8Array(0);
    for (const f of this.files) closeSync(f.fd);
  }

  /**
   * Fills `target` with `numRows` equal segments of the file, `rowBytes` apart, the first at `first`:
   * the rows of a block. Never reads the bytes before the first segment or after the last.
   */
  private readRows(
    file: OpenFile,
    name: string,
    target: Uint8Array,
    first: number,
    numRows: number,
    rowBytes: number,
  ): void {
    const segBytes = target.length / numRows;
    if (segBytes === rowBytes || numRows === 1) {
      // Whole rows (or a single row): the block is one contiguous range of the file.
      this.readAt(file, name, target, first);
    } else if (rowBytes - segBytes > MAX_SKIPPED_BYTES || 2 * rowBytes > MAX_SPAN_BYTES) {
      // Rows far apart, or too long for two to share a span: one read per row, straight into place.
      for (let r = 0; r < numRows; r++) {
        this.readAt(file, name, target.subarray(r * segBytes, (r + 1) * segBytes), first + r * rowBytes);
      }
    } else {
      // Spans of rows, from the first segment of the span to the end of its last, then compacted.
      const perSpan = Math.min(numRows, Math.floor(MAX_SPAN_BYTES / rowBytes));
      const scratch = new Uint8Array((perSpan - 1) * rowBytes + segBytes);
      for (let r0 = 0; r0 < numRows; r0 += perSpan) {
        const n = Math.min(perSpan, numRows - r0);
        const span = scratch.subarray(0, (n - 1) * rowBytes + segBytes);
        this.readAt(file, name, span, first + r0 * rowBytes);
        for (let r = 0; r < n; r++) {
          target.set(span.subarray(r * rowBytes, r * rowBytes + segBytes), (r0 + r) * segBytes);
        }
      }
    }
  }

  /** Fills `target` from `position` of `file`, counting the bytes. */
  private readAt(file: OpenFile, name: string, target: Uint8Array, position: number): void {
    const n = readFully(file.fd, target, position);
    this.numBytesRead += n;
    // The header check at open time makes this happen only if the file shrank since.
    if (n < target.length)
      throw new TruncatedCheckpointError(file.path, name, position + target.length, position + n);
  }

  private locate(name: string): Located {
    const t = this.tensors.get(name);
    if (t === undefined) throw new MissingTensorError(name, this.where);
    return t;
  }
}

/** A tensor as stored: float data as `RawWeight`, or the integers of an I8, I32 or I64 tensor. */
export type StoredTensor =
  | RawWeight
  | { readonly dtype: 'i8'; readonly data: Int8Array }
  | { readonly dtype: 'i32'; readonly data: Int32Array }
  | { readonly dtype: 'i64'; readonly data: BigInt64Array };

/** Tensor data as `read` returns it: BF16 as bf16 bits, F32 as float32, F16 widened to float32. */
function decode(name: string, entry: SafetensorsEntry, bytes: Uint8Array): RawWeight {
  const t = decodeAny(entry, bytes);
  if (t.dtype !== 'f32' && t.dtype !== 'bf16') {
    throw new TensorDTypeError(name, entry.dtype, `a float tensor (${FLOAT_DTYPES.join(', ')}) here`);
  }
  return t;
}

function decodeAny(entry: SafetensorsEntry, bytes: Uint8Array): StoredTensor {
  switch (entry.dtype) {
    case 'BF16':
      return { dtype: 'bf16', data: new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2) };
    case 'F32':
      return { dtype: 'f32', data: new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4) };
    case 'F16': {
      const out = new Float32Array(bytes.length / 2);
      f16ToF32(out, new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length / 2));
      return { dtype: 'f32', data: out };
    }
    case 'I8':
      return { dtype: 'i8', data: new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length) };
    case 'I32':
      return { dtype: 'i32', data: new Int32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4) };
    case 'I64':
      return { dtype: 'i64', data: new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.length / 8) };
  }
}

/** Opens one file and validates its header; the fd is closed again if validation fails. */
function openOne(
  path: string,
  skip: (name: string) => boolean,
): { file: OpenFile; entries: SafetensorsEntry[] } {
  const fd = openSync(path, 'r');
  try {
    const entries = readSafetensorsHeader(fd, path, fstatSync(fd).size, skip);
    return { file: { path, fd }, entries };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

function checkHost(): void {
  // Tensor data is little-endian and is viewed in place as Uint16Array / Float32Array.
  if (endianness() !== 'LE') throw new Error('safetensors reading needs a little-endian host');
}

/** Opens a single safetensors file (e.g. `golden_tensors.safetensors`) as a WeightSource. */
export function openSafetensorsFile(
  path: string,
  opts: OpenSafetensorsOptions = {},
): SafetensorsWeightSource {
  checkHost();
  const { file, entries } = openOne(path, opts.skip ?? (() => false));
  const tensors = new Map<string, Located>();
  for (const entry of entries) tensors.set(entry.name, { file, entry });
  return new SafetensorsWeightSource(path, [file], tensors);
}

/** Reads and checks `model.safetensors.index.json`: its `weight_map` of tensor name → shard file. */
function readIndex(indexPath: string): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (err) {
    throw new CheckpointIndexError(indexPath, null, `is not valid JSON (${(err as Error).message})`);
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new CheckpointIndexError(indexPath, null, 'has no "weight_map" object (tensor name → shard file)');
  }
  const out = new Map<string, string>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string' || shard.length === 0) {
      throw new CheckpointIndexError(indexPath, name, 'maps to something that is not a shard file name');
    }
    // Checked on the name only: symbolic links inside the folder are the owner's choice (the Hugging Face
    // cache links every snapshot file to ../../blobs), but an index must not name files elsewhere.
    if (isAbsolute(shard) || shard.includes('\\') || shard.split('/').some((part) => part === '..')) {
      throw new CheckpointIndexError(
        indexPath,
        name,
        `maps to shard "${shard}", which leaves the model folder; shard names must be relative paths inside it (no "..", no absolute paths)`,
      );
    }
    out.set(name, shard);
  }
  return out;
}

function openSharded(
  dir: string,
  indexPath: string,
  skip: (name: string) => boolean,
): SafetensorsWeightSource {
  const weightMap = readIndex(indexPath);
  const shardOf = new Map<string, string>(); // shard → the first tensor it should hold (for messages)
  for (const [name, shard] of weightMap) {
    if (!skip(name) && !shardOf.has(shard)) shardOf.set(shard, name);
  }
  for (const [shard, example] of shardOf) {
    if (!existsSync(join(dir, shard))) {
      throw new CheckpointIndexError(
        indexPath,
        null,
        `names shard "${shard}" (holding "${example}"), which is missing from ${dir}`,
      );
    }
  }
  const files: OpenFile[] = [];
  try {
    const tensors = new Map<string, Located>();
    for (const shard of shardOf.keys()) {
      const { file, entries } = openOne(join(dir, shard), skip);
      files.push(file);
      const byName = new Map(entries.map((e) => [e.name, e]));
      for (const [name, s] of weightMap) {
        if (s !== shard || skip(name)) continue;
        const entry = byName.get(name);
        if (entry === undefined) {
          throw new CheckpointIndexError(
            indexPath,
            name,
            `is mapped to shard "${shard}", which does not hold it`,
          );
        }
        tensors.set(name, { file, entry });
      }
    }
    return new SafetensorsWeightSource(dir, files, tensors);
  } catch (err) {
    for (const f of files) closeSync(f.fd);
    throw err;
  }
}

/**
 * Opens the safetensors checkpoint of a model folder: `model.safetensors.index.json` with its shards when
 * present, else `model.safetensors`. All headers are validated now (see `readSafetensorsHeader`); throws
 * `CheckpointNotFoundError` when the folder has neither file, `CheckpointIndexError` for index problems.
 */
export function openSafetensors(dir: string, opts: OpenSafetensorsOptions = {}): SafetensorsWeightSource {
  checkHost();
  const skip = opts.skip ?? (() => false);
  const indexPath = join(dir, SAFETENSORS_INDEX_FILE);
  if (existsSync(indexPath)) return openSharded(dir, indexPath, skip);
  const single = join(dir, SAFETENSORS_FILE);
  if (!existsSync(single)) throw new CheckpointNotFoundError(dir);
  return openSafetensorsFile(single, opts);
}

/** Whether a folder holds a safetensors checkpoint (single file or index). */
export function hasSafetensors(dir: string): boolean {
  return existsSync(join(dir, SAFETENSORS_INDEX_FILE)) || existsSync(join(dir, SAFETENSORS_FILE));
}
