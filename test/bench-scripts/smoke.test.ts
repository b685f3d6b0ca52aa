// Every developer benchmark under bench/ runs at its smallest size and prints its table, so that a
// refactor that breaks one fails `npm test` instead of rotting unseen. Only that it runs and prints
// numbers is checked, not the numbers (a smoke run on a shared machine measures nothing). The multi-host
// ones (parallel, dbo, collectives' testbed row) run on the network-namespace testbed where this machine
// can make one, on loopback (parallel) or their local part (dbo) where it cannot.
// bench/collectives-rank.ts and bench/dbo-trace.ts are modules of collectives.ts and dbo.ts and run with them.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { whyNoNetns } from '../../scripts/testbed/testbed.js';
import { fixtureDir } from '../helpers/golden.js';
import { describeProcess, type ProcessResult, runProcess } from '../helpers/run-process.js';

const ROOT = join(fixtureDir('v2-tiny'), '..', '..', '..');
const BENCH = join(ROOT, 'dist', 'bench');
const noNetns = whyNoNetns();

/** DeepSeek-V2-Lite's architecture at toy width (its real vocabulary, which the bench tokenizer needs). */
const TINY_V2_LITE = JSON.stringify({
  num_hidden_layers: 2,
  first_k_dense_replace: 1,
  hidden_size: 64,
  intermediate_size: 128,
  moe_intermediate_size: 32,
  n_routed_experts: 4,
  num_experts_per_tok: 2,
  n_shared_experts: 1,
  num_attention_heads: 2,
  num_key_value_heads: 2,
  kv_lora_rank: 32,
  q_lora_rank: null,
  qk_nope_head_dim: 16,
  qk_rope_head_dim: 8,
  v_head_dim: 16,
});

function bench(script: string, args: string[], timeoutMs: number): Promise<ProcessResult> {
  return runProcess(process.execPath, [join(BENCH, script), ...args], { cwd: ROOT, timeoutMs });
}

/** Exit status 0 and every `rows` pattern in stdout (each a table row with numbers in it). */
function assertTable(r: ProcessResult, rows: readonly RegExp[]): void {
  assert.equal(r.status, 0, describeProcess(r));
  for (const row of rows) assert.match(r.stdout, row);
}

describe('bench/ smoke runs', () => {
  const out = mkdtempSync(join(tmpdir(), 'duet-bench-smoke-'));
  after(() => rmSync(out, { recursive: true, force: true }));

  test('kernels.js --smoke', async () => {
    const r = await bench('kernels.js', ['--smoke', '--threads', '1'], 120_000);
    assertTable(r, [
      /^\s*prefill\s+16\s+2048\s+2048\s+1\s+[\d.]+\s+[\d.]+/m,
      /^\s*decode\s+2\s+256\s+256\s+1\s+[\d.]+/m,
    ]);
  });

  test('onednn-matmul.js --smoke', async () => {
    const r = await bench('onednn-matmul.js', ['--smoke', '--threads', '1'], 120_000);
    const rows = [
      /^\s*wasm\s+f32\s+8\s+256\s+256\s+1\s+[\d.]+/m,
      /^\s*wasm\s+int8\s+1\s+256\s+256\s+1\s+[\d.]+/m,
    ];
    // The oneDNN rows where its package's addon is built (always under DUET_REQUIRE_ONEDNN=1, as in CI).
    if (process.env.DUET_REQUIRE_ONEDNN === '1' || !/onednn: skipped/.test(r.stdout)) {
      rows.push(/^\s*onednn\s+bf16\s+8\s+256\s+256\s+1\s+[\d.]+/m, /^\s*onednn\s+int8\s+[\d.]+x\s+[\d.]+x$/m);
    }
    assertTable(r, rows);
  });

  test('ops.js --smoke', async () => {
    const r = await bench('ops.js', ['--smoke'], 120_000);
    assertTable(r, [/heads 16 ctx 64: reference [\d.]+ ms/, /heads 16 ctx 64: wasm-simd\s+[\d.]+ ms/]);
  });

  test('decode.js at batch 2 with its breakdown (the breakdown crashed once: issue 13)', async () => {
    const r = await bench(
      'decode.js',
      [
        '--models',
        'v3-toy',
        '--prompt-len',
        '16',
        '--decode',
        '2',
        '--runs',
        '1',
        '--batch',
        '2',
        '--kv-cache-mib',
        '64',
      ],
      180_000,
    );
    assertTable(r, [
      /prefill 16 tokens: [\d.]+ tok\/s/,
      /Decode step breakdown \(batch 2\)/,
      /batch build\s+[\d.]+ ms/,
      /total\s+[\d.]+ ms/,
    ]);
  });

  test('throughput.js on the tiny fixture config', async () => {
    const r = await bench(
      'throughput.js',
      [
        '--config',
        fixtureDir('v2-tiny'),
        '--num-prompts',
        '2',
        '--input-len',
        '8',
        '--output-len',
        '2',
        '--layers',
        '2',
        '--kv-cache-memory',
        '16MiB',
      ],
      180_000,
    );
    assertTable(r, [
      /batch-1 sequential\s+[\d.]+ s\s+[\d.]+ req\/s/,
      /continuous batching\s+[\d.]+ s/,
      /speed-up: [\d.]+x/,
    ]);
  });

  test('vs-llamacpp.js --perplexity, its Duet part (no node-llama-cpp needed) on 300 held-out tokens', async () => {
    const r = await bench(
      'vs-llamacpp.js',
      ['--perplexity', '--engines', 'duet', '--max-tokens', '300', '--context', '64', '--stride', '32'],
      180_000,
    );
    assertTable(r, [
      /^\| Duet float32 \| [\d.]+ \| \+0\.0000% \| — \| \d+ \|$/m,
      /^\| Duet bfloat16 \| [\d.]+ \| [-+][\d.e-]+% \| — \| \d+ \|$/m,
    ]);
  });

  test('serve-overhead.js: offline and served at tiny size in two rounds, with the CPU split by thread', async () => {
    const r = await bench(
      'serve-overhead.js',
      [
        ...['--num-prompts', '4', '--input-len', '16', '--output-len', '4', '--concurrency', '2'],
        ...['--kv-cache-memory', '64MiB', '--rounds', '2'],
      ],
      300_000,
    );
    assertTable(r, [
      /^round 1 of 2 \(offline first\)$/m,
      /^round 2 of 2 \(served first\)$/m,
      /^load average \(1 min\)\s+[\d.]+-[\d.]+\s+[\d.]+-[\d.]+$/m,
      /^requests\/s\s+[\d.]+\s+[\d.]+$/m,
      /^served \/ offline: wall [\d.]+, CPU-based [\d.]+ /m,
      /^ {2}wall-clock: [\d.]+, [\d.]+; median [\d.]+$/m,
      /^ {2}CPU-based: {2}[\d.]+, [\d.]+; median [\d.]+$/m,
      /^\s+engine thread\s+[\d.]+\s+[\d.]+$/m,
      /^\s+HTTP main thread\s+-\s+[\d.]+$/m,
      /^\s+bench client \(process\)\s+-\s+[\d.]+$/m,
      /^CPU ms per request\s+[\d.]+\s+[\d.]+$/m,
    ]);
  });

  test('collectives.js at one small size', async () => {
    const r = await bench('collectives.js', ['--sizes', '4096', '--seconds', '0.05'], 180_000);
    assertTable(r, [
      /shared memory \(threads\)\s+[\d.]+ ms/,
      /TCP loopback \(threads\)\s+[\d.]+ ms/,
      /Unix sockets \(threads\)\s+[\d.]+ ms/,
      ...(noNetns ? [] : [/testbed \S+ link \(processes\)\s+[\d.]+ ms/]),
      /communication-thread CPU: MB moved per CPU-second/,
      /TCP loopback \(threads\)\s+(?:[\d.]+|n\/a) MB\/s (?:[\d.]+|n\/a)\/[\d.]+ ms/,
    ]);
  });

  test('parallel.js: one round, one link, two prompts', async () => {
    const r = await bench(
      'parallel.js',
      [
        '--prompts',
        '2',
        '--input-len',
        '8',
        '--batched-tokens',
        '16',
        '--rounds',
        '1',
        '--links',
        '10gbit',
        '--delay',
        '0us',
        '--hf-overrides',
        TINY_V2_LITE,
      ],
      300_000,
    );
    assertTable(r, [
      /^1 rank \(1 process\)\s+\d+\s+\d+\s+1\.00x/m,
      /^2 hosts x 1 rank, \S+\s+\d+\s+\d+\s+[\d.]+x/m,
      /^-dp 2 -ep, 2 hosts, \S+\s+\d+\s+\d+\s+[\d.]+x/m,
    ]);
  });

  test('dbo.js: one round of off/on, then dbo-trace-svg.js on its traces', async () => {
    const dboOut = join(out, 'dbo');
    const r = await bench(
      'dbo.js',
      [
        ...['--bandwidth', '1gbit', '--input-len', '320', '--num-prompts', '2', '--max-concurrency', '1'],
        ...['--request-rate', 'inf', '--num-warmups', '0', '--rounds', '1', '--skip-unlimited'],
        ...['--attempts', '1', '--max-foreign-cores', '1000', '--quiet-wait', '0'],
        ...[
          '--model',
          'assets/configs/deepseek-v2-lite',
          '--load-format',
          'dummy',
          '--hf-overrides',
          TINY_V2_LITE,
        ],
        // With the testbed its two-host run is enough; without it only the local part can run.
        ...(noNetns ? [] : ['--skip-local']),
        ...['--out', dboOut],
      ],
      400_000,
    );
    assertTable(r, [
      /prefill QPS \(req\/s\)\s+[\d.]+\s+[\d.]+/,
      /mean TTFT \(ms\)\s+[\d.]+\s+[\d.]+/,
      /overlap efficiency/,
    ]);
    // Every run completed requests (a run whose requests all fail prints n/a and still exits 0).
    for (const m of r.stdout.matchAll(/^\s+(\S+-r0-o(?:n|ff)): (\d+) requests/gm)) {
      assert.ok(Number(m[2]) > 0, `${m[1]} completed ${m[2]} requests`);
    }
    const runs = join(dboOut, 'runs');
    const [off, on] = ['off', 'on'].map((mode) => {
      const run = readdirSync(runs).find((d) => d.endsWith(`-r0-${mode}`));
      assert.ok(run, `a DBO-${mode} run folder in ${runs}`);
      return join(runs, run, 'trace');
    }) as [string, string];
    const svg = join(out, 'step.svg');
    const pic = await bench('dbo-trace-svg.js', [off, on, svg], 60_000);
    assertTable(pic, [/wrote /]);
    assert.match(readFileSync(svg, 'utf8'), /^<svg [^>]*width="\d+"/);
    // The planner, on the DBO-off run's stage times (the tiny model's sizes) and on vLLM-Ascend's setting.
    const plan = await bench(
      'dbo-plan.js',
      ['--trace', off, '--bandwidth', '1gbit', '--hidden', '64', '--vocab', '102400'],
      60_000,
    );
    assertTable(plan, [
      /^alternate\s+step off [\d.]+ ms .* on [\d.]+ ms .* efficiency -?[\d.]+$/m,
      /^staggered /m,
    ]);
    const r1 = await bench('dbo-plan.js', ['--preset', 'vllm-ascend-r1', '--bandwidth', '56GB'], 60_000);
    assertTable(r1, [/^staggered\s+step off [\d.]+ ms/m]);
  });

  test('dbo.js --phase decode: 4 sequences decoding, alltoall, every decode step split', async () => {
    // The default model (the toy DeepSeek-V3 shape the decode figures use): the tiny V2-Lite's vocabulary
    // is smaller than the bench tokenizer's, so some random prompts would be refused and no full batch form.
    const r = await bench(
      'dbo.js',
      [
        ...[
          '--phase',
          'decode',
          '--decode-seqs',
          '4',
          '--output-len',
          '8',
          '--dbo-decode-token-threshold',
          '2',
        ],
        ...[
          '--moe-comm',
          'alltoall',
          '--dbo-auto-off',
          'false',
          '--bandwidth',
          '1gbit',
          '--num-warmups',
          '0',
        ],
        ...['--rounds', '1', '--attempts', '1', '--max-foreign-cores', '1000', '--quiet-wait', '0'],
        ...['--out', join(out, 'dbo-decode')],
      ],
      400_000,
    );
    if (noNetns) {
      // The decode phase is the two-host case only.
      assertTable(r, [/testbed: not available here/]);
      return;
    }
    assertTable(r, [
      /output tok\/s\s+[\d.]+\s+[\d.]+/,
      /mean TPOT \(ms\)\s+[\d.]+\s+[\d.]+/,
      /decode step time \(ms\)\s+[\d.]+\s+[\d.]+/,
      /planner \(dbo-plan, .*split cost [\d.]+ measured\): T_off [\d.]+ ms/,
    ]);
    // Decode steps of the full batch were measured in both runs, and with DBO on (threshold 2, no
    // off-switch) every one of them was split.
    const m = /steps measured \(split\)\s+(\d+) \(0\)\s+(\d+) \((\d+)\)/.exec(r.stdout);
    assert.ok(m && Number(m[1]) > 0 && Number(m[2]) > 0, `steps measured: ${m?.[0]}`);
    assert.equal(m[3], m[2], 'every full-batch decode step split with DBO on');
  });
});
