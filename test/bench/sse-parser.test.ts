// The SSE parser on the shapes real servers send: events split anywhere across reads, CRLF and CR line
// ends, multi-line data, comments (pings), other fields, and a last event without its blank line.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SseParser } from '../../src/bench/sse-parser.js';

function feed(parts: readonly string[]): string[] {
  const p = new SseParser();
  const out: string[] = [];
  for (const part of parts) out.push(...p.push(part));
  out.push(...p.end());
  return out;
}

describe('SseParser', () => {
  const stream = 'data: {"a":1}\n\n: ping\n\nevent: x\nid: 7\ndata: {"b":2}\n\ndata: [DONE]\n\n';

  test('whole stream in one read', () => {
    assert.deepEqual(feed([stream]), ['{"a":1}', '{"b":2}', '[DONE]']);
  });

  test('the same stream split at every position gives the same events', () => {
    for (let i = 0; i <= stream.length; i++) {
      assert.deepEqual(
        feed([stream.slice(0, i), stream.slice(i)]),
        ['{"a":1}', '{"b":2}', '[DONE]'],
        `split ${i}`,
      );
    }
    assert.deepEqual(feed([...stream]), ['{"a":1}', '{"b":2}', '[DONE]']); // one character per read
  });

  test('CRLF and CR line ends, also split between CR and LF', () => {
    assert.deepEqual(feed(['data: 1\r\n\r\ndata: 2\r', '\n\r', '\ndata: 3\r\r']), ['1', '2', '3']);
  });

  test('data lines of one event are joined with newlines; "data:" without a space', () => {
    assert.deepEqual(feed(['data:first\ndata: second\n\n']), ['first\nsecond']);
  });

  test('a last event without its closing blank line is still delivered', () => {
    assert.deepEqual(feed(['data: {"x":1}\n\ndata: {"y":2}']), ['{"x":1}', '{"y":2}']);
  });

  test('only comments and blank lines: no events', () => {
    assert.deepEqual(feed([': keep-alive\n\n\n\n']), []);
  });
});
