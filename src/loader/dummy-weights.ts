// Seeded dummy weights (`--load-format dummy`): exactly the tensors a model lists (its `CheckpointLayout`),
// generated on each read, deterministically from the seed and the tensor name, scaled so that a model
// stays numerically sane through many layers. Used to run and benchmark real model shapes without a checkpoint.
//
// Every tensor is uniform on [center - amplitude, center + amplitude], quantised to bfloat16 through a
// 65,536-entry lookup table: each 32-bit draw of a xorshift32 stream gives two elements. The stream is
// reseeded every CHUNK elements from (seed, tensor name, chunk index). An f32 source returns exactly the
// values of the bf16 source, expanded, so a model sees the same weights in either precision.
//
// Blocks (`readBlock`) are generated alone: xorshift32 is linear over GF(2), so the state k draws into a
// chunk is the chunk's seed times the matrix T^k, found from the precomputed powers T^(2^i); a block costs
// about its own size, however much of the tensor lies between its rows.

import type { RawWeight } from '../kernels/kernels.js';
import { fmix32 } from '../util/fmix32.js';
import { f32BitsToBf16 } from './half-float.js';
import { numElements, type TensorSpec } from './tensor-specs.js';
import {
  checkBlock,
  MissingTensorError,
  type Slice,
  sameShape,
  type TensorInfo,
  TensorShapeError,
  type WeightSource,
} from './weight-source.js';

/** Options of a `DummyWeightSource`. */
export interface DummyWeightOptions {
  /** Any safe integer; the same seed gives the same weights. */
  readonly seed: number;
  /** The dtype tensors are returned in. */
  readonly dtype: 'bf16' | 'f32';
}

/** The distribution of one dummy tensor: uniform on [center - amplitude, center + amplitude]. */
export interface DummyInit {
  readonly center: number;
  readonly amplitude: number;
}

/** log2 of CHUNK. */
const CHUNK_BITS = 16;
/** Elements per independently seeded chunk (even, so chunks start 4-byte aligned in a Uint16Array). */
const CHUNK = 1 << CHUNK_BITS;

/**
 * How a tensor is initialised. RMSNorm weights: 1 ± 1/16. The e_score_correction_bias: ±1/32 (a small
 * nudge to expert choice). Embeddings: std 1, the scale of a residual stream. Every other (linear) weight
 * [out, in]: std 1/sqrt(in), so each projection of a unit-RMS input keeps unit RMS and the router and
 * `lm_head` logits stay near N(0, 1): finite and far from saturating softmax or sigmoid.
 */
export function dummyInit(spec: TensorSpec): DummyInit {
  const { name, shape } = spec;
  if (name.endsWith('norm.weight')) return { center: 1, amplitude: 1 / 16 };
  if (name.endsWith('e_score_correction_bias')) return { center: 0, amplitude: 1 / 32 };
  if (name === 'model.embed_tokens.weight') return { center: 0, amplitude: Math.sqrt(3) };
  const fanIn = shape[shape.length - 1] ?? 1;
  // A uniform on [-a, a] has std a / sqrt(3).
  return { center: 0, amplitude: Math.sqrt(3 / Math.max(1, fanIn)) };
}

/** One step of the xorshift32 generator (shifts 13, 17, 5). */
function xorshift32(s: number): number {
  s ^= s << 13;
  s ^= s >>> 17;
  s ^= s << 5;
  return s;
}

/**
 * m · v over GF(2), for the 32×32 bit matrix stored as its 32 columns at m[at .. at + 32): column b is the
 * image of bit b.
 */
function applyColumns(m: Uint32Array, at: number, v: number): number {
  let out = 0;
  for (let b = at; v !== 0; b++, v >>>= 1) if ((v & 1) !== 0) out ^= m[b]!;
  return out;
}

/** Entries per jump matrix in byte-table form: the images of each value of each of the 4 input bytes. */
const JUMP_ENTRIES = 4 * 256;

/**
 * T^(2^i) for i = 0 .. CHUNK_BITS - 2, where T is one xorshift32 step: enough to jump to any of the
 * CHUNK / 2 draws of a chunk. Matrix i is entries [i · JUMP_ENTRIES, (i + 1) · JUMP_ENTRIES): for each
 * input byte k and value x, the image of x << 8k, so that applying it takes four lookups.
 */
function xorshiftJumpTable(): Uint32Array {
  const numPowers = CHUNK_BITS - 1;
  const columns = new Uint32Array(numPowers * 32);
  for (let b = 0; b < 32; b++) columns[b] = xorshift32(1 << b) >>> 0;
  for (let i = 1; i < numPowers; i++) {
    const prev = (i - 1) * 32;
    for (let b = 0; b < 32; b++) columns[i * 32 + b] = applyColumns(columns, prev, columns[prev + b]!) >>> 0;
  }
  const table = new Uint32Array(numPowers * JUMP_ENTRIES);
  for (let i = 0; i < numPowers; i++) {
    for (let k = 0; k < 4; k++) {
      const at = i * JUMP_ENTRIES + k * 256;
      // The image of x is that of x without its lowest set bit, plus that bit's column.
      for (let x = 1; x < 256; x++) {
        const low = x & -x;
        table[at + x] = (table[at + (x ^ low)]! ^ columns[i * 32 + k * 8 + 31 - Math.clz32(low)]!) >>> 0;
      }
    }
  }
  return table;
}

/** The xorshift32 state `draws` steps after `state` (draws < CHUNK / 2). */
function jumpAhead(jumps: Uint32Array, state: number, draws: number): number {
  let s = state;
  for (let at = 0; draws !== 0; at += JUMP_ENTRIES, draws >>>= 1) {
    if ((draws & 1) !== 0) {
      s =
        jumps[at + (s & 0xff)]! ^
        jumps[at + 256 + ((s >>> 8) & 0xff)]! ^
        jumps[at + 512 + ((s >>> 16) & 0xff)]! ^
        jumps[at + 768 + (s >>> 24)]!;
    }
  }
  return s;
}

/** FNV-1a hash of a string's UTF-16 code units. */
function hashName(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The lookup tables of one `DummyInit`: 65,536 evenly spaced quantiles, as bf16 bits and as float32. */
interface InitTable {
  readonly bf16: Uint16Array;
  readonly f32: Float32Array;
}

function buildTable(init: DummyInit): InitTable {
  const exact = new Float32Array(65536);
  const exactBits = new Uint32Array(exact.buffer);
  const bf16 = new Uint16Array(65536);
  for (let i = 0; i < 65536; i++) {
    // The midpoint of the i-th of 65,536 equal slices of [-1, 1].
    exact[i] = init.center + ((i + 0.5) / 32768 - 1) * init.amplitude;
    bf16[i] = f32BitsToBf16(exactBits[i]!);
  }
  const f32 = new Float32Array(65536);
  const f32Bits = new Uint32Array(f32.buffer);
  for (let i = 0; i < 65536; i++) f32Bits[i] = bf16[i]! << 16;
  return { bf16, f32 };
}

/**
 * A `WeightSource` of seeded dummy weights of the given tensors (a model's `CheckpointLayout.tensors`). Reads generate at about
 * 1 GB/s of bf16 on one core; nothing is kept between reads except the small lookup tables.
 */
export class DummyWeightSource implements WeightSource {
  private readonly specs: Map<string, TensorSpec>;
  private readonly tables = new Map<string, InitTable>();
  private readonly seedLo: number;
  private readonly seedHi: number;
  /** The xorshift32 jump matrices (see `xorshiftJumpTable`). */
  private readonly jumps = xorshiftJumpTable();

  constructor(
    tensors: readonly TensorSpec[],
    readonly options: DummyWeightOptions,
  ) {
    if (!Number.isSafeInteger(options.seed)) {
      throw new RangeError(`dummy weight seed ${options.seed} is not allowed; allowed: a safe integer`);
    }
    if (options.dtype !== 'bf16' && options.dtype !== 'f32') {
      throw new RangeError(
        `dummy weight dtype "${String(options.dtype)}" is not allowed; allowed: bf16, f32`,
      );
    }
    this.specs = new Map(tensors.map((s) => [s.name, s]));
    this.seedLo = options.seed >>> 0;
    this.seedHi = Math.floor(options.seed / 2 ** 32) >>> 0;
  }

  names(): readonly string[] {
    return [...this.specs.keys()];
  }

  has(name: string): boolean {
    return this.specs.has(name);
  }

  info(name: string): TensorInfo {
    const spec = this.spec(name);
    return { name, dtype: this.options.dtype === 'bf16' ? 'BF16' : 'F32', shape: spec.shape };
  }

  read(name: string, expectedShape?: readonly number[]): RawWeight {
    const spec = this.spec(name);
    if (expectedShape !== undefined && !sameShape(expectedShape, spec.shape)) {
      throw new TensorShapeError(name, expectedShape, spec.shape);
    }
    const table = this.table(dummyInit(spec));
    const n = numElements(spec.shape);
    const nameHash = hashName(name);
    if (this.options.dtype === 'bf16') {
      const data = new Uint16Array(n);
      for (let start = 0; start < n; start += CHUNK) {
        fillChunk16(
          data,
          start,
          Math.min(CHUNK, n - start),
          this.chunkSeed(nameHash, start / CHUNK),
          table.bf16,
        );
      }
      return { dtype: 'bf16', data };
    }
    const data = new Float32Array(n);
    for (let start = 0; start < n; start += CHUNK) {
      fillChunk32(
        data,
        start,
        Math.min(CHUNK, n - start),
        this.chunkSeed(nameHash, start / CHUNK),
        table.f32,
      );
    }
    return { dtype: 'f32', data };
  }

  readBlock(name: string, expectedShape: readonly [number, number], rows: Slice, cols?: Slice): RawWeight {
    const spec = this.spec(name);
    const c = checkBlock(name, expectedShape, spec.shape, rows, cols);
    const [R, C] = expectedShape;
    if (rows.count === R && c.count === C) return this.read(name);
    const table = this.table(dummyInit(spec));
    if (this.options.dtype === 'bf16') {
      const data = new Uint16Array(rows.count * c.count);
      this.fillBlock(data, table.bf16, name, C, rows, c);
      return { dtype: 'bf16', data };
    }
    const data = new Float32Array(rows.count * c.count);
    this.fillBlock(data, table.f32, name, C, rows, c);
    return { dtype: 'f32', data };
  }

  close(): void {}

  private spec(name: string): TensorSpec {
    const spec = this.specs.get(name);
    if (spec === undefined) throw new MissingTensorError(name, 'the dummy weights of this config');
    return spec;
  }

  private table(init: DummyInit): InitTable {
    const key = `${init.center}/${init.amplitude}`;
    let t = this.tables.get(key);
    if (t === undefined) {
      t = buildTable(init);
      this.tables.set(key, t);
    }
    return t;
  }

  /** out = the block `rows` × `cols` of tensor `name` ([R, C]), looked up in `table`. */
  private fillBlock<T extends Uint16Array | Float32Array>(
    out: T,
    table: T,
    name: string,
    C: number,
    rows: Slice,
    cols: Slice,
  ): void {
    const nameHash = hashName(name);
    // The block as ranges of the flattened tensor: one when it spans whole rows, else one per row.
    const whole = cols.count === C;
    const numRanges = whole ? Math.min(1, rows.count) : rows.count;
    const rangeLength = whole ? rows.count * C : cols.count;
    for (let i = 0; i < numRanges; i++) {
      const begin = (rows.start + i) * C + cols.start;
      // Each piece of the range that lies in one chunk starts from that chunk's seed, jumped ahead.
      for (let at = begin; at < begin + rangeLength; ) {
        const chunk = Math.floor(at / CHUNK);
        const end = Math.min(begin + rangeLength, (chunk + 1) * CHUNK);
        const state = this.chunkSeed(nameHash, chunk);
        fillRange(
          out,
          i * rangeLength + (at - begin),
          this.jumps,
          state,
          at - chunk * CHUNK,
          end - chunk * CHUNK,
          table,
        );
        at = end;
      }
    }
  }

  /** A non-zero xorshift32 state for one chunk of one tensor. */
  private chunkSeed(nameHash: number, chunk: number): number {
    const s = fmix32(fmix32(fmix32(this.seedLo ^ 0x9e3779b9) ^ this.seedHi) ^ nameHash);
    return fmix32(s ^ Math.imul(chunk + 1, 0x9e3779b1)) || 1;
  }
}

/** out[start .. start+n) = table[16-bit halves of a xorshift32 stream]. `n` even except for a final chunk. */
function fillChunk16(out: Uint16Array, start: number, n: number, state: number, table: Uint16Array): void {
  // Two elements per draw, stored as one 32-bit word (start is a multiple of CHUNK: 4-byte aligned).
  const pairs = n >>> 1;
  const words = new Uint32Array(out.buffer, out.byteOffset + start * 2, pairs);
  let s = state | 0;
  for (let i = 0; i < pairs; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    words[i] = table[s & 0xffff]! | (table[s >>> 16]! << 16);
  }
  if ((n & 1) !== 0) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[start + n - 1] = table[s & 0xffff]!;
  }
}

/** The float32 twin of `fillChunk16`: the same draws, looked up in the expanded table. */
function fillChunk32(out: Float32Array, start: number, n: number, state: number, table: Float32Array): void {
  let s = state | 0;
  let i = start;
  const end = start + n;
  for (; i + 1 < end; i += 2) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = table[s & 0xffff]!;
    out[i + 1] = table[s >>> 16]!;
  }
  if (i < end) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = table[s & 0xffff]!;
  }
}

/**
 * out[offset ..] = elements [from, to) of the chunk seeded with `state`, as `fillChunk16` / `fillChunk32`
 * would place them: element j is half (j & 1) of draw ⌊j / 2⌋ + 1.
 */
function fillRange<T extends Uint16Array | Float32Array>(
  out: T,
  offset: number,
  jumps: Uint32Array,
  state: number,
  from: number,
  to: number,
  table: T,
): void {
  let s = jumpAhead(jumps, state | 0, from >>> 1);
  let o = offset;
  let j = from;
  if ((j & 1) !== 0 && j < to) {
    s = xorshift32(s);
    out[o++] = table[s >>> 16]!;
    j++;
  }
  for (; j + 1 < to; j += 2) {
    s = xorshift32(s);
    out[o++] = table[s & 0xffff]!;
    out[o++] = table[s >>> 16]!;
  }
  if (j < to) {
    s = xorshift32(s);
    out[o] = table[s & 0xffff]!;
  }
}
