// The JSONL prompts file: text and token-id lines, optional output_len, oversampling when the file is
// shorter than --num-prompts, and errors that name the file, the line and what is allowed.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DatasetFileError } from '../../src/bench/errors.js';
import { sampleJsonlDataset } from '../../src/bench/jsonl-dataset.js';
import { loadTokenizer } from '../../src/tokenizer/tokenizer.js';
import { fixtureDir } from '../helpers/golden.js';
import { tempDir } from '../helpers/temp-dir.js';

const tiny = loadTokenizer(fixtureDir('v2-lite-tiny'));
const dir = tempDir('duet-bench-jsonl-');

function file(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

describe('jsonl dataset', () => {
  const path = file(
    'ok.jsonl',
    '{"prompt": "the cat sat"}\n\n{"prompt_token_ids": [5, 6, 7, 8], "output_len": 3}\n{"prompt": "and", "output_len": 9}\n',
  );

  test('reads text and token-id lines in order, with their output lengths', () => {
    const r = sampleJsonlDataset(tiny, {
      path,
      numPrompts: 3,
      defaultOutputLen: 16,
      seed: 0,
      requestIdPrefix: 'p',
    });
    assert.equal(r.length, 3);
    assert.equal(r[0]!.prompt, 'the cat sat');
    assert.equal(r[0]!.promptLen, tiny.encode('the cat sat').length); // as the server counts it, BOS included
    assert.equal(r[0]!.expectedOutputLen, 16);
    assert.deepEqual(r[1]!.promptTokenIds, [5, 6, 7, 8]);
    assert.equal(r[1]!.sendAsTokenIds, true);
    assert.equal(r[1]!.promptLen, 4);
    assert.equal(r[1]!.expectedOutputLen, 3);
    assert.equal(r[2]!.expectedOutputLen, 9);
    assert.deepEqual(
      r.map((x) => x.requestId),
      ['p0', 'p1', 'p2'],
    );
  });

  test('fewer lines than --num-prompts: the rest are drawn from the file (seeded)', () => {
    const a = sampleJsonlDataset(tiny, { path, numPrompts: 10, defaultOutputLen: 16, seed: 4 });
    const b = sampleJsonlDataset(tiny, { path, numPrompts: 10, defaultOutputLen: 16, seed: 4 });
    assert.equal(a.length, 10);
    assert.deepEqual(a, b);
    assert.equal(a[0]!.prompt, 'the cat sat');
  });

  test('bad files name the line and the rule', () => {
    const cases: [string, RegExp][] = [
      ['{"prompt": "a"}\nnot json\n', /bad1\.jsonl:2 is not valid JSON/],
      ['{"text": "a"}\n', /exactly one of "prompt"/],
      ['{"prompt": "a", "prompt_token_ids": [1]}\n', /exactly one of/],
      ['{"prompt_token_ids": [1, -2]}\n', /integers >= 0/],
      ['{"prompt": ""}\n', /is empty/],
      ['{"prompt": "a", "output_len": 0}\n', /"output_len" must be an integer >= 1/],
      ['\n\n', /has no prompts/],
    ];
    cases.forEach(([text, re], i) => {
      const p = file(`bad${i + 1}.jsonl`, text);
      assert.throws(
        () => sampleJsonlDataset(tiny, { path: p, numPrompts: 1, defaultOutputLen: 1, seed: 0 }),
        re,
      );
    });
    assert.throws(
      () =>
        sampleJsonlDataset(tiny, {
          path: join(dir, 'missing.jsonl'),
          numPrompts: 1,
          defaultOutputLen: 1,
          seed: 0,
        }),
      DatasetFileError,
    );
  });
});
