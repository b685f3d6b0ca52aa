// A step that mixes a long prompt (attended without absorption), a short prompt and a decode (both
// absorbed) gives each sequence the logits it gets when run alone, and the long prompt's logits match
// the golden reference: the two attention forms and the batch gathering around them agree.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { ForwardBatch } from '../../src/layers/forward-batch.js';
import { MlaKvCache } from '../../src/layers/mla-kv-cache.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { openSafetensors } from '../../src/loader/safetensors.js';
import { DeepseekForCausalLM } from '../../src/models/deepseek.js';
import { createWasmKernels } from '../../src/platforms/cpu/wasm-kernels.js';
import { fixtureDir, loadGolden } from '../helpers/golden.js';

/** Logits of the mixed step and of the separate runs differ only by float32 summation order. */
const TOL = 1e-4;
const BLOCK = 8;

describe('a mixed prefill / decode step', async () => {
  const fixture = 'v2-lite-tiny';
  const dir = fixtureDir(fixture);
  const config = loadDeepseekConfig(dir);
  const golden = loadGolden(fixture);
  const kernels = await createWasmKernels({ numThreads: 2, minSecondsPerThread: 0 });
  const source = openSafetensors(dir);
  const model = new DeepseekForCausalLM(config, { kernels, source, weightDType: 'bf16' });
  source.close();
  after(() => kernels.dispose());
  const V = config.vocabSize;
  const long = golden.prompts.find((p) => p.name === 'p100_random')!;
  const short = golden.prompts.find((p) => p.name === 'p7_text')!.ids;
  const prefix = golden.prompts.find((p) => p.name === 'p33_text')!.ids;

  /** Sequence descriptions: token ids of this step, first position, block table. */
  interface Part {
    ids: readonly number[];
    start: number;
    blocks: Int32Array;
  }
  const newCache = () => MlaKvCache.forModel(kernels, config, 64, BLOCK);
  const batchOf = (parts: Part[]): ForwardBatch => {
    const tokenIds: number[] = [];
    const positions: number[] = [];
    const slots: number[] = [];
    const seqs = parts.map((p) => {
      const queryStart = tokenIds.length;
      p.ids.forEach((id, i) => {
        const pos = p.start + i;
        tokenIds.push(id);
        positions.push(pos);
        slots.push(p.blocks[Math.floor(pos / BLOCK)]! * BLOCK + (pos % BLOCK));
      });
      return { queryStart, queryLen: p.ids.length, blockTable: p.blocks };
    });
    return {
      numTokens: tokenIds.length,
      tokenIds: Int32Array.from(tokenIds),
      positions: Int32Array.from(positions),
      slotMapping: Int32Array.from(slots),
      seqs,
      logitsIndices: Int32Array.from(seqs.map((s) => s.queryStart + s.queryLen - 1)),
    };
  };
  // Disjoint blocks per sequence.
  const blocksA = Int32Array.from({ length: 20 }, (_, i) => 40 + i);
  const blocksB = Int32Array.from({ length: 20 }, (_, i) => 20 + i);
  const blocksC = Int32Array.from({ length: 20 }, (_, i) => i);

  it('gives every sequence its own logits', async () => {
    // Alone: the decode's prefix, then each sequence's step on its own.
    const cache = newCache();
    await model.forward(batchOf([{ ids: prefix, start: 0, blocks: blocksA }]), cache);
    const decodeStep: Part = { ids: [short[0]!], start: prefix.length, blocks: blocksA };
    const aloneDecode = await model.forward(batchOf([decodeStep]), cache);
    const aloneLong = await model.forward(batchOf([{ ids: long.ids, start: 0, blocks: blocksB }]), cache);
    const aloneShort = await model.forward(batchOf([{ ids: short, start: 0, blocks: blocksC }]), cache);

    // Together, over a fresh cache holding only the decode's prefix.
    const mixedCache = newCache();
    await model.forward(batchOf([{ ids: prefix, start: 0, blocks: blocksA }]), mixedCache);
    const mixed = await model.forward(
      batchOf([
        decodeStep,
        { ids: long.ids, start: 0, blocks: blocksB },
        { ids: short, start: 0, blocks: blocksC },
      ]),
      mixedCache,
    );
    const check = (row: number, alone: Float32Array, what: string) => {
      let d = 0;
      for (let i = 0; i < V; i++) d = Math.max(d, Math.abs(mixed[row * V + i]! - alone[i]!));
      assert.ok(d <= TOL, `${what}: logits differ by ${d}`);
    };
    check(0, aloneDecode, 'decode');
    check(1, aloneLong, 'long prompt');
    check(2, aloneShort, 'short prompt');
    // And the long prompt (attended without absorption) matches the reference within its 1e-3.
    let d = 0;
    for (let i = 0; i < V; i++) d = Math.max(d, Math.abs(mixed[V + i]! - long.last_logits[i]!));
    assert.ok(d <= 1e-3, `long prompt vs the golden reference: ${d}`);
  });
});
