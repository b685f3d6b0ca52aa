// Int8 (W8A8) checkpoints Duet cannot serve are refused when their weights open, before any weight is read,
// with a message that names the tensor (or declaration field) and what was expected: another method or
// scheme, a missing or mis-shaped scale, a scale of the wrong dtype, int8 where float is required, and a
// ModelSlim declaration that disagrees with the stored dtype. Checkpoints are written from v2-lite-tiny.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  QuantizedCheckpointError,
  UnsupportedQuantizationError,
} from '../../src/loader/checkpoint-errors.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { openModelWeights } from '../../src/loader/model-folder.js';
import { TensorDTypeError } from '../../src/loader/weight-source.js';
import { deepseekCheckpointLayout } from '../../src/models/deepseek-weights.js';
import { writeW8A8Checkpoint } from '../helpers/w8a8-checkpoint.js';
import {
  decodeSafetensors,
  encodeSafetensors,
  type TensorBytes,
  V2_LITE_TINY,
  withTempDir,
} from './fixture-files.js';

const Q = 'model.layers.0.self_attn.q_proj';
const GATE = 'model.layers.1.mlp.gate.weight';

function open(dir: string): void {
  const config = loadDeepseekConfig(dir);
  openModelWeights(dir, config, deepseekCheckpointLayout(config), 'auto').source.close();
}

/** Rewrites the checkpoint's tensors. */
function edit(dir: string, fn: (t: TensorBytes[]) => TensorBytes[]): void {
  const path = join(dir, 'model.safetensors');
  writeFileSync(path, encodeSafetensors(fn(decodeSafetensors(path))));
}

function editJson(path: string, fn: (j: Record<string, unknown>) => void): void {
  const j = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  fn(j);
  writeFileSync(path, JSON.stringify(j));
}

function refuses(
  dir: string,
  parts: readonly string[],
  type: new (...a: never[]) => Error = QuantizedCheckpointError,
): void {
  assert.throws(
    () => open(dir),
    (e: unknown) => {
      assert.ok(e instanceof type, `${(e as Error).name}: ${(e as Error).message}`);
      for (const p of parts)
        assert.ok((e as Error).message.includes(p), `"${p}" in: ${(e as Error).message}`);
      return true;
    },
  );
}

describe('W8A8 checkpoints Duet cannot serve are refused at load', () => {
  it('opens the well-formed ones (both formats)', () => {
    for (const format of ['compressed-tensors', 'modelslim-dynamic'] as const) {
      withTempDir((dir) => {
        writeW8A8Checkpoint(V2_LITE_TINY, dir, format);
        open(dir);
      });
    }
  });

  it('another quantization method, or a compressed-tensors scheme other than int8 W8A8', () => {
    withTempDir((dir) => {
      writeW8A8Checkpoint(V2_LITE_TINY, dir, 'compressed-tensors');
      const config = join(dir, 'config.json');
      editJson(config, (j) => {
        (j.quantization_config as Record<string, unknown>).quant_method = 'awq';
      });
      refuses(dir, ['"awq"', 'compressed-tensors'], UnsupportedQuantizationError);
      editJson(config, (j) => {
        const q = j.quantization_config as Record<string, unknown>;
        q.quant_method = 'compressed-tensors';
        q.format = 'float-quantized';
      });
      refuses(dir, ['quantization_config.format', 'float-quantized', 'int-quantized']);
      editJson(config, (j) => {
        const q = j.quantization_config as {
          format: string;
          config_groups: { group_0: { weights: { symmetric: boolean } } };
        };
        q.format = 'int-quantized';
        q.config_groups.group_0.weights.symmetric = false;
      });
      refuses(dir, ['config_groups.group_0.weights', 'symmetric: true']);
    });
  });

  it('int8 tensors in a checkpoint that declares no int8 format', () => {
    withTempDir((dir) => {
      writeW8A8Checkpoint(V2_LITE_TINY, dir, 'compressed-tensors');
      editJson(join(dir, 'config.json'), (j) => {
        delete j.quantization_config;
      });
      refuses(
        dir,
        [`"model.layers.0.self_attn.q_proj.weight" has dtype I8`, 'declares no int8 format'],
        TensorDTypeError,
      );
    });
  });

  it('a missing, mis-shaped or non-float weight_scale', () => {
    withTempDir((dir) => {
      writeW8A8Checkpoint(V2_LITE_TINY, dir, 'compressed-tensors');
      const original = decodeSafetensors(join(dir, 'model.safetensors'));
      edit(dir, (ts) => ts.filter((t) => t.name !== `${Q}.weight_scale`));
      refuses(dir, [`"${Q}.weight_scale" is missing`, `"${Q}.weight"`]);
      edit(dir, () =>
        original.map((t) => (t.name === `${Q}.weight_scale` ? { ...t, shape: [2, t.shape[0]! / 2] } : t)),
      );
      refuses(dir, [`"${Q}.weight_scale" has shape [2, 48]`, 'expected [96] or [96, 1]']);
      edit(dir, () => original.map((t) => (t.name === `${Q}.weight_scale` ? { ...t, dtype: 'I32' } : t)));
      refuses(dir, [`"${Q}.weight_scale" has dtype I32`, 'F32']);
    });
  });

  it('int8 where Duet requires float (the MoE router), or a module the ignore list keeps float', () => {
    withTempDir((dir) => {
      writeW8A8Checkpoint(V2_LITE_TINY, dir, 'compressed-tensors');
      edit(dir, (ts) =>
        ts.flatMap((t) =>
          t.name === GATE
            ? [
                { ...t, dtype: 'I8', data: new Uint8Array(t.data.length / 2) },
                {
                  name: GATE.replace('.weight', '.weight_scale'),
                  dtype: 'F32',
                  shape: [t.shape[0]!, 1],
                  data: new Uint8Array(4 * t.shape[0]!),
                },
              ]
            : [t],
        ),
      );
      refuses(dir, [`"${GATE}"`, 'float']);
    });
    withTempDir((dir) => {
      writeW8A8Checkpoint(V2_LITE_TINY, dir, 'compressed-tensors');
      editJson(join(dir, 'config.json'), (j) => {
        (j.quantization_config as { ignore: string[] }).ignore.push('re:.*self_attn\\.q_proj');
      });
      refuses(dir, [`"${Q}.weight"`, 'ignore']);
    });
  });

  it('ModelSlim: an undeclared type, a declaration that disagrees with the dtype, a static scale missing', () => {
    withTempDir((dir) => {
      writeW8A8Checkpoint(V2_LITE_TINY, dir, 'modelslim-dynamic');
      const description = join(dir, 'quant_model_description.json');
      editJson(description, (j) => {
        j[`${Q}.weight`] = 'W4A8_DYNAMIC';
      });
      refuses(dir, [`"${Q}.weight"`, 'W4A8_DYNAMIC', 'W8A8, W8A8_DYNAMIC, FLOAT']);
      editJson(description, (j) => {
        j[`${Q}.weight`] = 'FLOAT';
      });
      refuses(dir, [`"${Q}.weight"`, 'declared FLOAT but stored as I8']);
      // Static W8A8 needs input_scale, input_offset, quant_bias and deq_scale: none are there.
      editJson(description, (j) => {
        j[`${Q}.weight`] = 'W8A8';
      });
      refuses(dir, [`"${Q}.input_scale" is missing`]);
    });
  });

  it('activations per token group: opens with G recorded; other group settings and mixed schemes refused', () => {
    withTempDir((dir) => {
      writeW8A8Checkpoint(V2_LITE_TINY, dir, 'compressed-tensors', undefined, { actGroupSize: 32 });
      const config = loadDeepseekConfig(dir);
      const weights = openModelWeights(dir, config, deepseekCheckpointLayout(config), 'auto');
      assert.equal(weights.format?.actGroupSize, 32);
      const qShape: [number, number] = [
        config.numAttentionHeads * (config.qkNopeHeadDim + config.qkRopeHeadDim),
        config.hiddenSize,
      ];
      const b = weights.linears.readLinear(`${Q}.weight`, qShape, { start: 0, count: 8 });
      assert.ok(b.kind === 'int8' && b.weight.scheme.kind === 'dynamic');
      assert.equal(b.weight.scheme.groupSize, 32);
      // A row-parallel block (tensor parallelism) must keep whole groups: [32, 96) of 128 does, [16, 80)
      // does not.
      const down = 'model.layers.0.mlp.down_proj';
      const downShape: [number, number] = [config.hiddenSize, config.intermediateSize];
      const rows = { start: 0, count: config.hiddenSize };
      const part = weights.linears.readLinear(`${down}.weight`, downShape, rows, { start: 32, count: 64 });
      assert.ok(part.kind === 'int8' && part.weight.scheme.kind === 'dynamic');
      assert.equal(part.weight.scheme.groupSize, 32);
      assert.throws(
        () => weights.linears.readLinear(`${down}.weight`, downShape, rows, { start: 16, count: 64 }),
        (e: unknown) =>
          e instanceof QuantizedCheckpointError &&
          e.message.includes(`"${down}.weight"`) &&
          e.message.includes('columns [16, 80) of 128') &&
          e.message.includes('a multiple of 32'),
      );
      weights.source.close();
      const file = join(dir, 'config.json');
      type Groups = { config_groups: Record<string, { input_activations: Record<string, unknown> }> };
      const activations = (j: Record<string, unknown>) =>
        (j.quantization_config as Groups).config_groups.group_0!.input_activations;
      for (const [change, why] of [
        [{ group_size: 6 }, 'group_size a multiple of 4 from 4 to 256'],
        [{ group_size: 512 }, 'group_size a multiple of 4 from 4 to 256'],
        [{ group_size: undefined }, 'strategy "group"'],
        [{ dynamic: false }, 'strategy "group"'],
      ] as const) {
        editJson(file, (j) => Object.assign(activations(j), { group_size: 32, dynamic: true }, change));
        refuses(dir, ['config_groups.group_0.input_activations', why]);
      }
      editJson(file, (j) => {
        Object.assign(activations(j), { group_size: 32, dynamic: true });
        const q = j.quantization_config as Groups;
        q.config_groups.group_1 = {
          ...q.config_groups.group_0!,
          input_activations: { num_bits: 8, type: 'int', symmetric: true, strategy: 'token', dynamic: true },
        };
      });
      refuses(dir, ['mixes activation schemes', 'dynamic per group of 32 and dynamic per token']);
    });
  });
});
