// The named errors of reading a safetensors checkpoint. Each names the file and, where one is at fault,
// the tensor, and says what is allowed. All extend `CheckpointError`, so callers can catch them as one.

/** Something is wrong with a checkpoint file or folder. */
export class CheckpointError extends Error {
  constructor(
    /** The file (or folder) at fault. */
    readonly file: string,
    /** The tensor at fault, or null when the problem is not one tensor's. */
    readonly tensorName: string | null,
    detail: string,
  ) {
    super(tensorName === null ? `${file}: ${detail}` : `${file}: tensor "${tensorName}" ${detail}`);
    this.name = 'CheckpointError';
  }
}

/** The safetensors header is malformed: its length lies beyond the file, its JSON is invalid, or an entry is. */
export class SafetensorsHeaderError extends CheckpointError {
  constructor(file: string, tensorName: string | null, detail: string) {
    super(file, tensorName, detail);
    this.name = 'SafetensorsHeaderError';
  }
}

/** A tensor's data range lies beyond the end of its file: the file was cut short (e.g. an interrupted download). */
export class TruncatedCheckpointError extends CheckpointError {
  constructor(file: string, tensorName: string, dataEnd: number, fileSize: number) {
    super(
      file,
      tensorName,
      `ends at byte ${dataEnd} but the file has only ${fileSize} bytes: the file is truncated ` +
        '(download it again)',
    );
    this.name = 'TruncatedCheckpointError';
  }
}

/** A tensor's dtype is one Duet cannot read. */
export class UnsupportedDTypeError extends CheckpointError {
  constructor(
    file: string,
    tensorName: string,
    readonly dtype: string,
    supported: readonly string[],
  ) {
    const fp8 = dtype.startsWith('F8_')
      ? ': FP8 checkpoints (such as the original DeepSeek-V3 release) are not supported yet, use a BF16 ' +
        'conversion or --load-format dummy;'
      : ';';
    super(file, tensorName, `has dtype ${dtype}${fp8} supported dtypes: ${supported.join(', ')}`);
    this.name = 'UnsupportedDTypeError';
  }
}

/** A tensor's byte range does not hold exactly shape × element size bytes. */
export class TensorByteSizeError extends CheckpointError {
  constructor(
    file: string,
    tensorName: string,
    shape: readonly number[],
    dtype: string,
    expected: number,
    actual: number,
  ) {
    super(
      file,
      tensorName,
      `has shape [${shape.join(', ')}] of ${dtype}, which needs ${expected} bytes, but its data_offsets span ` +
        `${actual} bytes`,
    );
    this.name = 'TensorByteSizeError';
  }
}

/** `model.safetensors.index.json` is malformed, names a missing shard, or disagrees with a shard. */
export class CheckpointIndexError extends CheckpointError {
  constructor(file: string, tensorName: string | null, detail: string) {
    super(file, tensorName, detail);
    this.name = 'CheckpointIndexError';
  }
}

/** A folder holds neither `model.safetensors` nor `model.safetensors.index.json`. */
export class CheckpointNotFoundError extends CheckpointError {
  /** @param hint appended to the message, e.g. a suggestion of `--load-format dummy`. */
  constructor(dir: string, hint = '') {
    super(dir, null, `holds neither model.safetensors nor model.safetensors.index.json${hint}`);
    this.name = 'CheckpointNotFoundError';
  }
}

/** A weight source was read after `close()`. */
export class WeightSourceClosedError extends Error {
  constructor(tensorName: string, where: string) {
    super(`cannot read tensor "${tensorName}" from ${where}: the weight source is closed`);
    this.name = 'WeightSourceClosedError';
  }
}

/** A checkpoint holds tensors the config does not call for (e.g. `q_a_proj` when `q_lora_rank` is null). */
export class UnexpectedTensorError extends CheckpointError {
  constructor(where: string, names: readonly string[]) {
    const shown = names
      .slice(0, 5)
      .map((n) => `"${n}"`)
      .join(', ');
    const more = names.length > 5 ? ` and ${names.length - 5} more` : '';
    super(
      where,
      null,
      `holds ${names.length} tensor(s) the config does not call for: ${shown}${more}; ` +
        'does config.json match the checkpoint?',
    );
    this.name = 'UnexpectedTensorError';
  }
}

/** A checkpoint is quantized (`quantization_config`) by a method Duet cannot load. */
export class UnsupportedQuantizationError extends CheckpointError {
  constructor(dir: string, method: string) {
    super(
      dir,
      null,
      `is a quantized checkpoint (quantization_config.quant_method "${method}"), which Duet cannot read; ` +
        'supported: unquantized BF16, F16 or F32 safetensors, int8 W8A8 in compressed-tensors ' +
        '("int-quantized") or Ascend ModelSlim (quant_model_description.json) form, or --load-format dummy',
    );
    this.name = 'UnsupportedQuantizationError';
  }
}

/**
 * An int8 (W8A8) checkpoint Duet cannot serve: an unsupported scheme, a missing or mis-shaped scale, int8
 * where float is required. Names the tensor (or declaration field) and what was expected.
 */
export class QuantizedCheckpointError extends CheckpointError {
  constructor(file: string, tensorName: string | null, detail: string) {
    super(file, tensorName, detail);
    this.name = 'QuantizedCheckpointError';
  }
}
