// The oneDNN platform's prepared-weight cache (Duet's PreparedWeightCache contract): one file per
// checkpoint, settings and rank holding every linear weight as oneDNN reordered it. A first load packs the
// weights as always and writes their bytes; a later load with the same key maps the file (copy-on-write,
// private, its pages entered at once from the page cache) and makes the weights over the mapping: no
// reading, no packing, no fresh memory. The file is checked before any of it is used, and a file that
// fails a check is rebuilt, never used (docs/platforms.md, "Weight cache").
//
// The file, in order:
//   packed weights   each at a 4096-byte aligned offset, `bytes` long, as writePacked wrote them; and the
//                    float tensors kept as read (the embedding table), as read
//   aux              the small per-weight arrays (int8 row sums, scales, biases), 4-byte aligned
//   index            JSON: the format, the key, and per weight (or tensor) its id, kind, shape, place,
//                    checksum (of a sample: see the addon's sampledChecksum) and arrays
//   trailer          TRAILER_BYTES: magic, offsets and lengths of aux and index, the end of the packed
//                    weights, and the SHA-256 of aux and index

import { createHash } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import {
  type NativeAddon,
  type NativeContext,
  NativeKind,
  type NativeMapping,
  type NativeWeight,
} from './addon.js';
import type {
  Int8LinearData,
  LinearWeight,
  PreparedWeightCache,
  RawWeight,
  WeightCacheKey,
  WeightCacheNotice,
} from './duet.js';

/** The version of the file layout; part of the key. */
const FORMAT = 1;
const MAGIC = 'DUETWC01';
/** magic (8) | aux offset, aux length, index offset, index length, packed end (5 × u64) | SHA-256 (32). */
const TRAILER_BYTES = 8 + 5 * 8 + 32;
/** Packed weights start on page boundaries, so each lies in whole pages of the mapping. */
const ALIGN = 4096;

/** A weight as the oneDNN kernels hold it, for the cache to write or to make over the mapping. */
export interface CachedWeightParts {
  readonly handle: NativeWeight;
  readonly kind: NativeKind;
  readonly n: number;
  readonly k: number;
  /** Int8 only. */
  readonly scheme?: Int8LinearData['scheme'];
}

/** What the cache needs of the oneDNN kernels. */
export interface WeightCacheHost {
  readonly addon: NativeAddon;
  readonly ctx: NativeContext;
  /** The kernel set's own parts of the key (versions, instruction set, build, threads). */
  readonly platformKey: Readonly<Record<string, unknown>>;
  /** A weight's parts, or null when the weight is not a native oneDNN weight (it cannot be cached). */
  partsOf(w: LinearWeight): CachedWeightParts | null;
  /** The kernel set's weight over native weight `parts`. */
  wrap(parts: CachedWeightParts): LinearWeight;
}

/** A byte range of the aux section: [offset, length in elements]. */
type AuxRange = readonly [number, number];

/** A float tensor kept as read. */
interface TensorEntry {
  readonly id: string;
  readonly tensor: 'bf16' | 'f32';
  readonly length: number;
  readonly offset: number;
  readonly bytes: number;
  readonly checksum: string;
}

interface IndexEntry {
  readonly id: string;
  readonly kind: NativeKind;
  readonly n: number;
  readonly k: number;
  readonly offset: number;
  readonly bytes: number;
  readonly checksum: string;
  readonly scheme?:
    | { readonly kind: 'dynamic'; readonly weightScale: AuxRange; readonly wsum: AuxRange }
    | {
        readonly kind: 'static';
        readonly inputScale: number;
        readonly inputOffset: number;
        readonly quantBias: AuxRange;
        readonly deqScale: AuxRange;
        readonly wsum: AuxRange;
      };
}

interface CacheIndex {
  readonly format: number;
  /** The key, as JSON: compared as a string. */
  readonly key: string;
  readonly entries: readonly IndexEntry[];
  readonly tensors: readonly TensorEntry[];
}

/**
 * Opens the cache in `dir` for `key`: reading when a valid file for exactly this key is there, writing a
 * new one when not (a one-line notice says why), neither when the folder cannot be written (a warning).
 */
export function openOnednnWeightCache(
  host: WeightCacheHost,
  dir: string,
  key: WeightCacheKey,
): PreparedWeightCache {
  // The file's name: the key without the checkpoint's stamps, so that a changed checkpoint finds its old
  // file (and replaces it) rather than leaving it behind.
  const place = JSON.stringify({
    format: FORMAT,
    settings: key.settings,
    files: key.files.map((f) => f.path),
  });
  const path = join(dir, `duet-onednn-weights-${sha256(place).slice(0, 16)}.bin`);
  const fullKey = JSON.stringify({ format: FORMAT, platform: host.platformKey, ...key });
  const read = tryReadCache(host, path, fullKey);
  if ('cache' in read) return read.cache;
  return openWriter(host, dir, path, fullKey, read.reason);
}

function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

// ---- Reading ----

/** The cache file at `path` for `fullKey`, checked whole; or why it cannot be used. */
function tryReadCache(
  host: WeightCacheHost,
  path: string,
  fullKey: string,
): { cache: PreparedWeightCache } | { reason: string } {
  try {
    if (statSync(path, { throwIfNoEntry: false }) === undefined) return { reason: 'no cache file yet' };
  } catch (e) {
    return { reason: `the cache file cannot be read (${(e as Error).message})` };
  }
  let index: CacheIndex;
  let aux: Buffer;
  let packedEnd: number;
  try {
    ({ index, aux, packedEnd } = readIndex(path));
  } catch (e) {
    return { reason: `the cache file is unusable (${(e as Error).message})` };
  }
  if (index.format !== FORMAT) return { reason: `the cache file has format ${index.format}, not ${FORMAT}` };
  if (index.key !== fullKey) return { reason: `the key changed (${keyDifference(index.key, fullKey)})` };
  const file = host.addon.mapFile(path);
  if (typeof file === 'string') return { reason: `the cache file cannot be mapped (${file})` };
  let problem: string | null;
  try {
    problem = checkEntries(host, file, index, packedEnd, aux);
  } catch (e) {
    // An entry the addon refuses (a kind or shape out of range): a file of another writer.
    problem = (e as Error).message;
  }
  if (problem !== null) {
    host.addon.unmap(file);
    return { reason: `the cache file is corrupt (${problem})` };
  }
  return { cache: new CacheReader(host, file, index, aux, path) };
}

/** Reads and checks the trailer, aux and index of a cache file (an Error saying what is wrong otherwise). */
function readIndex(path: string): { index: CacheIndex; aux: Buffer; packedEnd: number } {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size < TRAILER_BYTES) throw new Error(`${size} bytes, shorter than its trailer`);
    const t = Buffer.alloc(TRAILER_BYTES);
    readFully(fd, t, size - TRAILER_BYTES);
    if (t.toString('latin1', 0, 8) !== MAGIC)
      throw new Error('no trailer: the file was cut short or is not a cache');
    const [auxOffset, auxLength, indexOffset, indexLength, packedEnd] = [0, 1, 2, 3, 4].map((i) =>
      Number(t.readBigUInt64LE(8 + 8 * i)),
    ) as [number, number, number, number, number];
    const end = size - TRAILER_BYTES;
    if (
      !(packedEnd <= auxOffset && auxOffset + auxLength === indexOffset && indexOffset + indexLength === end)
    ) {
      throw new Error('its sections do not add up to its size (cut short or extended)');
    }
    const body = Buffer.alloc(auxLength + indexLength);
    readFully(fd, body, auxOffset);
    if (sha256(body) !== t.toString('hex', 48, 80)) throw new Error('its index or scales fail their SHA-256');
    const index = JSON.parse(body.toString('utf8', auxLength)) as CacheIndex;
    if (typeof index?.key !== 'string' || !Array.isArray(index.entries) || !Array.isArray(index.tensors)) {
      throw new Error('its index lacks a key, weights or tensors');
    }
    return { index, aux: body.subarray(0, auxLength), packedEnd };
  } finally {
    closeSync(fd);
  }
}

function readFully(fd: number, into: Buffer, position: number): void {
  let done = 0;
  while (done < into.length) {
    const r = readSync(fd, into, done, into.length - done, position + done);
    if (r === 0) throw new Error('unexpected end of file');
    done += r;
  }
}

/** Names the first part of the key that differs (for the notice). */
function keyDifference(was: string, now: string): string {
  let a: Record<string, unknown>;
  let b: Record<string, unknown>;
  try {
    a = JSON.parse(was) as Record<string, unknown>;
    b = JSON.parse(now) as Record<string, unknown>;
  } catch {
    return 'unreadable key';
  }
  for (const part of ['platform', 'files', 'settings']) {
    const x = (a[part] ?? {}) as Record<string, unknown>;
    const y = (b[part] ?? {}) as Record<string, unknown>;
    if (JSON.stringify(x) === JSON.stringify(y)) continue;
    if (part === 'files') return 'the checkpoint files changed (path, size or modification time)';
    const field = Object.keys({ ...x, ...y }).find((f) => JSON.stringify(x[f]) !== JSON.stringify(y[f]));
    return `${part} ${field ?? ''}`.trim();
  }
  return 'the file format';
}

/**
 * Checks every entry against the file: its place (aligned, within the packed weights), oneDNN's size
 * for its shape here, its arrays within aux, and the checksum of its bytes. Null when all hold.
 */
function checkEntries(
  host: WeightCacheHost,
  file: NativeMapping,
  index: CacheIndex,
  packedEnd: number,
  aux: Buffer,
): string | null {
  const ids = new Set<string>();
  for (const t of index.tensors) {
    if (ids.has(t.id)) return `tensor ${t.id} appears twice`;
    ids.add(t.id);
    if (t.offset % ALIGN !== 0 || t.offset + t.bytes > packedEnd)
      return `tensor ${t.id} lies outside its section`;
    if (t.bytes !== t.length * (t.tensor === 'bf16' ? 2 : 4)) return `tensor ${t.id} has the wrong size`;
    if (host.addon.checksum(file, t.offset, t.bytes) !== t.checksum)
      return `tensor ${t.id} fails its checksum`;
  }
  for (const e of index.entries) {
    if (ids.has(e.id)) return `weight ${e.id} appears twice`;
    ids.add(e.id);
    if (e.offset % ALIGN !== 0 || e.offset + e.bytes > packedEnd)
      return `weight ${e.id} lies outside its section`;
    if (host.ctx.packedSize(e.kind, e.n, e.k) !== e.bytes) return `weight ${e.id} has another size here`;
    const s = e.scheme;
    const ranges: AuxRange[] =
      s === undefined
        ? []
        : s.kind === 'dynamic'
          ? [s.weightScale, s.wsum]
          : [s.quantBias, s.deqScale, s.wsum];
    for (const [o, len] of ranges) {
      if (o % 4 !== 0 || len !== e.n || o + 4 * len > aux.length)
        return `weight ${e.id}'s scales lie outside aux`;
    }
    if ((e.kind === NativeKind.int8) !== (e.scheme !== undefined))
      return `weight ${e.id}'s scheme does not fit its kind`;
    if (host.addon.checksum(file, e.offset, e.bytes) !== e.checksum)
      return `weight ${e.id} fails its checksum`;
  }
  return null;
}

/** A cache whose file holds every weight: lookups make weights over the mapping. */
class CacheReader implements PreparedWeightCache {
  readonly notice: WeightCacheNotice;
  private readonly byId: Map<string, IndexEntry>;
  private readonly tensorsById: Map<string, TensorEntry>;
  private file: NativeMapping | null;

  constructor(
    private readonly host: WeightCacheHost,
    file: NativeMapping,
    index: CacheIndex,
    private readonly aux: Buffer,
    path: string,
  ) {
    this.file = file;
    this.byId = new Map(index.entries.map((e) => [e.id, e]));
    this.tensorsById = new Map(index.tensors.map((t) => [t.id, t]));
    const gib = host.addon.mappedSize(file) / 2 ** 30;
    this.notice = {
      level: 'info',
      message: `weight cache: mapping ${index.entries.length} weights and ${index.tensors.length} tensors (${gib.toFixed(2)} GiB) from ${path}`,
    };
  }

  lookupTensor(id: string, length: number): RawWeight | null {
    const t = this.tensorsById.get(id);
    if (t === undefined || t.length !== length || this.file === null) return null;
    const bytes = this.host.addon.view(this.file, t.offset, t.bytes);
    return t.tensor === 'bf16'
      ? { dtype: 'bf16', data: new Uint16Array(bytes) }
      : { dtype: 'f32', data: new Float32Array(bytes) };
  }

  storeTensor(): void {}

  lookup(id: string, n: number, k: number): LinearWeight | null {
    const e = this.byId.get(id);
    if (e === undefined || e.n !== n || e.k !== k || this.file === null) return null;
    const s = e.scheme;
    const wsum = s === undefined ? null : this.ints(s.wsum);
    const handle = this.host.ctx.adopt(this.file, e.offset, e.bytes, e.kind, n, k, wsum);
    let scheme: Int8LinearData['scheme'] | undefined;
    if (s?.kind === 'dynamic') scheme = { kind: 'dynamic', weightScale: this.floats(s.weightScale) };
    else if (s?.kind === 'static') {
      scheme = {
        kind: 'static',
        inputScale: s.inputScale,
        inputOffset: s.inputOffset,
        quantBias: this.ints(s.quantBias),
        deqScale: this.floats(s.deqScale),
      };
    }
    return this.host.wrap({ handle, kind: e.kind, n, k, ...(scheme ? { scheme } : {}) });
  }

  store(): void {
    // Every weight the loader had to read itself was one the file lacks: nothing is written while reading.
  }

  commit(): WeightCacheNotice | null {
    this.release();
    return null;
  }

  abandon(): void {
    this.release();
  }

  /** Drops this cache's share of the mapping (the weights made over it keep theirs). */
  private release(): void {
    if (this.file !== null) this.host.addon.unmap(this.file);
    this.file = null;
  }

  private floats(range: AuxRange): Float32Array {
    return new Float32Array(this.copyOf(range));
  }

  private ints(range: AuxRange): Int32Array {
    return new Int32Array(this.copyOf(range));
  }

  /** A copy of an aux range's bytes (4-byte elements), for an array the weight keeps. */
  private copyOf([o, len]: AuxRange): ArrayBufferLike {
    return this.aux.buffer.slice(this.aux.byteOffset + o, this.aux.byteOffset + o + 4 * len);
  }
}

// ---- Writing ----

/** A cache file being written, or (`warning`) why none can be. */
function openWriter(
  host: WeightCacheHost,
  dir: string,
  path: string,
  fullKey: string,
  why: string,
): PreparedWeightCache {
  // Its own temporary name per process and thread (ranks load on worker threads of one process).
  const temp = `${path}.${process.pid}-${threadId}.tmp`;
  try {
    mkdirSync(dir, { recursive: true });
    const fd = openSync(temp, 'w', 0o644);
    return new CacheWriter(host, fd, temp, path, fullKey, why);
  } catch (e) {
    return new NoCache({
      level: 'warn',
      message: `weight cache: cannot write in ${dir} (${(e as Error).message}); loading without it`,
    });
  }
}

/** Packs nothing and keeps nothing: the load goes on as without a cache. */
class NoCache implements PreparedWeightCache {
  constructor(readonly notice: WeightCacheNotice) {}
  lookup(): null {
    return null;
  }
  store(): void {}
  lookupTensor(): null {
    return null;
  }
  storeTensor(): void {}
  commit(): null {
    return null;
  }
  abandon(): void {}
}

/** Appends each stored weight's bytes to a temporary file; `commit` completes it and moves it in place. */
class CacheWriter implements PreparedWeightCache {
  readonly notice: WeightCacheNotice;
  private fd: number | null;
  private position = 0;
  private readonly entries: IndexEntry[] = [];
  private readonly tensors: TensorEntry[] = [];
  private readonly auxParts: Uint8Array[] = [];
  private auxLength = 0;
  /** Why the file will not be completed (a weight that cannot be cached, a failed write), or null. */
  private failure: string | null = null;
  private readonly started = performance.now();

  constructor(
    private readonly host: WeightCacheHost,
    fd: number,
    private readonly temp: string,
    private readonly path: string,
    private readonly fullKey: string,
    why: string,
  ) {
    this.fd = fd;
    this.notice = { level: 'info', message: `weight cache: ${why}; packing and writing ${path}` };
  }

  lookup(): null {
    return null;
  }

  lookupTensor(): null {
    return null;
  }

  storeTensor(id: string, raw: RawWeight): void {
    if (this.fd === null || this.failure !== null) return;
    try {
      const bytes = new Uint8Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength);
      const offset = Math.ceil(this.position / ALIGN) * ALIGN;
      writeFully(this.fd, bytes, offset);
      this.position = offset + bytes.length;
      const checksum = this.host.addon.checksumOf(bytes);
      this.tensors.push({
        id,
        tensor: raw.dtype,
        length: raw.data.length,
        offset,
        bytes: bytes.length,
        checksum,
      });
    } catch (e) {
      this.failure = `writing tensor ${id} failed: ${(e as Error).message}`;
    }
  }

  store(id: string, weight: LinearWeight): void {
    if (this.fd === null || this.failure !== null) return;
    const parts = this.host.partsOf(weight);
    if (parts === null) {
      this.failure = `weight ${id} is not held by oneDNN here`;
      return;
    }
    try {
      const offset = Math.ceil(this.position / ALIGN) * ALIGN;
      const bytes = this.host.ctx.packedSize(parts.kind, parts.n, parts.k);
      const checksum = this.host.ctx.writePacked(parts.handle, this.fd, offset);
      this.position = offset + bytes;
      const s = parts.scheme;
      const base = { id, kind: parts.kind, n: parts.n, k: parts.k, offset, bytes, checksum };
      if (s === undefined) this.entries.push(base);
      else {
        const wsum = this.addAux(this.host.ctx.int8RowSums(parts.handle));
        this.entries.push({
          ...base,
          scheme:
            s.kind === 'dynamic'
              ? { kind: 'dynamic', weightScale: this.addAux(s.weightScale), wsum }
              : {
                  kind: 'static',
                  inputScale: s.inputScale,
                  inputOffset: s.inputOffset,
                  quantBias: this.addAux(s.quantBias),
                  deqScale: this.addAux(s.deqScale),
                  wsum,
                },
        });
      }
    } catch (e) {
      this.failure = `writing weight ${id} failed: ${(e as Error).message}`;
    }
  }

  private addAux(a: Float32Array | Int32Array): AuxRange {
    const range: AuxRange = [this.auxLength, a.length];
    this.auxParts.push(new Uint8Array(a.buffer, a.byteOffset, a.byteLength).slice());
    this.auxLength += a.byteLength;
    return range;
  }

  commit(): WeightCacheNotice | null {
    if (this.fd === null) return null;
    if (this.failure !== null) {
      const notice: WeightCacheNotice = {
        level: 'warn',
        message: `weight cache: not written (${this.failure}); the next load packs again`,
      };
      this.abandon();
      return notice;
    }
    try {
      const fd = this.fd;
      const index = Buffer.from(
        JSON.stringify({
          format: FORMAT,
          key: this.fullKey,
          entries: this.entries,
          tensors: this.tensors,
        } satisfies CacheIndex),
        'utf8',
      );
      const auxOffset = Math.ceil(this.position / 8) * 8;
      const aux = Buffer.concat(this.auxParts, this.auxLength);
      const trailer = Buffer.alloc(TRAILER_BYTES);
      trailer.write(MAGIC, 0, 'latin1');
      const numbers = [auxOffset, aux.length, auxOffset + aux.length, index.length, this.position];
      numbers.forEach((v, i) => trailer.writeBigUInt64LE(BigInt(v), 8 + 8 * i));
      createHash('sha256').update(aux).update(index).digest().copy(trailer, 48);
      writeFully(fd, aux, auxOffset);
      writeFully(fd, index, auxOffset + aux.length);
      writeFully(fd, trailer, auxOffset + aux.length + index.length);
      // On disk before it takes the cache's name: a crash never leaves a complete-looking file of zeros.
      fsyncSync(fd);
      closeSync(fd);
      this.fd = null;
      renameSync(this.temp, this.path);
    } catch (e) {
      const notice: WeightCacheNotice = {
        level: 'warn',
        message: `weight cache: not written (${(e as Error).message}); the next load packs again`,
      };
      this.abandon();
      return notice;
    }
    const gib = this.position / 2 ** 30;
    const s = (performance.now() - this.started) / 1000;
    return {
      level: 'info',
      message: `weight cache: wrote ${this.entries.length} weights and ${this.tensors.length} tensors (${gib.toFixed(2)} GiB) to ${this.path} during a ${s.toFixed(1)} s load`,
    };
  }

  abandon(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
    try {
      unlinkSync(this.temp);
    } catch {
      // Already gone.
    }
  }
}

function writeFully(fd: number, data: Uint8Array, position: number): void {
  let done = 0;
  while (done < data.length) done += writeSync(fd, data, done, data.length - done, position + done);
}
