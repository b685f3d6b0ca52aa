// The streamed completions chunk written from its template is byte for byte JSON.stringify of the chunk
// object the route builds otherwise (same keys in the same order), for any text (lone surrogates, control
// characters, quotes), index, finish and stop reason, with and without `usage: null`.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { CompletionChunkTemplate } from '../../src/server/openai/completion-chunk.js';
import type { CompletionChunk } from '../../src/server/openai/responses.js';

/** The chunk as the route's general path builds it (routes/completions.ts). */
function chunkObject(
  id: string,
  created: number,
  model: string,
  withNullUsage: boolean,
  index: number,
  text: string,
  finishReason: string | null,
  stopReason: string | number | null,
): CompletionChunk {
  const chunk: CompletionChunk = {
    id,
    object: 'text_completion',
    created,
    model,
    choices: [{ index, text, logprobs: null, finish_reason: finishReason, stop_reason: stopReason }],
  };
  if (withNullUsage) chunk.usage = null;
  return chunk;
}

describe('CompletionChunkTemplate', () => {
  test('a running and a finished chunk, as the stream sends them', () => {
    const t = new CompletionChunkTemplate('cmpl-1', 1765130000, 'duet-default', true);
    assert.equal(
      t.json(0, ' word', null, null),
      '{"id":"cmpl-1","object":"text_completion","created":1765130000,"model":"duet-default",' +
        '"choices":[{"index":0,"text":" word","logprobs":null,"finish_reason":null,"stop_reason":null}],' +
        '"usage":null}',
    );
    assert.equal(
      new CompletionChunkTemplate('cmpl-1', 1, 'm', false).json(3, '"\n', 'stop', 7),
      '{"id":"cmpl-1","object":"text_completion","created":1,"model":"m",' +
        '"choices":[{"index":3,"text":"\\"\\n","logprobs":null,"finish_reason":"stop","stop_reason":7}]}',
    );
  });

  test('equals JSON.stringify of the chunk object for any fields', () => {
    const anyText = fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }), fc.string());
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary' }),
        fc.integer({ min: 0, max: 2 ** 31 }),
        fc.string({ unit: 'binary' }),
        fc.boolean(),
        fc.nat(100_000),
        anyText,
        fc.constantFrom(null, 'stop', 'length', 'abort'),
        fc.oneof(fc.constant(null), fc.nat(200_000), anyText),
        (id, created, model, withNullUsage, index, text, finishReason, stopReason) => {
          const t = new CompletionChunkTemplate(id, created, model, withNullUsage);
          const expected = JSON.stringify(
            chunkObject(id, created, model, withNullUsage, index, text, finishReason, stopReason),
          );
          assert.equal(t.json(index, text, finishReason, stopReason), expected);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
