// Starts the real server in this process on an ephemeral port with the v2-lite-tiny golden checkpoint
// (small KV cache, 16-token blocks: start-up takes a fraction of a second) and the DeepSeek-V3 chat
// template, plus small helpers the end-to-end tests share.

import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import type { EngineConfig } from '../../src/config/engine-config.js';
import { engineConfigFromLLMOptions, type LLMOptions } from '../../src/engine/llm.js';
import { type DuetServer, type ServerOptions, startServer } from '../../src/server/server.js';
import { deepseekV3TokenizerFiles } from '../../src/tokenizer/tokenizer.js';
import { fixtureDir } from '../helpers/golden.js';

/** The model name the test servers serve. */
export const MODEL = 'v2-lite-tiny';

/** The real DeepSeek-V3 chat template (the fixture's tokenizer has none). */
export function deepseekChatTemplate(): string {
  const config = JSON.parse(readFileSync(deepseekV3TokenizerFiles().tokenizerConfig, 'utf8'));
  return config.chat_template as string;
}

export interface TestServer {
  readonly server: DuetServer;
  readonly baseUrl: string;
  readonly client: OpenAI;
}

/** Starts a server on 127.0.0.1:0 over the v2-lite-tiny fixture; `engine` overrides engine settings. */
export function startTestServer(
  options: Partial<ServerOptions> = {},
  engine: Partial<LLMOptions> = {},
): Promise<TestServer> {
  const engineConfig = engineConfigFromLLMOptions({
    model: fixtureDir('v2-lite-tiny'),
    kvCacheMemory: 16 * 2 ** 20,
    blockSize: 16,
    chatTemplate: deepseekChatTemplate(),
    ...engine,
  });
  return startWith(engineConfig, { servedModelNames: [MODEL], ...options });
}

/**
 * Starts a server on 127.0.0.1:0 over Duet's embedded default model (the DeepSeek-V3 tokenizer and a
 * 4,096-token context; small KV cache).
 */
export function startEmbeddedServer(
  options: Partial<ServerOptions> = {},
  engine: Partial<LLMOptions> = {},
): Promise<TestServer> {
  const engineConfig = engineConfigFromLLMOptions({ kvCacheMemory: 16 * 2 ** 20, blockSize: 16, ...engine });
  return startWith(engineConfig, options);
}

async function startWith(engineConfig: EngineConfig, options: Partial<ServerOptions>): Promise<TestServer> {
  const server = await startServer({
    engineConfig,
    host: '127.0.0.1',
    port: 0,
    disableLogStats: true,
    ...options,
  });
  const client = new OpenAI({
    baseURL: `${server.url}/v1`,
    apiKey: options.apiKey ?? 'unused',
    maxRetries: 0,
    timeout: 60_000,
  });
  return { server, baseUrl: server.url, client };
}

/** POSTs JSON (or a raw string body) and returns the status and the parsed JSON reply. */
export async function postJson(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
  // biome-ignore lint/suspicious/noExplicitAny: tests read reply fields freely and assert on them
): Promise<{ status: number; json: any }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text === '' ? null : JSON.parse(text) };
}

/** Reads one sample of a Prometheus text exposition: `name{labels}` summed over matching series. */
export function metricValue(text: string, name: string, labelFilter = ''): number {
  let total = 0;
  let found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([^\s{]+)(\{[^}]*\})?\s+(\S+)$/.exec(line);
    if (!m || m[1] !== name || !(m[2] ?? '').includes(labelFilter)) continue;
    total += Number(m[3]);
    found = true;
  }
  if (!found) throw new Error(`metric ${name}${labelFilter ? ` with ${labelFilter}` : ''} not found`);
  return total;
}

/** GETs /metrics. */
export async function scrape(baseUrl: string): Promise<string> {
  const res = await fetch(`${baseUrl}/metrics`);
  return res.text();
}

/** Polls `check` every 20 ms until it returns true or `timeoutMs` passes; returns its last result. */
export async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Token ids from log-prob tokens returned with return_tokens_as_token_ids ("token_id:42"). */
export function idsOfTokens(tokens: readonly string[]): number[] {
  return tokens.map((t) => {
    const m = /^token_id:(\d+)$/.exec(t);
    if (!m) throw new Error(`expected a "token_id:<id>" token, got ${JSON.stringify(t)}`);
    return Number(m[1]);
  });
}
