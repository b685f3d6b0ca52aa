// The weights of the llama.cpp comparison, written once into a cache folder: a model's seeded dummy
// weights (Duet's `--load-format dummy`, bf16 values) as a Hugging Face folder (config.json and one
// safetensors file, BF16) and as llama.cpp GGUF files (F32, BF16, Q8_0) holding exactly the same values.
// Each file is written to a temporary name and renamed when complete, so an interrupted run never leaves
// a half-written file that a later run would trust.

import { closeSync, existsSync, mkdirSync, openSync, renameSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { DeepseekConfig } from '../src/config/model-config.js';
import { DummyWeightSource } from '../src/loader/dummy-weights.js';
import { deepseekTensorSpecs, numElements } from '../src/models/deepseek-weights.js';
import { type Deepseek2FileType, writeDeepseek2Gguf } from './gguf/deepseek2-gguf.js';

/** Writes `write(tmp)` to `path` through a temporary name, unless `path` exists already. */
export function writeOnce(path: string, write: (tmp: string) => void): void {
  if (existsSync(path)) return;
  const tmp = `${path}.partial`;
  write(tmp);
  renameSync(tmp, path);
}

/**
 * A Hugging Face model folder of the dummy weights of `config`: `configJson` as config.json and every
 * tensor in BF16 in model.safetensors, streamed one tensor at a time.
 */
export function writeHfFolder(
  dir: string,
  configJson: Record<string, unknown>,
  config: DeepseekConfig,
  seed: number,
): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(configJson, null, 2));
  writeOnce(join(dir, 'model.safetensors'), (tmp) => {
    const specs = deepseekTensorSpecs(config);
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    let offset = 0;
    for (const s of specs) {
      const bytes = numElements(s.shape) * 2;
      header[s.name] = { dtype: 'BF16', shape: s.shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
    }
    // The header is padded with spaces to 8 bytes, as safetensors writers do.
    let json = JSON.stringify(header);
    json += ' '.repeat((8 - (json.length % 8)) % 8);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
    const source = new DummyWeightSource(deepseekTensorSpecs(config), { seed, dtype: 'bf16' });
    const fd = openSync(tmp, 'w');
    try {
      const write = (b: Uint8Array) => {
        for (let done = 0; done < b.length; ) done += writeSync(fd, b, done, b.length - done);
      };
      write(len);
      write(Buffer.from(json, 'utf8'));
      for (const s of specs) {
        const w = source.read(s.name);
        write(new Uint8Array(w.data.buffer, w.data.byteOffset, w.data.byteLength));
      }
    } finally {
      closeSync(fd);
    }
  });
}

/** The GGUF file of `config`'s dummy weights in `fileType` (written unless present); its path. */
export function writeGgufModel(
  dir: string,
  config: DeepseekConfig,
  seed: number,
  fileType: Deepseek2FileType,
): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `model-${fileType}.gguf`);
  writeOnce(path, (tmp) =>
    writeDeepseek2Gguf(
      tmp,
      config,
      new DummyWeightSource(deepseekTensorSpecs(config), { seed, dtype: 'f32' }),
      fileType,
    ),
  );
  return path;
}
