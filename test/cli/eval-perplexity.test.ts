// `duet eval perplexity`: the sliding windows score every token but the first exactly once; the command's
// figure on a short passage of the held-out text equals the perplexity computed here independently, from
// the log-softmax of the logits the model's forward returns for each window; bad input is one clear error.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { PerplexityInputError, perplexityWindows } from '../../src/cli/eval.js';
import { MlaKvCache } from '../../src/layers/mla-kv-cache.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { openSafetensors } from '../../src/loader/safetensors.js';
import { DeepseekForCausalLM } from '../../src/models/deepseek.js';
import { embeddedModelDir } from '../../src/models/model-loader.js';
import { createWasmKernels } from '../../src/platforms/cpu/wasm-kernels.js';
import { loadTokenizer } from '../../src/tokenizer/tokenizer.js';
import { fixtureDir, logSoftmax } from '../helpers/golden.js';
import { tempDir } from '../helpers/temp-dir.js';

const ROOT = join(fixtureDir('speaking-model'), '..', '..', '..');
const BIN = join(ROOT, 'bin', 'duet.js');
const PASSAGE = join(fixtureDir('speaking-model'), 'passage.txt');
const SMALL_ENGINE = ['--kv-cache-memory', '16MiB', '--num-threads', '2'];

function duet(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 300_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('perplexity windows', () => {
  test('score every token but the first exactly once, with the overlap as context', () => {
    for (const [n, context, stride] of [
      [2, 2, 1],
      [10, 4, 1],
      [10, 4, 3],
      [100, 16, 8],
      [101, 16, 15],
      [7, 64, 32],
    ] as const) {
      const windows = perplexityWindows(n, context, stride);
      const scored = new Array<number>(n).fill(0);
      windows.forEach((w, k) => {
        assert.equal(w.begin, k * stride);
        assert.ok(w.end - w.begin <= context && w.end <= n);
        assert.ok(w.firstScored > w.begin, 'a scored token has at least one token of context');
        if (k > 0) assert.ok(w.firstScored - w.begin >= context - stride, 'the overlap is context');
        for (let t = w.firstScored; t < w.end; t++) scored[t]!++;
      });
      assert.deepEqual(
        scored,
        [0, ...new Array(n - 1).fill(1)],
        `n ${n} context ${context} stride ${stride}`,
      );
      assert.equal(windows.at(-1)!.end, n);
    }
  });

  test('refuse fewer than two tokens and a stride that is not below the context', () => {
    assert.throws(() => perplexityWindows(1, 8, 4), PerplexityInputError);
    assert.throws(() => perplexityWindows(0, 8, 4), PerplexityInputError);
    assert.throws(() => perplexityWindows(10, 8, 8), /--stride must be an integer in \[1, 7\]/);
    assert.throws(() => perplexityWindows(10, 8, 0), PerplexityInputError);
    assert.throws(() => perplexityWindows(10, 1, 1), /--context must be an integer >= 2/);
  });
});

describe('duet eval perplexity', () => {
  test('on a held-out passage equals the perplexity of the log-softmax of the forward logits', async () => {
    const context = 64;
    const stride = 24;
    const r = duet([
      'eval',
      'perplexity',
      '--file',
      PASSAGE,
      '--context',
      String(context),
      '--stride',
      String(stride),
      '--output',
      'json',
      '--no-progress',
      ...SMALL_ENGINE,
    ]);
    assert.equal(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as { perplexity: number; numScoredTokens: number };

    // Independently: token t (t >= 1) is scored in the first window (starts k * stride, context long)
    // that reaches past it, from that window's logits at t - 1.
    const dir = embeddedModelDir();
    const ids = loadTokenizer(dir).encode(readFileSync(PASSAGE, 'utf8'));
    const config = loadDeepseekConfig(dir);
    const kernels = await createWasmKernels({ numThreads: 2 });
    const source = openSafetensors(dir);
    const model = new DeepseekForCausalLM(config, { kernels, source, weightDType: 'bf16' });
    source.close();
    const V = config.vocabSize;
    const windowLogits = new Map<number, Float32Array>();
    const logitsOf = async (k: number): Promise<Float32Array> => {
      const cached = windowLogits.get(k);
      if (cached) return cached;
      const window = ids.slice(k * stride, Math.min(k * stride + context, ids.length));
      const L = window.length;
      const cache = MlaKvCache.forModel(kernels, config, Math.ceil(L / 16), 16);
      const logits = await model.forward(
        {
          numTokens: L,
          tokenIds: Int32Array.from(window),
          positions: Int32Array.from({ length: L }, (_, i) => i),
          slotMapping: Int32Array.from({ length: L }, (_, i) => i),
          seqs: [{ queryStart: 0, queryLen: L, blockTable: Int32Array.from({ length: L }, (_, i) => i) }],
          logitsIndices: Int32Array.from({ length: L }, (_, i) => i),
        },
        cache,
      );
      const copy = logits.slice();
      windowLogits.set(k, copy);
      return copy;
    };
    let nll = 0;
    for (let t = 1; t < ids.length; t++) {
      let k = 0;
      while (Math.min(k * stride + context, ids.length) <= t) k++;
      const logits = await logitsOf(k);
      const row = t - 1 - k * stride;
      nll -= logSoftmax(logits.subarray(row * V, (row + 1) * V))[ids[t]!]!;
    }
    kernels.dispose();
    const expected = Math.exp(nll / (ids.length - 1));
    assert.equal(got.numScoredTokens, ids.length - 1);
    // Both sides compute float32 logits from the same weights with the same kernels, batched differently
    // (the engine runs several windows per step); log-probs differ by ~1e-6, so 1e-4 relative is ample
    // and still fails on any window or scoring mistake (one token scored twice moves it by > 1e-3).
    const rel = Math.abs(got.perplexity - expected) / expected;
    assert.ok(rel <= 1e-4, `perplexity ${got.perplexity} vs ${expected} (relative ${rel})`);
    // The trained model predicts the held-out text far better than chance over its 4096 tokens.
    assert.ok(expected < 200, `perplexity ${expected}`);
  });

  test('an empty, unreadable or too-short input is one clear error line', () => {
    const tmp = tempDir('duet-eval-');
    const empty = join(tmp, 'empty.txt');
    writeFileSync(empty, '');
    const cases: [string[], RegExp][] = [
      [['--file', empty], /error: --file .*empty\.txt is empty/],
      [['--file', join(tmp, 'missing.txt')], /error: cannot read --file .*missing\.txt/],
      [['--file', tmp], /error: cannot read --file/],
      [
        ['--file', PASSAGE, '--context', '8', '--stride', '8'],
        /error: --stride must be an integer in \[1, 7\]/,
      ],
      [['--file', PASSAGE, '--context', '100000'], /error: --context 100000 is too long/],
      [[], /required option '--file <text>'/],
    ];
    for (const [args, message] of cases) {
      const r = duet(['eval', 'perplexity', ...args, ...SMALL_ENGINE]);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
  });
});
