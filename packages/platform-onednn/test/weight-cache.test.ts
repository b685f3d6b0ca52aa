// The oneDNN platform's prepared-weight cache (--weight-cache-dir), through Duet's model loader on a copy
// of the golden tiny checkpoint: a first load writes the cache, a second maps it, and both give logits
// bit-identical to a load without the cache, in bf16 and in W8A8. A changed checkpoint, a cut-short or
// garbled cache file is rebuilt and never used; a folder that cannot be written gives a warning and the
// load goes on without the cache.

import assert from 'node:assert/strict';
import {
  appendFileSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadAddon } from '../dist/addon.js';
import { createOnednnPlatform } from '../dist/index.js';
import {
  DEFAULT_ENGINE_CONFIG,
  fixtureDir,
  type Kernels,
  loadGolden,
  loadModel,
  prefillPrompt,
  resolveModel,
  type WeightCacheNotice,
} from './duet-test-deps.js';
import { skipReason } from './onednn-available.js';

const FIXTURE = 'v2-lite-tiny';

/** A copy of the fixture's checkpoint files in a fresh folder (its files' stamps are the test's to change). */
function copyCheckpoint(root: string): string {
  const dir = join(root, 'model');
  mkdirSync(dir, { recursive: true });
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer_config.json']) {
    copyFileSync(join(fixtureDir(FIXTURE), f), join(dir, f));
  }
  return dir;
}

interface Loaded {
  readonly logits: Float32Array;
  readonly notices: WeightCacheNotice[];
}

describe('the onednn weight cache', { skip: skipReason() }, async () => {
  let root = '';
  let kernels: Kernels;
  const prompt = loadGolden(FIXTURE).prompts[0]!.ids;

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'duet-weight-cache-'));
    const load = loadAddon();
    if (!('addon' in load)) throw new Error(load.reason);
    kernels = await createOnednnPlatform(load.addon).createKernels({ numThreads: 2 });
  });
  after(async () => {
    await kernels?.dispose();
    rmSync(root, { recursive: true, force: true });
  });

  /** Loads the model in `dir` (cache in `cacheDir`, or none) and runs the prompt: every position's logits. */
  async function run(dir: string, quantization: 'w8a8' | null, cacheDir: string | null): Promise<Loaded> {
    const notices: WeightCacheNotice[] = [];
    const resolved = resolveModel({
      ...DEFAULT_ENGINE_CONFIG.model,
      model: dir,
      loadFormat: 'safetensors',
      quantization,
      weightCacheDir: cacheDir,
    });
    const loaded = loadModel(resolved, kernels, { onNotice: (n) => notices.push(n) });
    const logits = await prefillPrompt(loaded.config, kernels, loaded.model, prompt);
    return { logits: logits.slice(), notices };
  }

  /** Bit-identical: the cache holds the very bytes oneDNN packed, so nothing may differ at all. */
  function assertSameLogits(got: Float32Array, want: Float32Array, what: string): void {
    assert.equal(got.length, want.length, `${what}: logits length`);
    assert.ok(
      Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(
        Buffer.from(want.buffer, want.byteOffset, want.byteLength),
      ),
      `${what}: logits differ from the load without the cache`,
    );
  }

  function messages(l: Loaded): string {
    return l.notices.map((n) => `${n.level}: ${n.message}`).join(' / ');
  }

  function cacheFile(cacheDir: string): string {
    const files = readdirSync(cacheDir).filter((f) => f.endsWith('.bin'));
    assert.equal(files.length, 1, `one cache file in ${cacheDir}: ${files.join(', ')}`);
    return join(cacheDir, files[0]!);
  }

  for (const quantization of [null, 'w8a8'] as const) {
    const name = quantization ?? 'bf16';
    test(`${name}: written on the first load, mapped on the next, logits bit-identical`, async () => {
      const dir = copyCheckpoint(join(root, name));
      const cacheDir = join(root, name, 'cache');
      const plain = await run(dir, quantization, null);
      assert.deepEqual(plain.notices, [], 'no cache without a folder');
      const first = await run(dir, quantization, cacheDir);
      assert.match(messages(first), /no cache file yet; packing and writing/);
      assert.match(messages(first), /wrote \d+ weights and 1 tensors/);
      assertSameLogits(first.logits, plain.logits, 'the writing load');
      const second = await run(dir, quantization, cacheDir);
      const wrote = /wrote (\d+) weights/.exec(messages(first))?.[1];
      assert.match(
        messages(second),
        new RegExp(`^info: weight cache: mapping ${wrote} weights and 1 tensors`),
      );
      assert.doesNotMatch(messages(second), /writing|wrote/);
      assertSameLogits(second.logits, plain.logits, 'the mapped load');
    });
  }

  test('a changed checkpoint (newer file, other size) rebuilds the cache', async () => {
    const dir = copyCheckpoint(join(root, 'changed'));
    const cacheDir = join(root, 'changed', 'cache');
    const plain = await run(dir, 'w8a8', null);
    await run(dir, 'w8a8', cacheDir);
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(dir, 'model.safetensors'), later, later);
    const touched = await run(dir, 'w8a8', cacheDir);
    assert.match(messages(touched), /the checkpoint files changed.*packing and writing/);
    assertSameLogits(touched.logits, plain.logits, 'after touch');
    assert.match(messages(await run(dir, 'w8a8', cacheDir)), /mapping/, 'the rebuilt cache is used');
    // Another size: config.json (also part of the checkpoint) gains a trailing newline.
    appendFileSync(join(dir, 'config.json'), '\n');
    const resized = await run(dir, 'w8a8', cacheDir);
    assert.match(messages(resized), /the checkpoint files changed.*packing and writing/);
    assertSameLogits(resized.logits, plain.logits, 'after a size change');
    // Other settings (bf16 instead of W8A8) are another cache file, not a rebuild of this one.
    assert.match(messages(await run(dir, null, cacheDir)), /no cache file yet/);
  });

  test('a cut-short or garbled cache file is detected, rebuilt and never used', async () => {
    const dir = copyCheckpoint(join(root, 'broken'));
    const cacheDir = join(root, 'broken', 'cache');
    const plain = await run(dir, 'w8a8', null);
    await run(dir, 'w8a8', cacheDir);
    const file = cacheFile(cacheDir);
    const size = statSync(file).size;
    const good = readFileSync(file);

    const breakages: [string, () => void, RegExp][] = [
      ['cut short', () => truncateSync(file, size - 1000), /unusable \(no trailer/],
      ['cut to nothing', () => truncateSync(file, 10), /unusable \(10 bytes, shorter than its trailer/],
      ['extended', () => appendFileSync(file, Buffer.alloc(4096)), /unusable \(no trailer/],
      // The first bytes of the packed section (the embedding table's; every sample starts there).
      ['garbled packed bytes', () => flip(file, 100), /corrupt \((weight|tensor) .* fails its checksum\)/],
      // The last bytes before the trailer: the index (JSON), under its SHA-256.
      ['garbled index', () => flip(file, size - 90), /unusable \(its index or scales fail their SHA-256\)/],
    ];
    for (const [what, breakIt, reason] of breakages) {
      writeFileSync(file, good);
      breakIt();
      const l = await run(dir, 'w8a8', cacheDir);
      assert.match(messages(l), reason, what);
      assert.match(messages(l), /packing and writing/, `${what}: rebuilt`);
      assertSameLogits(l.logits, plain.logits, what);
      assert.ok(readFileSync(file).equals(good), `${what}: the rebuilt file is the one first written`);
    }
  });

  test('a folder that cannot be written gives a warning and the load goes on uncached', async () => {
    const dir = copyCheckpoint(join(root, 'unwritable'));
    const plain = await run(dir, 'w8a8', null);
    // A path under a regular file: no user (root included) can make a folder there.
    const blocker = join(root, 'unwritable', 'a-file');
    writeFileSync(blocker, 'not a folder');
    const l = await run(dir, 'w8a8', join(blocker, 'cache'));
    assert.equal(l.notices.length, 1, messages(l));
    assert.equal(l.notices[0]!.level, 'warn');
    assert.match(
      l.notices[0]!.message,
      /cannot write in .*a-file\/cache \(.*ENOTDIR.*\); loading without it/,
    );
    assertSameLogits(l.logits, plain.logits, 'uncached');
  });
});

/** Inverts one byte of `file` at `position`. */
function flip(file: string, position: number): void {
  const b = readFileSync(file);
  b[position] = b[position]! ^ 0xff;
  writeFileSync(file, b);
}
