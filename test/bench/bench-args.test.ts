// Tests of bench/bench-args: a benchmark answers --help with the comment that opens its file, and a bad
// flag with the error and that usage, exit status 2, never a stack trace.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { leadingComment } from '../../bench/bench-args.js';

/** A benchmark that parses its flags with parseBenchArgs (compiled next to this test's dist folder). */
const THROUGHPUT = fileURLToPath(new URL('../../bench/throughput.js', import.meta.url));

function run(...args: string[]) {
  return spawnSync(process.execPath, [THROUGHPUT, ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('bench-args', () => {
  it('takes the usage from the opening comment of the file', () => {
    const usage = leadingComment(new URL('../../bench/throughput.js', import.meta.url).href);
    assert.match(usage, /^Offline throughput benchmark/);
    assert.match(usage, /--num-prompts/);
    assert.doesNotMatch(usage, /^\/\//m, 'the comment slashes are removed');
    assert.doesNotMatch(usage, /import /, 'the comment ends where the code begins');
  });

  it('prints the usage for --help and exits with 0', () => {
    const r = run('--help');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^Offline throughput benchmark/);
  });

  it('answers an unknown flag and a missing value with the error, the usage and status 2', () => {
    for (const [args, why] of [
      [['--bogus'], /Unknown option '--bogus'/],
      [['--num-prompts'], /'--num-prompts <value>' argument missing/],
    ] as const) {
      const r = run(...args);
      assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /^throughput\.js: /);
      assert.match(r.stderr, why);
      assert.match(r.stderr, /Offline throughput benchmark/);
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });

  it('answers a value checked after parsing (a range, a choice) the same way', () => {
    for (const [script, args, why, usage] of [
      [
        'serve-overhead.js',
        ['--rounds', '0'],
        /--rounds must be an integer >= 1, got 0/,
        /^Serving overhead/m,
      ],
      [
        'vs-llamacpp.js',
        ['--accuracy-len', '0'],
        /--accuracy-len must be an integer ≥ 1, got "0"/,
        /--accuracy-len/,
      ],
      [
        'vs-llamacpp.js',
        ['--w8a8-recipe', 'gptq'],
        /--w8a8-recipe must be rtn or smoothquant, got "gptq"/,
        /--rows/,
      ],
    ] as const) {
      const path = fileURLToPath(new URL(`../../bench/${script}`, import.meta.url));
      const r = spawnSync(process.execPath, [path, ...args], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 2, `${script} ${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^${script.replace('.', '\\.')}: `));
      assert.match(r.stderr, why);
      assert.match(r.stderr, usage, 'the usage follows');
      assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    }
  });
});
