// The tokenizer the benchmark counts with: --tokenizer (a folder with tokenizer.json), else the model's own
// folder when --model (or the server's model id) is a local folder with a tokenizer.json, else the
// DeepSeek-V3 tokenizer shipped with Duet (the one DeepSeek-V3 and R1 servers use).

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import {
  deepseekV3TokenizerFiles,
  loadTokenizer,
  loadTokenizerFromFiles,
  type Tokenizer,
} from '../tokenizer/tokenizer.js';
import { BenchArgumentError } from './errors.js';

/** The id results record for the built-in DeepSeek-V3 tokenizer. */
export const DEFAULT_TOKENIZER_ID = 'deepseek-ai/DeepSeek-V3';

/** Loads the benchmark's tokenizer; `tokenizerId` is what the JSON result records. */
export function resolveBenchTokenizer(
  tokenizerArg: string | null,
  modelId: string,
): { tokenizer: Tokenizer; tokenizerId: string } {
  if (tokenizerArg !== null) {
    if (!existsSync(join(tokenizerArg, 'tokenizer.json'))) {
      throw new BenchArgumentError(
        `--tokenizer ${tokenizerArg} must be a folder with a tokenizer.json (a Hugging Face model folder)`,
      );
    }
    return { tokenizer: loadTokenizer(tokenizerArg), tokenizerId: tokenizerArg };
  }
  if (existsSync(join(modelId, 'tokenizer.json'))) {
    return { tokenizer: loadTokenizer(modelId), tokenizerId: modelId };
  }
  return { tokenizer: loadTokenizerFromFiles(deepseekV3TokenizerFiles()), tokenizerId: DEFAULT_TOKENIZER_ID };
}
