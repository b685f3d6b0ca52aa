// The gated MLP against a float64 computation of down(silu(gate(x)) · up(x)), for a batch long enough that
// the layer runs it in several row chunks (its intermediate activations are bounded per chunk).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RawWeight } from '../../src/kernels/kernels.js';
import { ReferenceKernels } from '../../src/kernels/reference/reference-kernels.js';
import { GatedMlp } from '../../src/layers/gated-mlp.js';
import type { WeightSource } from '../../src/loader/weight-source.js';

/** Seeded values in [-1, 1). */
function random(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = (s / 2 ** 32) * 2 - 1;
  }
  return a;
}

/** An in-memory weight source of float32 tensors. */
function memorySource(tensors: Record<string, { shape: number[]; data: Float32Array }>): WeightSource {
  return {
    names: () => Object.keys(tensors),
    has: (name) => name in tensors,
    info: (name) => ({ name, dtype: 'F32', shape: tensors[name]!.shape }),
    read: (name): RawWeight => ({ dtype: 'f32', data: tensors[name]!.data }),
    readBlock: (name, [, C], rows, cols = { start: 0, count: C }): RawWeight => {
      const data = new Float32Array(rows.count * cols.count);
      for (let r = 0; r < rows.count; r++) {
        const from = (rows.start + r) * C + cols.start;
        data.set(tensors[name]!.data.subarray(from, from + cols.count), r * cols.count);
      }
      return { dtype: 'f32', data };
    },
    close: () => {},
  };
}

describe('GatedMlp', () => {
  it('computes long batches in row chunks exactly as row by row', () => {
    // intermediate 8192: chunks of 341 rows (32 MiB / (12 · 8192)); 700 rows make three chunks.
    const [hidden, I, T] = [8, 8192, 700];
    const gate = random(I * hidden, 1);
    const up = random(I * hidden, 2);
    const down = random(hidden * I, 3).map((v) => v / 64);
    const source = memorySource({
      'mlp.gate_proj.weight': { shape: [I, hidden], data: gate },
      'mlp.up_proj.weight': { shape: [I, hidden], data: up },
      'mlp.down_proj.weight': { shape: [hidden, I], data: down },
    });
    const kernels = new ReferenceKernels();
    const mlp = new GatedMlp({ source, kernels, weightDType: 'f32' }, 'mlp', hidden, I);
    const x = random(T * hidden, 4);
    const out = new Float32Array(T * hidden).fill(Number.NaN);
    mlp.forward(kernels, out, x, T);
    let maxDiff = 0;
    const act = new Float64Array(I);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < I; i++) {
        let g = 0;
        let u = 0;
        for (let c = 0; c < hidden; c++) {
          g += x[t * hidden + c]! * gate[i * hidden + c]!;
          u += x[t * hidden + c]! * up[i * hidden + c]!;
        }
        act[i] = (g / (1 + Math.exp(-g))) * u;
      }
      for (let j = 0; j < hidden; j++) {
        let y = 0;
        for (let i = 0; i < I; i++) y += act[i]! * down[j * I + i]!;
        maxDiff = Math.max(maxDiff, Math.abs(out[t * hidden + j]! - y));
      }
    }
    // Float32 roundings of the activations and sums of 8192 terms of size ≤ 1/64: ~1e-5 at most; a row
    // missed or repeated by the chunking would differ by O(1) (or stay NaN).
    assert.ok(maxDiff < 1e-4, `max difference ${maxDiff}`);
  });
});
