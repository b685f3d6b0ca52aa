// Seeded dummy weights (`--load-format dummy`): exactly the tensors of `deepseekTensorSpecs`, generated on
// each read, deterministically from the seed and the tensor name, scaled so that a model stays
// numerically sane through many layers. Used to run and benchmark real model shapes without a checkpoint.
//
// Every tensor is uniform on [center - amplitude, center + amplitude], quantised to bfloat16 through a
// 65,536-entry lookup table: each 32-bit draw of a xorshift32 stream gives two elements. The stream is
// reseeded every CHUNK elements from (seed, tensor name, chunk index). An f32 source returns exactly the
// values of the bf16 source, expanded, so a model sees the same weights in either precision.

import type { DeepseekConfig } from '../config/model-config.js';
import type { RawWeight } from '../kernels/kernels.js';
import { deepseekTensorSpecs, numElements, type TensorSpec } from '../models/deepseek-weights.js';
import { f32BitsToBf16 } from './half-float.js';
import { MissingTensorError, type TensorInfo, TensorShapeError, type WeightSource } from './weight-source.js';

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

/** Elements per independently seeded chunk (even, so chunks start 4-byte aligned in a Uint16Array). */
const CHUNK = 1 << 16;

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

/** murmur3's 32-bit finaliser: a bijective mix of all input bits. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
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
 * A `WeightSource` of seeded dummy weights with the shapes a config implies. Reads generate at about
 * 1 GB/s of bf16 on one core; nothing is kept between reads except the small lookup tables.
 */
export class DummyWeightSource implements WeightSource {
  private readonly specs: Map<string, TensorSpec>;
  private readonly tables = new Map<string, InitTable>();
  private readonly seedLo: number;
  private readonly seedHi: number;

  constructor(
    readonly config: DeepseekConfig,
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
    this.specs = new Map(deepseekTensorSpecs(config).map((s) => [s.name, s]));
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
    if (expectedShape !== undefined) {
      const same =
        expectedShape.length === spec.shape.length && expectedShape.every((d, i) => d === spec.shape[i]);
      if (!same) throw new TensorShapeError(name, expectedShape, spec.shape);
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
