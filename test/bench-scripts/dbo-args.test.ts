// The DBO benchmark's flags (bench/dbo-args.ts): the defaults of both phases, the decode phase's flags, and
// a clear error naming the flag and what it allows for every bad value, before any server starts.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { DboBenchArgError, parseDboBenchArgs, parseDecodeSeqs } from '../../bench/dbo-args.js';

/** Asserts that `argv` is refused with a DboBenchArgError whose message matches `message`. */
function refuses(argv: string[], message: RegExp): void {
  assert.throws(
    () => parseDboBenchArgs(argv),
    (e: unknown) => e instanceof DboBenchArgError && message.test(e.message),
    `${argv.join(' ')} should be refused with ${message}`,
  );
}

describe('bench:dbo flags', () => {
  test('prefill is the default phase, with the documented defaults', () => {
    const a = parseDboBenchArgs([]);
    assert.equal(a.phase, 'prefill');
    assert.equal(a.inputLen, 512);
    assert.equal(a.numPrompts, 16);
    assert.equal(a.requestRate, '12');
    assert.equal(a.moeComm, 'allgather');
    assert.equal(a.dboDecodeTokenThreshold, null);
    assert.equal(a.numWarmups, 16);
    assert.equal(parseDboBenchArgs(['--phase', 'decode']).numWarmups, 2);
    assert.equal(parseDboBenchArgs(['--num-warmups', '0']).numWarmups, 0);
  });

  test('the decode phase: batch sizes, output length, a short prompt by default, the threshold', () => {
    const a = parseDboBenchArgs([
      ...['--phase', 'decode', '--decode-seqs', '32, 64', '--output-len', '48'],
      ...['--moe-comm', 'alltoall', '--dbo-decode-token-threshold', '16', '--bandwidth', '1.5gbit'],
    ]);
    assert.equal(a.phase, 'decode');
    assert.deepEqual(a.decodeSeqs, [32, 64]);
    assert.equal(a.outputLen, 48);
    assert.equal(a.inputLen, 32);
    assert.equal(a.moeComm, 'alltoall');
    assert.equal(a.dboDecodeTokenThreshold, 16);
    assert.equal(a.bandwidth, '1.5gbit');
    assert.deepEqual(parseDboBenchArgs(['--phase', 'decode']).decodeSeqs, [32, 64]);
  });

  test('bad values name the flag, what it got and what is allowed', () => {
    refuses(['--phase', 'prefil'], /--phase must be prefill or decode, got "prefil"/);
    refuses(
      ['--phase', 'decode', '--decode-seqs', '32,x'],
      /--decode-seqs .* integers from 2 to 1024 .*"32,x"/,
    );
    refuses(['--phase', 'decode', '--decode-seqs', '1'], /--decode-seqs .* from 2 to 1024/);
    refuses(['--phase', 'decode', '--decode-seqs', '32,,64'], /--decode-seqs/);
    refuses(['--phase', 'decode', '--decode-seqs', '32,32'], /--decode-seqs lists a batch size twice/);
    refuses(
      ['--phase', 'decode', '--output-len', '1'],
      /--output-len must be an integer from 2 to 4096, got "1"/,
    );
    refuses(['--phase', 'decode', '--output-len', '2.5'], /--output-len must be an integer/);
    refuses(
      ['--phase', 'decode', '--dbo-decode-token-threshold', '0'],
      /--dbo-decode-token-threshold must be an integer >= 2/,
    );
    refuses(['--input-len=-3'], /--input-len must be an integer >= 1, got "-3"/);
    refuses(['--rounds', '0'], /--rounds must be an integer >= 1/);
    refuses(['--moe-comm', 'ring'], /--moe-comm must be allgather or alltoall, got "ring"/);
    refuses(['--bandwidth', 'fast'], /--bandwidth must be auto or a tc rate/);
    refuses(['--request-rate', '0'], /--request-rate must be inf or a number > 0/);
    refuses(['--target-comm-share', '1.5'], /--target-comm-share must be a number > 0 and <= 0.95/);
    refuses(['--dbo-auto-off', 'yes'], /--dbo-auto-off must be true or false/);
    refuses(['--frobnicate'], /frobnicate/);
  });

  test('flags of the other phase are refused, not ignored', () => {
    refuses(['--decode-seqs', '32'], /--decode-seqs need --phase decode/);
    refuses(['--output-len=8'], /--output-len need --phase decode/);
    refuses(['--phase', 'decode', '--num-prompts', '8'], /--num-prompts: not for --phase decode/);
    refuses(['--phase', 'decode', '--request-rate', '4'], /--request-rate: not for --phase decode/);
  });

  test('parseDecodeSeqs keeps the order given', () => {
    assert.deepEqual(parseDecodeSeqs('64,32,2'), [64, 32, 2]);
  });
});
