// Property-based fuzzing of the HTTP API (fast-check) against the embedded default model: random and
// mutated bodies, content types, headers and paths for every route. Every reply must be below 500, every
// error must be a JSON object in vLLM's shape whose code is the HTTP status, streams must carry no 5xx
// error event, and afterwards the engine must be idle with no KV block in use and still answer a normal
// request. DUET_FUZZ_RUNS sets the number of requests (default 3,000; `npm run test:fuzz` runs 30,000) and
// DUET_FUZZ_SEED replays a run (fast-check prints the seed of a failure).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { DEFAULT_SAMPLING_LIMITS } from '../../src/sampling/sampling-params.js';
import { postJson, startEmbeddedServer, type TestServer } from './serve-harness.js';

const API_KEY = 'sk-fuzz';
const MODEL = 'duet-default';
/** Requests sent together in one property run (the engine batches them). */
const REQUESTS_PER_RUN = 8;
const NUM_REQUESTS = Number(process.env.DUET_FUZZ_RUNS ?? 3000);
const SEED = process.env.DUET_FUZZ_SEED !== undefined ? Number(process.env.DUET_FUZZ_SEED) : undefined;

/** One HTTP request the fuzzer sends. */
interface FuzzRequest {
  readonly method: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string | undefined;
}

const text = fc.oneof(
  fc.string({ maxLength: 24 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '\ud800',
    '<｜begin▁of▁sentence｜>',
    '<｜end▁of▁sentence｜>',
    '{{ x }}',
    '%s',
  ),
);
const anyJson = fc.jsonValue({ maxDepth: 3 });
const tokenId = fc.oneof(
  fc.integer({ min: 0, max: 2000 }),
  fc.integer({ min: -3, max: 200_000 }),
  fc.integer(),
);
const smallInt = (min: number, max: number) => fc.oneof(fc.integer({ min, max }), fc.integer());
const num = fc.oneof(
  fc.double({ noNaN: true, min: -3, max: 3 }),
  fc.double(),
  fc.constantFrom(0, 1, -1, 1e308),
);

const message = fc.record(
  {
    role: fc.constantFrom('user', 'assistant', 'system', 'tool', 'developer', ''),
    content: fc.oneof(
      text,
      fc.constant(null),
      fc.array(
        fc.record({ type: fc.constantFrom('text', 'image_url', 'x'), text }, { requiredKeys: ['type'] }),
        {
          maxLength: 3,
        },
      ),
    ),
    name: text,
  },
  { requiredKeys: ['role'] },
);

/** Sampling fields both generation routes take, most of them sometimes out of range or of the wrong type. */
const samplingFields = {
  model: fc.constantFrom(MODEL, 'other-model', null),
  n: smallInt(0, 3),
  temperature: num,
  top_p: num,
  top_k: smallInt(-2, 50),
  min_p: num,
  seed: fc.oneof(fc.integer(), fc.double()),
  presence_penalty: num,
  frequency_penalty: num,
  repetition_penalty: num,
  stop: fc.oneof(text, fc.array(text, { maxLength: 4 })),
  stop_token_ids: fc.array(tokenId, { maxLength: 4 }),
  logit_bias: fc.dictionary(fc.oneof(tokenId.map(String), text), num, { maxKeys: 4 }),
  ignore_eos: fc.boolean(),
  min_tokens: smallInt(0, 3),
  skip_special_tokens: fc.boolean(),
  include_stop_str_in_output: fc.boolean(),
  stream: fc.boolean(),
  stream_options: fc.record({ include_usage: fc.boolean(), continuous_usage_stats: fc.boolean() }),
  prompt_logprobs: smallInt(0, 3),
  echo: fc.boolean(),
  best_of: smallInt(1, 3),
  use_beam_search: fc.boolean(),
  response_format: fc.record({ type: fc.constantFrom('text', 'json_object') }),
  priority: smallInt(0, 1),
  truncate_prompt_tokens: smallInt(1, 8),
  add_special_tokens: fc.boolean(),
  return_tokens_as_token_ids: fc.boolean(),
};

const completionBody = fc.record(
  {
    ...samplingFields,
    prompt: fc.oneof(
      text,
      fc.array(text, { maxLength: 3 }),
      fc.array(tokenId, { maxLength: 8 }),
      fc.array(fc.array(tokenId, { maxLength: 4 }), { maxLength: 3 }),
    ),
    max_tokens: fc.oneof(fc.integer({ min: 1, max: 2 }), fc.integer(), fc.constant(null)),
    logprobs: smallInt(0, 5),
    suffix: text,
  },
  { requiredKeys: ['prompt', 'max_tokens'] },
);

const chatBody = fc.record(
  {
    ...samplingFields,
    messages: fc.array(message, { maxLength: 3 }),
    max_tokens: fc.oneof(fc.integer({ min: 1, max: 2 }), fc.integer()),
    max_completion_tokens: fc.integer({ min: 1, max: 2 }),
    logprobs: fc.boolean(),
    top_logprobs: smallInt(0, 5),
    tools: fc.array(anyJson, { maxLength: 2 }),
    tool_choice: fc.oneof(fc.constantFrom('none', 'auto', 'required'), anyJson),
    add_generation_prompt: fc.boolean(),
    continue_final_message: fc.boolean(),
    documents: fc.array(anyJson, { maxLength: 2 }),
    chat_template: text,
    chat_template_kwargs: fc.dictionary(text, anyJson, { maxKeys: 3 }),
  },
  { requiredKeys: ['messages', 'max_tokens'] },
);

const tokenizeBody = fc.record({
  model: fc.constantFrom(MODEL, 'other-model'),
  prompt: text,
  messages: fc.array(message, { maxLength: 2 }),
  add_special_tokens: fc.boolean(),
  add_generation_prompt: fc.boolean(),
  return_token_strs: fc.boolean(),
  chat_template_kwargs: fc.dictionary(text, anyJson, { maxKeys: 2 }),
});
const detokenizeBody = fc.record({
  model: fc.constantFrom(MODEL, 'x'),
  tokens: fc.array(tokenId, { maxLength: 8 }),
});

/** A body replaced, one field of it replaced by any JSON value, or its JSON text cut or corrupted. */
function mutated(body: fc.Arbitrary<Record<string, unknown>>): fc.Arbitrary<string | undefined> {
  const asText = body.map((b) => JSON.stringify(b));
  return fc.oneof(
    { weight: 4, arbitrary: asText },
    {
      weight: 3,
      arbitrary: fc.tuple(body, fc.string({ maxLength: 24 }), anyJson).map(([b, key, value]) => {
        const keys = Object.keys(b);
        const k = keys.length > 0 && key.length % 2 === 0 ? keys[key.length % keys.length]! : key;
        return JSON.stringify({ ...b, [k]: value });
      }),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(asText, fc.nat(), fc.string({ maxLength: 3 }))
        .map(
          ([t, at, insert]) => t.slice(0, at % (t.length + 1)) + insert + t.slice((at % (t.length + 1)) + 1),
        ),
    },
    { weight: 1, arbitrary: anyJson.map((v) => JSON.stringify(v)) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(undefined, '', 'null', '[]', '{', '"x"', '1e999999', '{"a":'.repeat(70)),
    },
  );
}

const postRoutes: [string, fc.Arbitrary<string | undefined>][] = [
  ['/v1/completions', mutated(completionBody)],
  ['/v1/chat/completions', mutated(chatBody)],
  ['/tokenize', mutated(tokenizeBody)],
  ['/detokenize', mutated(detokenizeBody)],
  ['/ping', fc.constantFrom(undefined, '{}')],
];
const getPaths = ['/v1/models', '/health', '/ping', '/version', '/metrics', '/v1/completions', '/nope'];
/** Path spellings that the router decodes to a route (finding 1's bypass) or to nothing. */
const pathVariant = fc
  .tuple(
    fc.constantFrom(...postRoutes.map(([p]) => p), ...getPaths),
    fc.constantFrom('', '%76', '%31', '/', '?x=1', '//', '%2F'),
  )
  .map(([path, twist]) =>
    twist === '%76' ? path.replace('v', '%76') : twist === '%31' ? path.replace('1', '%31') : path + twist,
  );

const headers = fc.record({
  authorization: fc.oneof(
    { weight: 9, arbitrary: fc.constant(`Bearer ${API_KEY}`) },
    {
      weight: 1,
      // Printable ASCII: a header value fetch can send at all.
      arbitrary: fc.oneof(
        fc.string({ maxLength: 24 }),
        fc.constant(`Bearer ${API_KEY}x`),
        fc.constant('Bearer '),
      ),
    },
  ),
  'content-type': fc.oneof(
    { weight: 9, arbitrary: fc.constant('application/json') },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        'text/plain',
        'application/json; charset=latin1',
        'application/x-www-form-urlencoded',
        'x',
        '',
      ),
    },
  ),
  origin: fc.oneof(
    { weight: 8, arbitrary: fc.constant('') },
    { weight: 2, arbitrary: fc.constantFrom('http://localhost:3000', 'http://evil.example', 'null') },
  ),
});

const fuzzRequest: fc.Arbitrary<FuzzRequest> = fc.oneof(
  {
    weight: 8,
    arbitrary: fc.tuple(fc.constantFrom(...postRoutes.keys()), headers).chain(([i, h]) => {
      const [path, body] = postRoutes[i]!;
      return body.map((b): FuzzRequest => ({ method: 'POST', path, headers: h, body: b }));
    }),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.constantFrom(...getPaths), headers)
      .map(([path, h]) => ({ method: 'GET', path, headers: h, body: undefined })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(
        pathVariant,
        fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'),
        headers,
        mutated(completionBody),
      )
      .map(([path, method, h, body]) => ({
        method,
        path,
        headers: h,
        body: method === 'GET' ? undefined : body,
      })),
  },
);

/** How many replies had each status (reported, so that a run that only ever got 400s shows it). */
const statusCounts = new Map<number, number>();

/** Sends one request and checks the reply: below 500, errors in vLLM's shape, streams without 5xx events. */
async function sendAndCheck(baseUrl: string, r: FuzzRequest): Promise<void> {
  const headers = Object.fromEntries(Object.entries(r.headers).filter(([, v]) => v !== ''));
  const res = await fetch(`${baseUrl}${r.path}`, {
    method: r.method,
    headers,
    ...(r.body !== undefined ? { body: r.body } : {}),
  });
  const body = await res.text();
  statusCounts.set(res.status, (statusCounts.get(res.status) ?? 0) + 1);
  const what = `${r.method} ${r.path} ${JSON.stringify(headers)} ${String(r.body).slice(0, 400)} -> ${res.status} ${body.slice(0, 300)}`;
  assert.ok(res.status < 500, `a 5xx: ${what}`);
  const type = res.headers.get('content-type') ?? '';
  if (res.status >= 400) {
    const json = JSON.parse(body);
    assert.equal(typeof json.error?.message, 'string', what);
    assert.equal(typeof json.error.type, 'string', what);
    assert.ok(json.error.param === null || typeof json.error.param === 'string', what);
    assert.equal(json.error.code, res.status, what);
  } else if (type.startsWith('text/event-stream')) {
    const events = body.split('\n\n').filter((e) => e.startsWith('data: '));
    assert.equal(events.at(-1), 'data: [DONE]', what);
    for (const e of events.slice(0, -1)) {
      const json = JSON.parse(e.slice('data: '.length));
      if (json.error !== undefined) assert.ok(json.error.code < 500, `a 5xx event: ${what}`);
    }
  } else if (type.startsWith('application/json')) {
    JSON.parse(body);
  }
}

describe('fuzzing the HTTP API (fast-check)', () => {
  let t: TestServer;
  before(async () => {
    t = await startEmbeddedServer(
      {
        apiKey: API_KEY,
        // Small bounds keep each valid request cheap; they are the server's own limits, exercised too.
        samplingLimits: { ...DEFAULT_SAMPLING_LIMITS, maxN: 3, maxStopStrings: 3 },
        maxChoicesPerRequest: 6,
      },
      { maxModelLen: 32 },
    );
  });
  after(async () => {
    await t.server.close();
  });

  test(`${NUM_REQUESTS} random and mutated requests: no 5xx, vLLM error shape`, async (t2) => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fuzzRequest, { minLength: REQUESTS_PER_RUN, maxLength: REQUESTS_PER_RUN }),
        async (requests) => {
          await Promise.all(requests.map((r) => sendAndCheck(t.baseUrl, r)));
        },
      ),
      { numRuns: Math.ceil(NUM_REQUESTS / REQUESTS_PER_RUN), ...(SEED !== undefined ? { seed: SEED } : {}) },
    );
    const counts = [...statusCounts].sort(([a], [b]) => a - b).map(([status, n]) => `${status}: ${n}`);
    t2.diagnostic(`replies by status: ${counts.join(', ')}`);
    // The generator must reach the engine, not only the validators: a share of replies are successes.
    assert.ok((statusCounts.get(200) ?? 0) >= NUM_REQUESTS / 20, 'fewer than 5% of the requests succeeded');
  });

  test('afterwards the engine is idle, holds no KV block and answers a normal request', async () => {
    assert.equal((await fetch(`${t.baseUrl}/health`)).status, 200);
    const stats = await t.server.engine.stats();
    assert.equal(stats.numRunning + stats.numWaiting, 0);
    assert.equal(stats.kvCacheUsage, 0);
    const r = await postJson(
      `${t.baseUrl}/v1/completions`,
      { model: MODEL, prompt: 'Hello', max_tokens: 4, temperature: 0, ignore_eos: true },
      { authorization: `Bearer ${API_KEY}` },
    );
    assert.equal(r.status, 200);
    assert.equal(r.json.usage.completion_tokens, 4);
  });
});
