// The dual-batch-overlap example runs on a tiny model and prints what it promises (issue 6, acceptance 4):
// the outputs of its four prompts with DBO on — the same text a single rank without DBO generates — and
// the step times with DBO off and on, with steps really split when on, and the same greedy tokens either
// way.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { LLM } from '../../src/engine/llm.js';
import { fixtureDir } from '../helpers/golden.js';

const EXAMPLE = fileURLToPath(new URL('../../examples/offline_dualbatch_overlap.js', import.meta.url));

const PROMPTS = [
  'Hello, my name is',
  'The president of the United States is',
  'The capital of France is',
  'The future of AI is',
];

test('examples/offline_dualbatch_overlap on the tiny v2 checkpoint', async () => {
  const model = fixtureDir('v2-tiny');
  const run = spawnSync(
    process.execPath,
    [
      EXAMPLE,
      '--model',
      model,
      '--num-prompts',
      '4',
      // v2-tiny has 256 positions.
      '--input-len',
      '100',
      '--max-tokens',
      '4',
      '--num-threads',
      '2',
      // Low thresholds, so that the tiny model's steps split: prefill (400 tokens) and decode (4).
      '--dbo-prefill-token-threshold',
      '64',
      '--dbo-decode-token-threshold',
      '2',
    ],
    { encoding: 'utf8', timeout: 120_000 },
  );
  assert.equal(run.status, 0, `example failed:\n${run.stdout}\n${run.stderr}`);
  const out = run.stdout;

  // The outputs: one line per prompt, with the text one rank without DBO generates.
  const reference = new LLM({ model, blockSize: 16, kvCacheMemory: 8 * 2 ** 20, numThreads: 1 });
  let expected: string[];
  try {
    const outs = await reference.generate(PROMPTS, { temperature: 0, maxTokens: 16 }, { useTqdm: false });
    expected = outs.map((o) => o.outputs[0]!.text);
  } finally {
    await reference.close();
  }
  assert.match(out, /^Outputs \(DBO on\):$/m);
  PROMPTS.forEach((p, i) => {
    const line = `Prompt: ${JSON.stringify(p)}, Generated text: ${JSON.stringify(expected[i])}`;
    assert.ok(out.includes(line), `missing line: ${line}\n--- output ---\n${out}`);
  });

  // The timing table.
  assert.match(
    out,
    /Step times \(median of 3 rounds, min-max in brackets\): 4 prompts of 100 tokens, 4 output tokens each; .*-tp 2/,
  );
  const row = (name: string) => {
    const m = new RegExp(
      `${name}\\s+prefill\\s+([\\d.]+) ms/step \\[([\\d.]+)-([\\d.]+)\\]\\s+decode\\s+([\\d.]+) ms/step \\[[\\d.]+-[\\d.]+\\]\\s+split steps (\\d+) of (\\d+)`,
    ).exec(out);
    assert.ok(m, `no "${name}" row in:\n${out}`);
    return {
      prefill: Number(m[1]),
      min: Number(m[2]),
      max: Number(m[3]),
      decode: Number(m[4]),
      split: Number(m[5]),
      steps: Number(m[6]),
    };
  };
  const off = row('DBO off');
  const on = row('DBO on');
  for (const r of [off, on]) {
    assert.ok(r.prefill > 0 && r.decode > 0, 'positive step times');
    assert.ok(r.min <= r.prefill && r.prefill <= r.max, 'the median lies within the spread');
    // Per round: one prefill step (4 prompts of 100 tokens), then three decode steps; three rounds.
    assert.equal(r.steps, 3 * (1 + 3));
  }
  assert.equal(off.split, 0, 'DBO off never splits');
  assert.equal(on.split, on.steps, 'DBO on splits every step here (all are over the lowered thresholds)');
  assert.match(out, /DBO on \/ off: prefill [\d.]+x \(rounds [\d.]+, [\d.]+, [\d.]+\), decode [\d.]+x/);
  assert.match(out, /^This example shows dual-batch overlap/m);
  assert.match(out, /identical greedy tokens with and without DBO: yes/);
});

test('examples/offline_dualbatch_overlap answers --help and bad flags with usage, not a stack trace', () => {
  const help = spawnSync(process.execPath, [EXAMPLE, '--help'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^usage: node dist\/examples\/offline_dualbatch_overlap\.js/m);
  for (const [args, why] of [
    [['--bogus'], /Unknown option '--bogus'/],
    [['--rounds', 'x'], /--rounds must be a positive integer, got "x"/],
    [['--moe-comm', 'ring'], /--moe-comm must be allgather or alltoall/],
    [['--dbo-order', 'zigzag'], /--dbo-order must be one of auto, alternate, staggered/],
  ] as const) {
    const run = spawnSync(process.execPath, [EXAMPLE, ...args], { encoding: 'utf8', timeout: 30_000 });
    assert.equal(run.status, 2, `${args.join(' ')}: exit code`);
    assert.match(run.stderr, why);
    assert.match(run.stderr, /usage:/);
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
  }
});
