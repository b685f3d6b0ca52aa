// What the benchmark asks the server before the run: the model it serves (GET /v1/models, when --model is
// not given) and, for the random dataset, whether its tokenizer counts the prompts as we do (POST
// /tokenize, as vLLM's benchmark does; prompts the server counts longer are cut to length through POST
// /detokenize). Servers without /tokenize are left alone with a warning.

import { ServerModelsError } from './errors.js';
import type { SampleRequest } from './sample-request.js';

/** The first model a server lists: `name` goes in requests, `id` (its root, e.g. the path) names results. */
export interface ServedModel {
  readonly name: string;
  readonly id: string;
}

/** GET {baseUrl}/v1/models → the first model. */
export async function firstServedModel(
  baseUrl: string,
  headers: Readonly<Record<string, string>> = {},
): Promise<ServedModel> {
  const url = `${baseUrl}/v1/models`;
  let body: unknown;
  try {
    const res = await fetch(url, { headers });
    if (!res.ok) throw new Error(`HTTP ${res.status} ${res.statusText}: ${(await res.text()).slice(0, 300)}`);
    body = await res.json();
  } catch (e) {
    const err = e as Error;
    const cause = err.cause instanceof Error ? ` (${err.cause.message})` : '';
    throw new ServerModelsError(
      `cannot list the models of the server at ${url}: ${err.message}${cause}; check that the server is ` +
        'running and the URL (--base-url, or --host/--port) is right, or pass --model',
    );
  }
  const data = (body as { data?: unknown }).data;
  const first = Array.isArray(data) ? (data[0] as { id?: unknown; root?: unknown } | undefined) : undefined;
  if (first === undefined || typeof first.id !== 'string') {
    throw new ServerModelsError(`the server at ${baseUrl} lists no models at /v1/models; pass --model`);
  }
  return { name: first.id, id: typeof first.root === 'string' ? first.root : first.id };
}

/**
 * vLLM's prompt alignment: if the server's /tokenize counts the first prompt differently from the dataset,
 * every prompt the server counts longer is cut to its dataset length with the server's own tokenizer.
 * `log` receives vLLM's warning lines.
 */
export async function alignPromptsToServerTokenizer(
  baseUrl: string,
  model: string,
  requests: readonly SampleRequest[],
  headers: Readonly<Record<string, string>>,
  log: (line: string) => void,
): Promise<SampleRequest[]> {
  const first = requests[0];
  if (first === undefined || first.sendAsTokenIds === true) return [...requests];
  const post = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
    const res = await fetch(`${baseUrl}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return (await res.json()) as Record<string, unknown>;
  };
  const tokenize = async (prompt: string): Promise<number[]> => {
    const tokens = (await post('/tokenize', { model, prompt, add_special_tokens: false })).tokens;
    if (!Array.isArray(tokens)) throw new Error('no "tokens" in the /tokenize answer');
    return tokens as number[];
  };
  let firstTokens: number[];
  try {
    firstTokens = await tokenize(first.prompt);
  } catch {
    log('WARNING: /tokenize unavailable, skipping alignment.');
    return [...requests];
  }
  if (firstTokens.length === first.promptLen) return [...requests];
  log(
    `WARNING: tokenizer mismatch (server=${firstTokens.length}, expected=${first.promptLen}), re-aligning prompts.`,
  );
  const fixOne = async (r: SampleRequest): Promise<SampleRequest> => {
    try {
      const tokens = await tokenize(r.prompt);
      if (tokens.length <= r.promptLen) return r;
      const prompt = (await post('/detokenize', { model, tokens: tokens.slice(0, r.promptLen) })).prompt;
      if (typeof prompt !== 'string') return r;
      const { promptTokenIds: _dropped, ...rest } = r;
      return { ...rest, prompt };
    } catch {
      return r;
    }
  };
  const out: SampleRequest[] = [];
  for (let i = 0; i < requests.length; i += 64) {
    out.push(...(await Promise.all(requests.slice(i, i + 64).map(fixOne))));
  }
  return out;
}
