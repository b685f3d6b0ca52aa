// `duet generate` as a user runs it: golden prompts through --prompts-file give the reference's greedy
// tokens and log-probs as JSON lines in input order, a forced-preemption run says it preempted, any real
// config runs with dummy weights, and bad input ends with one clear error line and exit status 1.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fixtureDir, loadGolden } from '../helpers/golden.js';
import { tempDir } from '../helpers/temp-dir.js';

const ROOT = join(fixtureDir('v2-tiny'), '..', '..', '..');
const BIN = join(ROOT, 'bin', 'duet.js');

function duet(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('duet generate', () => {
  const tmp = tempDir('duet-generate-');
  const golden = loadGolden('v2-tiny');
  const promptsFile = join(tmp, 'prompts.jsonl');
  writeFileSync(
    promptsFile,
    golden.prompts.map((p) => JSON.stringify({ prompt_token_ids: p.ids })).join('\n'),
  );

  test('--prompts-file with --output json matches the golden greedy tokens and log-probs', () => {
    const r = duet([
      'generate',
      '--model',
      fixtureDir('v2-tiny'),
      '--prompts-file',
      promptsFile,
      '--max-tokens',
      '16',
      '--temperature',
      '0',
      '--ignore-eos',
      '--logprobs',
      '5',
      '--prompt-logprobs',
      '5',
      '--output',
      'json',
      '--block-size',
      '16',
      '--max-num-batched-tokens',
      '16',
      '--kv-cache-memory',
      '8MiB',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.equal(lines.length, golden.prompts.length);
    lines.forEach((line, i) => {
      const p = golden.prompts[i]!;
      assert.deepEqual(line.prompt_token_ids, p.ids);
      assert.deepEqual(line.token_ids, p.greedy.ids, `${p.name} greedy tokens`);
      assert.equal(line.finish_reason, 'length');
      assert.equal(line.prompt_logprobs[0], null);
      line.logprobs.forEach((top: { id: number; logprob: number }[], step: number) => {
        top.forEach((t, j) => {
          assert.equal(t.id, p.greedy.step_top5_ids[step]![j]);
          assert.ok(Math.abs(t.logprob - p.greedy.step_top5_logprobs[step]![j]!) <= 1e-3);
        });
      });
    });
  });

  test('a cache too small for all prompts preempts and still matches', () => {
    const r = duet([
      'generate',
      '--model',
      fixtureDir('v2-tiny'),
      '--prompts-file',
      promptsFile,
      '--max-tokens',
      '16',
      '--temperature',
      '0',
      '--ignore-eos',
      '--output',
      'json',
      '--block-size',
      '16',
      '--num-gpu-blocks-override',
      '14',
      '--max-num-batched-tokens',
      '64',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    lines.forEach((line, i) => assert.deepEqual(line.token_ids, golden.prompts[i]!.greedy.ids));
    const m = /(\d+) preemptions/.exec(r.stderr);
    assert.ok(m && Number(m[1]) > 0, `expected preemptions in: ${r.stderr}`);
  });

  test('runs a real DeepSeek config with dummy weights (V3 cut to 4 layers, narrow)', () => {
    const r = duet([
      'generate',
      '--model',
      join(ROOT, 'assets', 'configs', 'deepseek-v3'),
      '--load-format',
      'dummy',
      '--hf-overrides',
      JSON.stringify({
        num_hidden_layers: 4,
        first_k_dense_replace: 1,
        hidden_size: 256,
        intermediate_size: 512,
        moe_intermediate_size: 64,
        num_attention_heads: 4,
        q_lora_rank: 64,
        kv_lora_rank: 64,
        qk_nope_head_dim: 32,
        qk_rope_head_dim: 16,
        v_head_dim: 24,
        n_routed_experts: 32,
      }),
      '--prompt',
      'Hello, DeepSeek',
      '--max-tokens',
      '4',
      '--temperature',
      '0',
      '--output',
      'json',
      '--kv-cache-memory',
      '16MiB',
      '--max-model-len',
      '4096',
    ]);
    assert.equal(r.status, 0, r.stderr);
    const line = JSON.parse(r.stdout.trim());
    assert.equal(line.token_ids.length, 4);
    assert.match(r.stderr, /weights are random/);
  });

  describe('bad input is one clear error', () => {
    const cases: [string, string[], RegExp][] = [
      ['a missing folder', ['--model', join(tmp, 'nope'), '--prompt', 'x'], /does not exist/],
      [
        'a token id outside the vocabulary',
        ['--model', fixtureDir('v2-tiny'), '--prompt-token-ids', '1,512', '--kv-cache-memory', '4MiB'],
        /token id 512 is out of vocabulary/,
      ],
      [
        'a prompt longer than max_position_embeddings',
        [
          '--model',
          fixtureDir('v2-tiny'),
          '--prompt-token-ids',
          Array(300).fill(5).join(','),
          '--kv-cache-memory',
          '4MiB',
        ],
        /maximum context length is 256 tokens/,
      ],
    ];
    for (const [name, args, pattern] of cases) {
      test(name, () => {
        const r = duet(['generate', ...args]);
        assert.equal(r.status, 1, r.stderr);
        assert.match(r.stderr, pattern);
        assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
      });
    }

    test('a config of another architecture', () => {
      const dir = mkdtempSync(join(tmp, 'llama-'));
      writeFileSync(
        join(dir, 'config.json'),
        JSON.stringify({ architectures: ['LlamaForCausalLM'], model_type: 'llama' }),
      );
      const r = duet(['generate', '--model', dir, '--prompt', 'x']);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /LlamaForCausalLM is not supported/);
    });

    test('a truncated safetensors file', () => {
      const dir = mkdtempSync(join(tmp, 'trunc-'));
      for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors']) {
        copyFileSync(join(fixtureDir('v2-tiny'), f), join(dir, f));
      }
      truncateSync(join(dir, 'model.safetensors'), statSync(join(dir, 'model.safetensors')).size - 1000);
      const r = duet(['generate', '--model', dir, '--prompt', 'x', '--kv-cache-memory', '4MiB']);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /truncated/i);
      assert.match(r.stderr, /model\.safetensors/);
    });
  });
  test('finding 11: a prompt longer than the model says what is too long, by how much, and which line', () => {
    // v2-tiny's max_model_len is 256: 1,000 ids are 745 more than a prompt may have (255).
    const longIds = Array.from({ length: 1000 }, (_, i) => 100 + (i % 300));
    const file = join(tmp, 'long.jsonl');
    writeFileSync(
      file,
      [
        JSON.stringify({ prompt_token_ids: [1, 2, 3] }),
        '',
        JSON.stringify({ prompt_token_ids: longIds }),
      ].join('\n'),
    );
    const fromFile = duet(['generate', '--model', fixtureDir('v2-tiny'), '--prompts-file', file]);
    assert.equal(fromFile.status, 1, fromFile.stderr);
    assert.match(
      fromFile.stderr,
      /error: --prompts-file \S+long\.jsonl line 3: the prompt has 1000 tokens, but this model's maximum context length is 256 tokens .*at most 255: it is 745 token\(s\) too long/,
    );
    assert.doesNotMatch(fromFile.stderr, /at most -/, 'no negative limit');

    const fromFlags = duet([
      'generate',
      '--model',
      fixtureDir('v2-tiny'),
      '--prompt',
      'hi',
      '--prompt-token-ids',
      longIds.join(','),
    ]);
    assert.equal(fromFlags.status, 1, fromFlags.stderr);
    assert.match(
      fromFlags.stderr,
      /error: --prompt-token-ids: the prompt has 1000 tokens.*745 token\(s\) too long/,
    );
  });
});
