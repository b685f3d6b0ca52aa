// Reads and validates the header of one safetensors file: an 8-byte little-endian header length, then a
// JSON object mapping tensor names to {dtype, shape, data_offsets} (offsets relative to the end of the
// header). Everything that can be checked without reading tensor data is checked here, at open time.

import { readSync } from 'node:fs';
import {
  SafetensorsHeaderError,
  TensorByteSizeError,
  TruncatedCheckpointError,
  UnsupportedDTypeError,
} from './checkpoint-errors.js';
import type { TensorDType } from './weight-source.js';

/** Bytes per element of the dtypes Duet reads. */
export const DTYPE_BYTES: Readonly<Record<TensorDType, number>> = {
  BF16: 2,
  F16: 2,
  F32: 4,
  I8: 1,
  I32: 4,
  I64: 8,
};
const SUPPORTED_DTYPES = Object.keys(DTYPE_BYTES) as TensorDType[];

/** The safetensors format caps the header at 100 MB. */
const MAX_HEADER_BYTES = 100_000_000;

/** One tensor's place in a file. */
export interface SafetensorsEntry {
  readonly name: string;
  readonly dtype: TensorDType;
  readonly shape: readonly number[];
  /** Absolute byte offset of the data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

function isShape(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((d) => Number.isSafeInteger(d) && d >= 0);
}

function isOffsets(v: unknown): v is [number, number] {
  return (
    Array.isArray(v) &&
    v.length === 2 &&
    Number.isSafeInteger(v[0]) &&
    Number.isSafeInteger(v[1]) &&
    v[0] >= 0 &&
    v[0] <= v[1]
  );
}

/** Fills `target` from `position` on; returns the number of bytes read, fewer only at the end of the file. */
export function readFully(fd: number, target: Uint8Array, position: number): number {
  // A single read is capped below 2 GiB; big tensors take several.
  const maxChunk = 1 << 30;
  let done = 0;
  while (done < target.length) {
    const n = readSync(fd, target, done, Math.min(maxChunk, target.length - done), position + done);
    if (n === 0) break;
    done += n;
  }
  return done;
}

/**
 * Parses and validates the header of an open safetensors file. Tensors for which `skip(name)` is true
 * are left out without validation. Throws `SafetensorsHeaderError`, `UnsupportedDTypeError`,
 * `TensorByteSizeError` or `TruncatedCheckpointError`, each naming `file`.
 */
export function readSafetensorsHeader(
  fd: number,
  file: string,
  fileSize: number,
  skip: (name: string) => boolean = () => false,
): SafetensorsEntry[] {
  if (fileSize < 8) {
    throw new SafetensorsHeaderError(
      file,
      null,
      `has ${fileSize} bytes, too few for a safetensors header length`,
    );
  }
  const lenBytes = new Uint8Array(8);
  readFully(fd, lenBytes, 0);
  const headerLen = Number(Buffer.from(lenBytes.buffer).readBigUInt64LE(0));
  if (8 + headerLen > fileSize) {
    throw new SafetensorsHeaderError(
      file,
      null,
      `declares a ${headerLen}-byte header, which lies beyond the end of the ${fileSize}-byte file ` +
        '(not a safetensors file, or truncated)',
    );
  }
  if (headerLen > MAX_HEADER_BYTES) {
    throw new SafetensorsHeaderError(
      file,
      null,
      `declares a ${headerLen}-byte header; allowed: at most 100 MB`,
    );
  }
  const headerBytes = new Uint8Array(headerLen);
  readFully(fd, headerBytes, 8);
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(headerBytes.buffer).toString('utf8'));
  } catch (err) {
    throw new SafetensorsHeaderError(file, null, `has a malformed JSON header (${(err as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new SafetensorsHeaderError(file, null, 'has a header that is not a JSON object');
  }

  const dataStart = 8 + headerLen;
  const entries: SafetensorsEntry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__' || skip(name)) continue;
    if (typeof raw !== 'object' || raw === null) {
      throw new SafetensorsHeaderError(file, name, 'has a header entry that is not an object');
    }
    const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
    if (typeof dtype !== 'string') {
      throw new SafetensorsHeaderError(file, name, 'has no "dtype" string in its header entry');
    }
    if (!isShape(shape)) {
      throw new SafetensorsHeaderError(
        file,
        name,
        'has a "shape" that is not a list of non-negative integers',
      );
    }
    if (!isOffsets(offsets)) {
      throw new SafetensorsHeaderError(
        file,
        name,
        'has "data_offsets" that are not [begin, end] with 0 ≤ begin ≤ end',
      );
    }
    if (!(dtype in DTYPE_BYTES)) throw new UnsupportedDTypeError(file, name, dtype, SUPPORTED_DTYPES);
    const dt = dtype as TensorDType;
    const byteLength = offsets[1] - offsets[0];
    const expected = shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[dt];
    if (expected !== byteLength) throw new TensorByteSizeError(file, name, shape, dt, expected, byteLength);
    if (dataStart + offsets[1] > fileSize) {
      throw new TruncatedCheckpointError(file, name, dataStart + offsets[1], fileSize);
    }
    entries.push({ name, dtype: dt, shape, offset: dataStart + offsets[0], byteLength });
  }
  checkNoOverlap(file, entries);
  return entries;
}

/**
 * Refuses tensors whose byte ranges overlap: a crafted file could otherwise alias one tensor's bytes into
 * another (or make two names read the same memory). Empty tensors occupy no bytes and never overlap.
 */
function checkNoOverlap(file: string, entries: readonly SafetensorsEntry[]): void {
  const byStart = entries.filter((e) => e.byteLength > 0).sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < byStart.length; i++) {
    const prev = byStart[i - 1]!;
    const cur = byStart[i]!;
    if (cur.offset < prev.offset + prev.byteLength) {
      throw new SafetensorsHeaderError(
        file,
        cur.name,
        `has "data_offsets" that overlap those of tensor "${prev.name}" (bytes ${cur.offset}.. of the file ` +
          `lie inside ${prev.offset}..${prev.offset + prev.byteLength}); each tensor needs its own bytes`,
      );
    }
  }
}
