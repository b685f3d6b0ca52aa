// GGUF, the file format of llama.cpp (spec: ggml's docs/gguf.md), written and read for the benchmark against
// llama.cpp: a header (magic "GGUF", version 3, tensor and metadata counts), typed key/value metadata,
// tensor descriptors (name, dimensions innermost first, ggml type, offset), then the tensor data, each
// tensor starting on a multiple of `general.alignment` (32) from the data section's start. All integers
// little-endian. The writer streams: descriptors first, then one tensor at a time, so a file of many GB is
// written holding one tensor in memory. The reader parses the header and descriptors (tests, checks).

import { closeSync, openSync, readSync, writeSync } from 'node:fs';

/** GGUF metadata value types (gguf_metadata_value_type). */
export const GgufValueType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12,
} as const;

/** The ggml tensor types this writer produces (ggml_type). */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
export type GgmlTypeName = keyof typeof GgmlType;

/** Q8_0: blocks of 32 values, each an f16 scale then 32 int8 (34 bytes). */
export const Q8_0_BLOCK = 32;
export const Q8_0_BLOCK_BYTES = 34;

/** One metadata value: scalars with their type, strings, or arrays of one scalar type or of strings. */
export type GgufValue =
  | { readonly type: 'u32' | 'i32' | 'f32' | 'u64' | 'u8'; readonly value: number }
  | { readonly type: 'bool'; readonly value: boolean }
  | { readonly type: 'string'; readonly value: string }
  | { readonly type: 'array'; readonly items: 'i32' | 'f32' | 'u32'; readonly value: readonly number[] }
  | { readonly type: 'array'; readonly items: 'string'; readonly value: readonly string[] };

/** One tensor: its name, its dimensions in ggml order (innermost, contiguous dimension first), its type. */
export interface GgufTensorInfo {
  readonly name: string;
  readonly dims: readonly number[];
  readonly type: GgmlTypeName;
}

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
export const GGUF_ALIGNMENT = 32;

/** The bytes of a tensor of `dims` in `type` (Q8_0 needs dims[0] to be a multiple of 32). */
export function tensorBytes(dims: readonly number[], type: GgmlTypeName): number {
  const n = dims.reduce((a, b) => a * b, 1);
  switch (type) {
    case 'F32':
      return n * 4;
    case 'F16':
    case 'BF16':
      return n * 2;
    case 'Q8_0':
      if ((dims[0] ?? 0) % Q8_0_BLOCK !== 0) {
        throw new RangeError(`Q8_0 needs a row length that is a multiple of 32; got [${dims.join(', ')}]`);
      }
      return (n / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
  }
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/** Encodes the header, metadata and tensor descriptors; returns them and each tensor's data offset. */
export function encodeGgufHeader(
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly GgufTensorInfo[],
): { header: Buffer; offsets: number[]; dataBytes: number } {
  const parts: Buffer[] = [];
  const u32 = (v: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    parts.push(b);
  };
  const u64 = (v: number) => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    parts.push(b);
  };
  const str = (s: string) => {
    const bytes = Buffer.from(s, 'utf8');
    u64(bytes.length);
    parts.push(bytes);
  };
  const scalar = (type: 'u32' | 'i32' | 'f32' | 'u64' | 'u8', v: number) => {
    const b = Buffer.alloc(type === 'u64' ? 8 : type === 'u8' ? 1 : 4);
    if (type === 'u32') b.writeUInt32LE(v);
    else if (type === 'i32') b.writeInt32LE(v);
    else if (type === 'f32') b.writeFloatLE(v);
    else if (type === 'u8') b.writeUInt8(v);
    else b.writeBigUInt64LE(BigInt(v));
    parts.push(b);
  };
  const typeCode = {
    u8: GgufValueType.UINT8,
    u32: GgufValueType.UINT32,
    i32: GgufValueType.INT32,
    f32: GgufValueType.FLOAT32,
    u64: GgufValueType.UINT64,
    string: GgufValueType.STRING,
  } as const;

  u32(GGUF_MAGIC);
  u32(GGUF_VERSION);
  u64(tensors.length);
  u64(metadata.size);
  for (const [key, v] of metadata) {
    str(key);
    switch (v.type) {
      case 'bool':
        u32(GgufValueType.BOOL);
        parts.push(Buffer.from([v.value ? 1 : 0]));
        break;
      case 'string':
        u32(GgufValueType.STRING);
        str(v.value);
        break;
      case 'array':
        u32(GgufValueType.ARRAY);
        u32(typeCode[v.items]);
        u64(v.value.length);
        if (v.items === 'string') for (const s of v.value as readonly string[]) str(s);
        else for (const x of v.value as readonly number[]) scalar(v.items, x);
        break;
      default:
        u32(typeCode[v.type]);
        scalar(v.type, v.value);
    }
  }
  const offsets: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    str(t.name);
    u32(t.dims.length);
    for (const d of t.dims) u64(d);
    u32(GgmlType[t.type]);
    u64(offset);
    offsets.push(offset);
    offset = alignUp(offset + tensorBytes(t.dims, t.type), GGUF_ALIGNMENT);
  }
  const body = Buffer.concat(parts);
  const header = Buffer.concat([body, Buffer.alloc(alignUp(body.length, GGUF_ALIGNMENT) - body.length)]);
  return { header, offsets, dataBytes: offset };
}

/**
 * Writes a GGUF file: `tensors` in order, the data of each from `data(i)` (exactly `tensorBytes` bytes),
 * called once per tensor in order, so only one tensor is held at a time.
 */
export function writeGguf(
  path: string,
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly GgufTensorInfo[],
  data: (index: number) => Uint8Array,
): void {
  const { header, offsets } = encodeGgufHeader(metadata, tensors);
  const fd = openSync(path, 'w');
  try {
    let at = 0;
    const write = (bytes: Uint8Array) => {
      for (let done = 0; done < bytes.length; )
        done += writeSync(fd, bytes, done, bytes.length - done, at + done);
      at += bytes.length;
    };
    write(header);
    const dataStart = header.length;
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i]!;
      const bytes = data(i);
      const expected = tensorBytes(t.dims, t.type);
      if (bytes.length !== expected) {
        throw new RangeError(`tensor "${t.name}": ${bytes.length} bytes given, ${expected} expected`);
      }
      const pad = dataStart + offsets[i]! - at;
      if (pad > 0) write(new Uint8Array(pad));
      write(bytes);
    }
    const end = alignUp(at - dataStart, GGUF_ALIGNMENT) + dataStart;
    if (end > at) write(new Uint8Array(end - at));
  } finally {
    closeSync(fd);
  }
}

/** A parsed GGUF header: metadata as plain values, tensor descriptors with absolute file offsets. */
export interface GgufHeader {
  readonly version: number;
  readonly metadata: Map<string, unknown>;
  readonly tensors: (GgufTensorInfo & { readonly fileOffset: number })[];
  readonly dataStart: number;
}

const TYPE_NAMES = new Map<number, GgmlTypeName>(
  Object.entries(GgmlType).map(([k, v]) => [v, k as GgmlTypeName]),
);

/** Reads the header and tensor descriptors of a GGUF file (its first `maxHeaderBytes`). */
export function readGgufHeader(path: string, maxHeaderBytes = 64 * 2 ** 20): GgufHeader {
  const fd = openSync(path, 'r');
  const buf = Buffer.alloc(maxHeaderBytes);
  let len: number;
  try {
    len = readSync(fd, buf, 0, maxHeaderBytes, 0);
  } finally {
    closeSync(fd);
  }
  let at = 0;
  /** Advances over `n` bytes; returns where they start. */
  const take = (n: number) => {
    if (at + n > len) throw new RangeError(`GGUF header of ${path} ends early at byte ${at}`);
    at += n;
    return at - n;
  };
  const u32 = () => buf.readUInt32LE(take(4));
  const u64 = () => Number(buf.readBigUInt64LE(take(8)));
  const str = () => {
    const n = u64();
    const from = take(n);
    return buf.toString('utf8', from, from + n);
  };
  const value = (type: number): unknown => {
    switch (type) {
      case GgufValueType.UINT8:
        return buf.readUInt8(take(1));
      case GgufValueType.INT8:
        return buf.readInt8(take(1));
      case GgufValueType.UINT16:
        return buf.readUInt16LE(take(2));
      case GgufValueType.INT16:
        return buf.readInt16LE(take(2));
      case GgufValueType.UINT32:
        return u32();
      case GgufValueType.INT32:
        return buf.readInt32LE(take(4));
      case GgufValueType.FLOAT32:
        return buf.readFloatLE(take(4));
      case GgufValueType.BOOL:
        return buf[take(1)] !== 0;
      case GgufValueType.STRING:
        return str();
      case GgufValueType.UINT64:
      case GgufValueType.INT64:
        return u64();
      case GgufValueType.FLOAT64:
        return buf.readDoubleLE(take(8));
      case GgufValueType.ARRAY: {
        const itemType = u32();
        const n = u64();
        return Array.from({ length: n }, () => value(itemType));
      }
      default:
        throw new RangeError(`GGUF metadata value type ${type} is unknown`);
    }
  };
  if (u32() !== GGUF_MAGIC) throw new RangeError(`${path} is not a GGUF file (bad magic)`);
  const version = u32();
  const numTensors = u64();
  const numKv = u64();
  const metadata = new Map<string, unknown>();
  for (let i = 0; i < numKv; i++) {
    const key = str();
    metadata.set(key, value(u32()));
  }
  const raw: { name: string; dims: number[]; type: GgmlTypeName; offset: number }[] = [];
  for (let i = 0; i < numTensors; i++) {
    const name = str();
    const nDims = u32();
    const dims = Array.from({ length: nDims }, () => u64());
    const code = u32();
    const type = TYPE_NAMES.get(code);
    if (type === undefined) throw new RangeError(`tensor "${name}" has ggml type ${code}, unknown here`);
    raw.push({ name, dims, type, offset: u64() });
  }
  const alignment = (metadata.get('general.alignment') as number | undefined) ?? GGUF_ALIGNMENT;
  const dataStart = alignUp(at, alignment);
  return {
    version,
    metadata,
    tensors: raw.map((t) => ({ name: t.name, dims: t.dims, type: t.type, fileOffset: dataStart + t.offset })),
    dataStart,
  };
}
