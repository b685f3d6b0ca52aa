// Test helpers of the loader tests: where the fixture checkpoints are, an independent reader of a
// safetensors header, a writer of small safetensors files, temporary folders, and an error assertion.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The fixture model folders (tests run from dist/test/loader, fixtures stay in test/fixtures). */
export const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));
export const V2_LITE_TINY = join(FIXTURES, 'v2-lite-tiny');
export const V2_TINY = join(FIXTURES, 'v2-tiny');
export const ASSET_CONFIGS = fileURLToPath(new URL('../../../assets/configs/', import.meta.url));

export interface HeaderEntry {
  readonly dtype: string;
  readonly shape: number[];
  readonly data_offsets: [number, number];
}

/** Parses a safetensors file's header directly (8-byte LE length, then JSON), without the loader. */
export function readHeader(path: string): { headerLen: number; entries: Record<string, HeaderEntry> } {
  const bytes = readFileSync(path);
  const headerLen = Number(bytes.readBigUInt64LE(0));
  const json = JSON.parse(bytes.subarray(8, 8 + headerLen).toString('utf8')) as Record<string, unknown>;
  delete json.__metadata__;
  return { headerLen, entries: json as Record<string, HeaderEntry> };
}

/** One tensor to write: its dtype name and shape, and its raw little-endian bytes. */
export interface TensorBytes {
  readonly name: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly data: Uint8Array;
}

/** Encodes tensors as a safetensors file (offsets in the given order). */
export function encodeSafetensors(tensors: readonly TensorBytes[]): Buffer {
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.length] };
    offset += t.data.length;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, ...tensors.map((t) => Buffer.from(t.data))]);
}

/** The tensors of a safetensors file with their raw bytes, in file order. */
export function decodeSafetensors(path: string): TensorBytes[] {
  const bytes = readFileSync(path);
  const { headerLen, entries } = readHeader(path);
  const start = 8 + headerLen;
  return Object.entries(entries)
    .sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0])
    .map(([name, e]) => ({
      name,
      dtype: e.dtype,
      shape: e.shape,
      data: new Uint8Array(bytes.subarray(start + e.data_offsets[0], start + e.data_offsets[1])),
    }));
}

/** Runs `fn` with a fresh temporary folder, removed afterwards. */
export function withTempDir<T>(fn: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'duet-loader-'));
  try {
    return fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes a JSON file. */
export function writeJson(path: string, value: unknown): void {
  writeFileSync(path, JSON.stringify(value, null, 2));
}

/** A fixture's config.json as a plain object (a fresh copy each call). */
export function fixtureConfigJson(dir: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
}

/** Asserts `fn` throws an error of class `cls` whose message contains every string in `parts`. */
export function expectError(
  fn: () => unknown,
  cls: abstract new (...args: never[]) => Error,
  parts: readonly string[],
): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof cls, `expected ${cls.name}, got ${String(err)}`);
    for (const p of parts) assert.ok(err.message.includes(p), `"${err.message}" lacks "${p}"`);
    return true;
  });
}
