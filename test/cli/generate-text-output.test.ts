// `duet generate --output text`: one prompt prints its text alone; several prompts print each output under
// a header that names its prompt (number, and the text or token ids), in input order.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { textOutputBlock } from '../../src/cli/generate.js';
import type { RequestOutput } from '../../src/engine/llm.js';
import { fixtureDir } from '../helpers/golden.js';

const ROOT = join(fixtureDir('v2-tiny'), '..', '..', '..');
const BIN = join(ROOT, 'bin', 'duet.js');

function output(text: string): RequestOutput {
  return {
    request_id: '0',
    prompt: null,
    prompt_token_ids: [1],
    prompt_logprobs: null,
    outputs: [
      {
        index: 0,
        text,
        token_ids: [2],
        cumulative_logprob: null,
        logprobs: null,
        finish_reason: 'length',
        stop_reason: null,
      },
    ],
    finished: true,
  };
}

test('one prompt: the text alone; several: a header per output naming its prompt', () => {
  assert.equal(textOutputBlock(output(' world'), 0, ['Hello']), ' world\n');
  const prompts = ['Hello', { prompt_token_ids: [1, 2, 3] }, { prompt: 'x'.repeat(100) }];
  assert.equal(textOutputBlock(output(' a'), 0, prompts), '--- prompt 1 of 3: "Hello" ---\n a\n');
  assert.equal(textOutputBlock(output(' b'), 1, prompts), '--- prompt 2 of 3: token ids [1, 2, 3] ---\n b\n');
  const long = textOutputBlock(output(' c'), 2, prompts);
  assert.match(long, /^--- prompt 3 of 3: "x{58}… ---\n c\n$/, 'a long prompt is cut to 60 characters');
});

test('duet generate with several prompts labels each output, in input order', () => {
  const r = spawnSync(
    process.execPath,
    [
      BIN,
      'generate',
      '--model',
      fixtureDir('v2-tiny'),
      '--prompt',
      'Hello',
      '--prompt',
      'The sky is',
      '--prompt-token-ids',
      '5,6,7',
      '--max-tokens',
      '3',
      '--temperature',
      '0',
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(r.status, 0, r.stderr);
  const headers = r.stdout.split('\n').filter((l) => l.startsWith('--- prompt '));
  assert.deepEqual(headers, [
    '--- prompt 1 of 3: "Hello" ---',
    '--- prompt 2 of 3: "The sky is" ---',
    '--- prompt 3 of 3: token ids [5, 6, 7] ---',
  ]);
});
