// The linear sources of W8A8 loading: dummy int8 weights generated directly (`--load-format dummy
// --quantization w8a8`), quantizing a float source while loading, and the stacking of fused int8 parts.
// A tensor-parallel block must equal the same block of the whole weight, so that shards hold exactly the
// one-rank int8 values and scales.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Int8LinearData } from '../../src/kernels/kernels.js';
import { stackInt8 } from '../../src/layers/weight-loading.js';
import { DummyWeightSource, dummyInit } from '../../src/loader/dummy-weights.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { openModelWeights } from '../../src/loader/model-folder.js';
import { type LinearBlock, quantizingLinearSource } from '../../src/loader/w8a8/linear-source.js';
import {
  deepseekCheckpointLayout,
  deepseekLinearRole,
  deepseekTensorSpecs,
} from '../../src/models/deepseek-weights.js';
import { V2_LITE_TINY } from './fixture-files.js';

const config = loadDeepseekConfig(V2_LITE_TINY);
const DOWN = 'model.layers.0.mlp.down_proj.weight';
const SHAPE: [number, number] = [config.hiddenSize, config.intermediateSize];

function int8(b: LinearBlock): Int8LinearData {
  assert.equal(b.kind, 'int8');
  return (b as { weight: Int8LinearData }).weight;
}

/** Rows [r0, r0 + nr) × columns [c0, c0 + nc) of an int8 [n, k] matrix. */
function block(data: Int8Array, k: number, r0: number, nr: number, c0: number, nc: number): Int8Array {
  const out = new Int8Array(nr * nc);
  for (let r = 0; r < nr; r++) out.set(data.subarray((r0 + r) * k + c0, (r0 + r) * k + c0 + nc), r * nc);
  return out;
}

describe('W8A8 linear sources', () => {
  it('dummy int8 weights: generated directly, seeded, a block equals the block of the whole', () => {
    const make = (seed: number) =>
      openModelWeights(V2_LITE_TINY, config, deepseekCheckpointLayout(config), 'dummy', {
        seed,
        quantization: 'w8a8',
      }).linears;
    const [n, k] = SHAPE;
    const whole = int8(make(3).readLinear(DOWN, SHAPE, { start: 0, count: n }));
    assert.ok(whole.data.every((v) => v >= -127 && v <= 127));
    assert.ok(new Set(whole.data).size > 200, 'values spread over the int8 range');
    const amplitude = dummyInit({ name: DOWN, shape: SHAPE }).amplitude;
    assert.ok(whole.scheme.kind === 'dynamic');
    assert.ok(whole.scheme.weightScale.every((s) => s === Math.fround(amplitude / 127)));
    const part = int8(make(3).readLinear(DOWN, SHAPE, { start: 5, count: 7 }, { start: 16, count: 32 }));
    assert.deepEqual(part.data, block(whole.data, k, 5, 7, 16, 32));
    assert.notDeepEqual(int8(make(4).readLinear(DOWN, SHAPE, { start: 0, count: n })).data, whole.data);
    // Float roles stay float: the router, the LM head, kv_b_proj.
    const floats = make(3);
    for (const name of [
      'model.layers.1.mlp.gate.weight',
      'lm_head.weight',
      'model.layers.0.self_attn.kv_b_proj.weight',
    ]) {
      assert.notEqual(deepseekLinearRole(name), 'int8', name);
    }
    assert.equal(
      floats.readLinear('lm_head.weight', [config.vocabSize, config.hiddenSize], { start: 0, count: 4 }).kind,
      'float',
    );
  });

  it('quantizing while loading: over whole rows, so a column block equals the block of the whole', () => {
    const source = new DummyWeightSource(deepseekTensorSpecs(config), { seed: 1, dtype: 'bf16' });
    const q = quantizingLinearSource(source, deepseekLinearRole);
    const [n, k] = SHAPE;
    const whole = int8(q.readLinear(DOWN, SHAPE, { start: 0, count: n }));
    const part = int8(q.readLinear(DOWN, SHAPE, { start: 0, count: n }, { start: k / 2, count: k / 2 }));
    assert.deepEqual(part.data, block(whole.data, k, 0, n, k / 2, k / 2));
    assert.deepEqual(part.scheme, whole.scheme);
  });

  it('fused int8 parts: scales concatenated; static parts with other activation scales, or dynamic ones with other groups, refused', () => {
    const dyn = (v: number): Int8LinearData => ({
      data: Int8Array.of(v, v),
      scheme: { kind: 'dynamic', weightScale: Float32Array.of(v) },
    });
    const parts = [
      { name: 'a.weight', rows: 1 },
      { name: 'b.weight', rows: 1 },
    ];
    const fused = stackInt8([dyn(1), dyn(2)], parts, 4);
    assert.deepEqual(fused.data, Int8Array.of(1, 1, 2, 2));
    assert.deepEqual(fused.scheme, { kind: 'dynamic', weightScale: Float32Array.of(1, 2) });
    const stat = (inputScale: number): Int8LinearData => ({
      data: Int8Array.of(1, 1),
      scheme: {
        kind: 'static',
        inputScale,
        inputOffset: 3,
        quantBias: Int32Array.of(-6),
        deqScale: Float32Array.of(0.5),
      },
    });
    assert.deepEqual(stackInt8([stat(0.25), stat(0.25)], parts, 4).scheme, {
      kind: 'static',
      inputScale: 0.25,
      inputOffset: 3,
      quantBias: Int32Array.of(-6, -6),
      deqScale: Float32Array.of(0.5, 0.5),
    });
    assert.throws(
      () => stackInt8([stat(0.25), stat(0.5)], parts, 4),
      /"a.weight", "b.weight" are fused.*must agree/,
    );
    assert.throws(() => stackInt8([dyn(1), stat(0.5)], parts, 4), /mix dynamic and static/);
    // Activations per token group: the parts share one quantization of the input, so one group size.
    const grouped = (v: number, groupSize?: number): Int8LinearData => ({
      data: Int8Array.of(v, v),
      scheme: { kind: 'dynamic', weightScale: Float32Array.of(v), ...(groupSize ? { groupSize } : {}) },
    });
    assert.deepEqual(stackInt8([grouped(1, 32), grouped(2, 32)], parts, 4).scheme, {
      kind: 'dynamic',
      weightScale: Float32Array.of(1, 2),
      groupSize: 32,
    });
    assert.throws(
      () => stackInt8([grouped(1, 32), grouped(2)], parts, 4),
      /"a.weight", "b.weight" are fused.*quantized alike \(groups of 32, k \(per token\)\)/,
    );
  });
});
