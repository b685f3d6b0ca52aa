// Which int8 (W8A8) format a checkpoint folder is in, detected as vLLM and vLLM-Ascend detect it, and how
// each of its tensors is stored:
// - compressed-tensors (`quantization_config.quant_method == "compressed-tensors"` in config.json): an int8
//   linear is `X.weight` (I8 [n, k]) with `X.weight_scale` ([n, 1] or [n] per channel; [1] per tensor);
//   activations per token, dynamic and symmetric; or per token and group of `group_size` k values, dynamic
//   (`strategy: "group"`, as vLLM's block-int8 W8A8 quantizes activations); or per tensor, static, with
//   `X.input_scale`. Modules in the `ignore` list stay float.
// - Ascend ModelSlim (`quant_model_description.json` beside the weights): every tensor is named `W8A8`
//   (static: `input_scale`, `input_offset`, `quant_bias`, `deq_scale`, `weight_scale`, `weight_offset`),
//   `W8A8_DYNAMIC` (`weight_scale`, `weight_offset`) or `FLOAT`.
// Anything else is refused with a message that names the field and what Duet accepts.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { QuantizationConfig } from '../../config/model-config.js';
import { ACT_GROUP_SIZE_RULE, isActGroupSize } from '../../kernels/int8-quant.js';
import { QuantizedCheckpointError, UnsupportedQuantizationError } from '../checkpoint-errors.js';

/** How one linear weight is stored in the checkpoint. */
export type LinearStorage = 'float' | 'int8-dynamic' | 'int8-static';

/** The int8 formats Duet reads. */
export type W8A8Method = 'compressed-tensors' | 'modelslim';

/** A detected int8 checkpoint format. */
export interface W8A8Format {
  readonly method: W8A8Method;
  /** The file that declares it (config.json or quant_model_description.json), for messages. */
  readonly declaredIn: string;
  /**
   * Dynamic int8 activations quantized per token and group of this many k values (compressed-tensors
   * `strategy: "group"`); null: per token.
   */
  readonly actGroupSize: number | null;
  /**
   * How the tensor `weightName` (`….weight`) is stored, given its dtype in the checkpoint; a
   * `QuantizedCheckpointError` when the declaration and the dtype disagree.
   */
  storageOf(weightName: string, dtype: string): LinearStorage;
}

export const MODELSLIM_DESCRIPTION_FILE = 'quant_model_description.json';

/**
 * The `quantization_config` (config.json) of a compressed-tensors W8A8 checkpoint as Duet serves it:
 * symmetric int8 weights per output channel, symmetric int8 activations per token (or, with
 * `actGroupSize`, per token and group of that many k values), dynamic; the modules in `ignore` stay
 * float. For writers of such checkpoints (test fixtures, bench:vs-llamacpp).
 */
export function compressedTensorsW8A8Config(
  ignore: readonly string[],
  actGroupSize: number | null = null,
): Record<string, unknown> {
  const activations = {
    num_bits: 8,
    type: 'int',
    symmetric: true,
    ...(actGroupSize === null ? { strategy: 'token' } : { strategy: 'group', group_size: actGroupSize }),
    dynamic: true,
  };
  return {
    quant_method: 'compressed-tensors',
    format: 'int-quantized',
    config_groups: {
      group_0: {
        targets: ['Linear'],
        weights: { num_bits: 8, type: 'int', symmetric: true, strategy: 'channel', dynamic: false },
        input_activations: activations,
      },
    },
    ignore: [...ignore],
  };
}

/**
 * The int8 format of the checkpoint in `dir` with config `quantization` (config.json's
 * `quantization_config`), or null for a float checkpoint. Throws `UnsupportedQuantizationError` for
 * another method and `QuantizedCheckpointError` for a compressed-tensors or ModelSlim declaration Duet
 * cannot serve.
 */
export function detectW8A8Format(dir: string, quantization: QuantizationConfig | null): W8A8Format | null {
  if (quantization !== null) {
    if (quantization.method !== 'compressed-tensors') {
      throw new UnsupportedQuantizationError(dir, quantization.method);
    }
    return compressedTensorsFormat(join(dir, 'config.json'), quantization.fields);
  }
  const description = join(dir, MODELSLIM_DESCRIPTION_FILE);
  if (existsSync(description)) return modelSlimFormat(description);
  return null;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** compressed-tensors: every config group must be int8 W8A8 with symmetric per-channel weights. */
function compressedTensorsFormat(file: string, q: Readonly<Record<string, unknown>>): W8A8Format {
  const fail = (field: string, detail: string): QuantizedCheckpointError =>
    new QuantizedCheckpointError(file, null, `quantization_config.${field} ${detail}`);
  const format = q.format;
  if (format !== 'int-quantized') {
    throw fail(
      'format',
      `is ${JSON.stringify(format)}; Duet reads compressed-tensors "int-quantized" (W8A8 int8) checkpoints only`,
    );
  }
  const groups = q.config_groups;
  if (!isObject(groups) || Object.keys(groups).length === 0) {
    throw fail('config_groups', 'is missing or empty; allowed: an object of quantization groups');
  }
  // The activation scheme of the first group: 'static', 'token' or the group size; every group must agree.
  let activations: 'static' | 'token' | number | null = null;
  for (const [gName, g] of Object.entries(groups)) {
    const at = `config_groups.${gName}`;
    if (!isObject(g)) throw fail(at, 'is not an object');
    const w = g.weights;
    if (
      !isObject(w) ||
      w.num_bits !== 8 ||
      w.type !== 'int' ||
      w.symmetric !== true ||
      (w.strategy !== 'channel' && w.strategy !== 'tensor') ||
      w.dynamic === true
    ) {
      throw fail(
        `${at}.weights`,
        `is ${JSON.stringify(w)}; allowed: {num_bits: 8, type: "int", symmetric: true, strategy: "channel" or "tensor"}`,
      );
    }
    const a = g.input_activations;
    const ok =
      isObject(a) &&
      a.num_bits === 8 &&
      a.type === 'int' &&
      a.symmetric === true &&
      ((a.strategy === 'token' && a.dynamic === true) ||
        (a.strategy === 'group' && a.dynamic === true && isActGroupSize(a.group_size)) ||
        (a.strategy === 'tensor' && a.dynamic !== true));
    if (!ok) {
      throw fail(
        `${at}.input_activations`,
        `is ${JSON.stringify(a)}; allowed: int8 symmetric activations, per token and dynamic ` +
          '(strategy "token", dynamic: true), per token and group of k, dynamic (strategy "group", ' +
          `group_size ${ACT_GROUP_SIZE_RULE}, dynamic: true) or per tensor and static (strategy "tensor")`,
      );
    }
    const kind =
      a.strategy === 'group' ? (a.group_size as number) : a.strategy === 'token' ? 'token' : 'static';
    if (activations !== null && activations !== kind) {
      throw fail(
        'config_groups',
        `mixes activation schemes (${describeActivations(activations)} and ${describeActivations(kind)}); ` +
          'Duet needs one for the whole model',
      );
    }
    activations = kind;
  }
  const ignore = q.ignore ?? [];
  if (!Array.isArray(ignore) || !ignore.every((x) => typeof x === 'string')) {
    throw fail('ignore', 'is not a list of module names');
  }
  const ignored = ignore.map((entry) =>
    entry.startsWith('re:') ? new RegExp(`^(?:${entry.slice(3)})$`) : entry,
  );
  const isIgnored = (module: string): boolean =>
    ignored.some((m) => (typeof m === 'string' ? m === module : m.test(module)));
  const int8: LinearStorage = activations === 'static' ? 'int8-static' : 'int8-dynamic';
  return {
    method: 'compressed-tensors',
    declaredIn: file,
    actGroupSize: typeof activations === 'number' ? activations : null,
    storageOf(weightName, dtype) {
      if (dtype !== 'I8') return 'float';
      const module = weightName.replace(/\.weight$/, '');
      if (isIgnored(module)) {
        throw new QuantizedCheckpointError(
          file,
          weightName,
          `is stored as I8 but its module "${module}" is in quantization_config.ignore, which keeps it float`,
        );
      }
      return int8;
    },
  };
}

function describeActivations(a: 'static' | 'token' | number): string {
  return a === 'static'
    ? 'static per tensor'
    : a === 'token'
      ? 'dynamic per token'
      : `dynamic per group of ${a}`;
}

const MODELSLIM_TYPES: Readonly<Record<string, LinearStorage>> = {
  W8A8: 'int8-static',
  W8A8_DYNAMIC: 'int8-dynamic',
  FLOAT: 'float',
};

/** ModelSlim: quant_model_description.json names each tensor's type. */
function modelSlimFormat(file: string): W8A8Format {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new QuantizedCheckpointError(file, null, `is not valid JSON (${(err as Error).message})`);
  }
  if (!isObject(json)) throw new QuantizedCheckpointError(file, null, 'is not a JSON object');
  const allowed = Object.keys(MODELSLIM_TYPES).join(', ');
  const modelType = json.model_quant_type;
  if (modelType !== undefined && !(typeof modelType === 'string' && modelType in MODELSLIM_TYPES)) {
    throw new QuantizedCheckpointError(
      file,
      null,
      `declares model_quant_type ${JSON.stringify(modelType)}; Duet serves ${allowed}`,
    );
  }
  return {
    method: 'modelslim',
    declaredIn: file,
    actGroupSize: null,
    storageOf(weightName, dtype) {
      const declared = json[weightName];
      if (declared === undefined) {
        if (dtype === 'I8') {
          throw new QuantizedCheckpointError(
            file,
            weightName,
            `is stored as I8 but has no entry here; expected "W8A8" or "W8A8_DYNAMIC"`,
          );
        }
        return 'float';
      }
      const storage = typeof declared === 'string' ? MODELSLIM_TYPES[declared] : undefined;
      if (storage === undefined) {
        throw new QuantizedCheckpointError(
          file,
          weightName,
          `is declared ${JSON.stringify(declared)}; Duet serves ${allowed}`,
        );
      }
      const isInt = dtype === 'I8';
      if (isInt !== (storage !== 'float')) {
        throw new QuantizedCheckpointError(
          file,
          weightName,
          `is declared ${declared} but stored as ${dtype}; expected ${storage === 'float' ? 'a float dtype' : 'I8'}`,
        );
      }
      return storage;
    },
  };
}
