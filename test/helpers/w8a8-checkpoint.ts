// Writes small int8 (W8A8) checkpoints from a float checkpoint folder, in the two formats Duet detects:
// compressed-tensors (int8 weights, per-channel `weight_scale`, dynamic per-token activations, declared in
// config.json) and Ascend ModelSlim (quant_model_description.json; `W8A8_DYNAMIC`, or static `W8A8` with
// per-tensor activation scale and offset calibrated on prompts run through the float model). Every linear
// weight the model runs in int8 (deepseekLinearRole 'int8') is quantized per output channel exactly as
// `--quantization w8a8` does, so a dynamic checkpoint gives the very logits of quantizing while loading;
// the LM head ('int8-from-checkpoint') only when asked (`quantizeLmHead`).

import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DeepseekConfig } from '../../src/config/model-config.js';
import { quantizeWeightPerChannel } from '../../src/kernels/int8-quant.js';
import type { Kernels, LinearWeight, RawWeight } from '../../src/kernels/kernels.js';
import { ReferenceKernels } from '../../src/kernels/reference/reference-kernels.js';
import { MlaKvCache } from '../../src/layers/mla-kv-cache.js';
import { openSafetensors } from '../../src/loader/safetensors.js';
import { compressedTensorsW8A8Config } from '../../src/loader/w8a8/checkpoint-format.js';
import { floatLinearSource, type LinearSource } from '../../src/loader/w8a8/linear-source.js';
import { DeepseekForCausalLM } from '../../src/models/deepseek.js';
import { deepseekLinearRole } from '../../src/models/deepseek-weights.js';
import { decodeSafetensors, encodeSafetensors, type TensorBytes } from '../loader/fixture-files.js';

export type W8A8FixtureFormat = 'compressed-tensors' | 'modelslim-dynamic' | 'modelslim-static';

/** min and max of the activations each linear weight saw. */
export type ActivationRanges = ReadonlyMap<string, { readonly min: number; readonly max: number }>;

function bytesOf(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function rawOf(t: TensorBytes): RawWeight {
  const copy = new Uint8Array(t.data);
  if (t.dtype === 'BF16') return { dtype: 'bf16', data: new Uint16Array(copy.buffer) };
  if (t.dtype === 'F32') return { dtype: 'f32', data: new Float32Array(copy.buffer) };
  throw new Error(`fixture tensor ${t.name}: dtype ${t.dtype}`);
}

/**
 * Runs `prompts` through the float model in `dir` and records, per linear weight name, the range of the
 * activations it multiplied (the calibration of ModelSlim's static W8A8).
 */
export async function calibrate(
  dir: string,
  config: DeepseekConfig,
  prompts: readonly number[][],
): Promise<ActivationRanges> {
  const source = openSafetensors(dir);
  const base = floatLinearSource(source);
  let pending: string[] = [];
  const linears: LinearSource = {
    readLinear(name, shape, rows, cols) {
      pending.push(name);
      return base.readLinear(name, shape, rows, cols);
    },
  };
  const namesOf = new Map<LinearWeight, string[]>();
  const ranges = new Map<string, { min: number; max: number }>();
  const ref = new ReferenceKernels();
  const kernels = Object.create(ref) as Kernels;
  Object.assign(kernels, {
    prepareLinear: (...args: Parameters<Kernels['prepareLinear']>) => {
      const w = ref.prepareLinear(...args);
      namesOf.set(w, pending);
      pending = [];
      return w;
    },
    linear: (out: Float32Array, x: Float32Array, w: LinearWeight, m: number) => {
      for (const name of namesOf.get(w) ?? []) {
        const r = ranges.get(name) ?? { min: 0, max: 0 };
        for (let i = 0; i < m * w.k; i++) {
          r.min = Math.min(r.min, x[i]!);
          r.max = Math.max(r.max, x[i]!);
        }
        ranges.set(name, r);
      }
      ref.linear(out, x, w, m);
    },
  });
  const model = new DeepseekForCausalLM(config, { kernels, source, linears, weightDType: 'f32' });
  source.close();
  for (const ids of prompts) {
    const L = ids.length;
    const blockSize = 16;
    const numBlocks = Math.ceil(L / blockSize);
    const cache = MlaKvCache.forModel(kernels, config, numBlocks, blockSize);
    const blockTable = Int32Array.from({ length: numBlocks }, (_, i) => i);
    await model.forward(
      {
        numTokens: L,
        tokenIds: Int32Array.from(ids),
        positions: Int32Array.from({ length: L }, (_, i) => i),
        slotMapping: Int32Array.from({ length: L }, (_, i) => i),
        seqs: [{ queryStart: 0, queryLen: L, blockTable }],
        logitsIndices: Int32Array.of(L - 1),
      },
      cache,
    );
  }
  return ranges;
}

/** Options of `writeW8A8Checkpoint`. */
export interface W8A8FixtureOptions {
  /**
   * Quantize the LM head too (as llama.cpp's Q8_0 does; compressed-tensors then leaves it out of `ignore`).
   * Default: float, as `--quantization w8a8` keeps it, so the checkpoint gives that path's very logits.
   */
  readonly quantizeLmHead?: boolean;
  /**
   * compressed-tensors only: declare the activations per token and group of this many k values
   * (`strategy: "group"`) instead of per token. The int8 weights are the same either way.
   */
  readonly actGroupSize?: number;
}

/**
 * Writes the int8 checkpoint of `from` (a float fixture folder) into `to`: model.safetensors, config.json
 * (with `quantization_config` for compressed-tensors) and, for ModelSlim, quant_model_description.json.
 * `ranges` (from `calibrate`) is required for `modelslim-static`.
 */
export function writeW8A8Checkpoint(
  from: string,
  to: string,
  format: W8A8FixtureFormat,
  ranges?: ActivationRanges,
  opts: W8A8FixtureOptions = {},
): void {
  const isInt8 = (name: string): boolean => {
    const role = deepseekLinearRole(name);
    return role === 'int8' || (role === 'int8-from-checkpoint' && opts.quantizeLmHead === true);
  };
  const out: TensorBytes[] = [];
  const description: Record<string, string> = {
    model_quant_type: format === 'modelslim-static' ? 'W8A8' : 'W8A8_DYNAMIC',
  };
  const f32 = (name: string, shape: number[], data: Float32Array): TensorBytes => ({
    name,
    dtype: 'F32',
    shape,
    data: bytesOf(data),
  });
  for (const t of decodeSafetensors(join(from, 'model.safetensors'))) {
    if (!isInt8(t.name)) {
      out.push(t);
      description[t.name] = 'FLOAT';
      continue;
    }
    const [n, k] = t.shape as [number, number];
    const q = quantizeWeightPerChannel(rawOf(t), n, k);
    if (q.scheme.kind !== 'dynamic') throw new Error('per-channel quantization is symmetric');
    const module = t.name.replace(/\.weight$/, '');
    const type = format === 'modelslim-static' ? 'W8A8' : 'W8A8_DYNAMIC';
    out.push({ name: t.name, dtype: 'I8', shape: [n, k], data: bytesOf(q.data) });
    out.push(f32(`${module}.weight_scale`, [n, 1], q.scheme.weightScale));
    description[t.name] = type;
    description[`${module}.weight_scale`] = type;
    if (format === 'compressed-tensors') continue;
    out.push(f32(`${module}.weight_offset`, [n, 1], new Float32Array(n)));
    description[`${module}.weight_offset`] = type;
    if (format !== 'modelslim-static') continue;
    const r = ranges?.get(t.name);
    if (r === undefined) throw new Error(`no calibration for ${t.name}`);
    // Asymmetric per-tensor activations: [min, max] onto [−128, 127].
    const scale = Math.fround(Math.max(r.max - r.min, 1e-6) / 255);
    const offset = Math.max(-128, Math.min(127, Math.round(-128 - r.min / scale)));
    const quantBias = new Int32Array(n);
    const deqScale = new Float32Array(n);
    for (let j = 0; j < n; j++) {
      let sum = 0;
      for (let c = 0; c < k; c++) sum += q.data[j * k + c]!;
      quantBias[j] = -offset * sum;
      deqScale[j] = Math.fround(scale * q.scheme.weightScale[j]!);
    }
    out.push(f32(`${module}.input_scale`, [1], Float32Array.of(scale)));
    out.push({
      name: `${module}.input_offset`,
      dtype: 'I8',
      shape: [1],
      data: bytesOf(Int8Array.of(offset)),
    });
    out.push({ name: `${module}.quant_bias`, dtype: 'I32', shape: [n], data: bytesOf(quantBias) });
    out.push(f32(`${module}.deq_scale`, [n], deqScale));
    for (const s of ['input_scale', 'input_offset', 'quant_bias', 'deq_scale'])
      description[`${module}.${s}`] = type;
  }
  writeFileSync(join(to, 'model.safetensors'), encodeSafetensors(out));
  const config = JSON.parse(readFileSync(join(from, 'config.json'), 'utf8')) as Record<string, unknown>;
  if (format === 'compressed-tensors') {
    config.quantization_config = compressedTensorsW8A8Config(
      opts.quantizeLmHead === true ? [] : ['lm_head'],
      opts.actGroupSize ?? null,
    );
  } else {
    writeFileSync(join(to, 'quant_model_description.json'), JSON.stringify(description, null, 1));
  }
  writeFileSync(join(to, 'config.json'), JSON.stringify(config, null, 2));
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
    if (existsSync(join(from, f))) copyFileSync(join(from, f), join(to, f));
  }
}
