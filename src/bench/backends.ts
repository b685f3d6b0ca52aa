// The --backend choices: which request function speaks to which endpoint. `vllm` is an alias of
// `openai` (the completions API), as in vLLM's benchmark.

import { BenchArgumentError } from './errors.js';
import { requestOpenAIChatCompletions, requestOpenAICompletions } from './openai-requests.js';
import type { RequestFunc } from './request-func.js';

/** A --backend name. */
export type BackendName = 'openai' | 'vllm' | 'openai-chat';

/** What a backend needs. */
export interface Backend {
  readonly name: BackendName;
  readonly requestFunc: RequestFunc;
  /** --endpoint when none is given. */
  readonly defaultEndpoint: string;
  /** The API URL must end with this (vLLM checks the same). */
  readonly urlSuffix: string;
  /** Whether prompts may be sent as token ids. */
  readonly acceptsTokenIds: boolean;
}

const COMPLETIONS = {
  requestFunc: requestOpenAICompletions,
  defaultEndpoint: '/v1/completions',
  urlSuffix: 'completions',
  acceptsTokenIds: true,
} as const;

/** Every backend, by name. */
export const BACKENDS: Readonly<Record<BackendName, Backend>> = {
  openai: { name: 'openai', ...COMPLETIONS },
  vllm: { name: 'vllm', ...COMPLETIONS },
  'openai-chat': {
    name: 'openai-chat',
    requestFunc: requestOpenAIChatCompletions,
    defaultEndpoint: '/v1/chat/completions',
    urlSuffix: 'chat/completions',
    acceptsTokenIds: false,
  },
};

/** The backend of a --backend name; throws for an unknown one. */
export function getBackend(name: string): Backend {
  if (!Object.hasOwn(BACKENDS, name)) {
    throw new BenchArgumentError(`unknown --backend "${name}"; allowed: ${Object.keys(BACKENDS).join(', ')}`);
  }
  return BACKENDS[name as BackendName];
}

/** Throws unless `apiUrl` fits the backend (e.g. openai-chat needs .../chat/completions). */
export function checkApiUrl(backend: Backend, apiUrl: string): void {
  if (!apiUrl.endsWith(backend.urlSuffix)) {
    throw new BenchArgumentError(
      `--backend ${backend.name} needs an endpoint ending in "${backend.urlSuffix}", got ${apiUrl}`,
    );
  }
}
