// The tokenizer of the HTTP thread (chat templates, tokenization, log-prob token strings), loaded from
// the same files as the engine worker's: --tokenizer, else the model folder's, else (embedded model or a
// folder without tokenizer.json) the DeepSeek-V3 tokenizer and chat template.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelSettings } from '../config/engine-config.js';
import { resolveModelFolder } from '../loader/model-folder.js';
import {
  deepseekV3TokenizerFiles,
  loadTokenizer,
  loadTokenizerFromFiles,
  type Tokenizer,
} from '../tokenizer/tokenizer.js';

/** Loads the tokenizer the engine uses for `settings` (the same resolution as the model loader). */
export function loadServingTokenizer(settings: ModelSettings): Tokenizer {
  const options = settings.chatTemplate !== null ? { chatTemplate: settings.chatTemplate } : {};
  if (settings.tokenizer !== null) return loadTokenizer(settings.tokenizer, options);
  if (settings.model !== null) {
    const dir = resolveModelFolder(settings.model).dir;
    if (existsSync(join(dir, 'tokenizer.json'))) return loadTokenizer(dir, options);
  }
  return loadTokenizerFromFiles(deepseekV3TokenizerFiles(), options);
}
