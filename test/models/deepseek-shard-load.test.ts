// A tensor-parallel rank reads only its own shards: rank 1 of `-tp 2` loads the tiny fixtures through a
// weight source that counts what it delivers (and, for safetensors, the bytes it reads from the file).
// Every tensor is read once; the sharded ones deliver exactly half their elements, the replicated ones
// all. That the halves are the right ones is proven by the golden tests of deepseek-parallel.test.ts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RawWeight } from '../../src/kernels/kernels.js';
import { ReferenceKernels } from '../../src/kernels/reference/reference-kernels.js';
import { DummyWeightSource } from '../../src/loader/dummy-weights.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { openSafetensors } from '../../src/loader/safetensors.js';
import type { Slice, WeightSource } from '../../src/loader/weight-source.js';
import { DeepseekForCausalLM } from '../../src/models/deepseek.js';
import { deepseekTensorSpecs } from '../../src/models/deepseek-weights.js';
import { fixtureDir } from '../helpers/golden.js';
import { createLocalGroup } from '../helpers/local-group.js';

/** What one tensor's reads delivered: elements, and bytes read from the file (when the source counts them). */
interface Delivered {
  elements: number;
  fileBytes: number;
  reads: number;
}

/** Wraps a source, recording per tensor what `read` and `readBlock` deliver. */
function countingSource(
  inner: WeightSource,
  bytesRead: () => number,
): [WeightSource, Map<string, Delivered>] {
  const seen = new Map<string, Delivered>();
  const count = (name: string, f: () => RawWeight): RawWeight => {
    const before = bytesRead();
    const raw = f();
    const d = seen.get(name) ?? { elements: 0, fileBytes: 0, reads: 0 };
    d.elements += raw.data.length;
    d.fileBytes += bytesRead() - before;
    d.reads++;
    seen.set(name, d);
    return raw;
  };
  const source: WeightSource = {
    names: () => inner.names(),
    has: (name) => inner.has(name),
    info: (name) => inner.info(name),
    read: (name, shape) => count(name, () => inner.read(name, shape)),
    readBlock: (name, shape, rows: Slice, cols?: Slice) =>
      count(name, () => inner.readBlock(name, shape, rows, cols)),
    close: () => inner.close(),
  };
  return [source, seen];
}

/** Tensors split in two at -tp 2 (without expert parallelism): rows, or (o_proj, down_proj) columns. */
const ROW_SHARDED =
  /(\.q_proj|\.q_b_proj|\.kv_b_proj|\.gate_proj|\.up_proj)\.weight$|^model\.embed_tokens\.|^lm_head\./;
const COL_SHARDED = /(\.o_proj|\.down_proj)\.weight$/;

function numElements(shape: readonly number[]): number {
  return shape.reduce((a, d) => a * d, 1);
}

/** Loads rank 1 of `-tp 2` (tensor parallel, experts split by intermediate features) from `source`. */
function loadRank1(config: ReturnType<typeof loadDeepseekConfig>, source: WeightSource): void {
  const comms = createLocalGroup(2);
  new DeepseekForCausalLM(config, {
    kernels: new ReferenceKernels(),
    source,
    weightDType: 'bf16',
    communicator: comms[1]!,
    plan: { rank: 1, size: 2, expertParallel: false, moeComm: 'allgather' },
  });
}

for (const fixture of ['v2-lite-tiny', 'v2-tiny']) {
  describe(`rank 1 of -tp 2 loading ${fixture}`, () => {
    const dir = fixtureDir(fixture);
    const config = loadDeepseekConfig(dir);

    it('reads each tensor once from safetensors: half of each sharded tensor, no more bytes than that', () => {
      const inner = openSafetensors(dir);
      const [source, seen] = countingSource(inner, () => inner.bytesRead);
      try {
        loadRank1(config, source);
      } finally {
        source.close();
      }
      assert.deepEqual([...seen.keys()].sort(), [...inner.names()].sort(), 'every tensor is read');
      let checkpointBytes = 0;
      let numRowSharded = 0;
      let numColSharded = 0;
      for (const name of inner.names()) {
        const d = seen.get(name)!;
        const n = numElements(inner.info(name).shape);
        const bytes = n * 2; // the fixtures are bf16
        checkpointBytes += bytes;
        assert.equal(d.reads, 1, `${name} is read once`);
        if (ROW_SHARDED.test(name)) {
          numRowSharded++;
          assert.equal(d.elements, n / 2, `${name}: half the rows`);
          assert.equal(d.fileBytes, bytes / 2, `${name}: only those rows' bytes`);
        } else if (COL_SHARDED.test(name)) {
          numColSharded++;
          assert.equal(d.elements, n / 2, `${name}: half the columns`);
          // Rank 1's right half: from the first row's middle to the last row's end, never the first half-row.
          const [, C] = inner.info(name).shape as [number, number];
          assert.ok(d.fileBytes <= bytes - C, `${name}: ${d.fileBytes} bytes of ${bytes}`);
        } else {
          assert.equal(d.elements, n, `${name}: replicated, read whole`);
          assert.equal(d.fileBytes, bytes, name);
        }
      }
      // Not vacuous: the fixture has sharded tensors of both kinds in every layer.
      assert.ok(numRowSharded >= 2 + 3 * config.numHiddenLayers, `${numRowSharded} row-sharded tensors`);
      assert.ok(numColSharded >= 2 * config.numHiddenLayers, `${numColSharded} column-sharded tensors`);
      assert.ok(
        inner.bytesRead < checkpointBytes,
        `${inner.bytesRead} of ${checkpointBytes} checkpoint bytes`,
      );
    });

    it('takes the same halves of seeded dummy weights', () => {
      const inner = new DummyWeightSource(deepseekTensorSpecs(config), { seed: 3, dtype: 'bf16' });
      const [source, seen] = countingSource(inner, () => 0);
      loadRank1(config, source);
      for (const name of inner.names()) {
        const n = numElements(inner.info(name).shape);
        const sharded = ROW_SHARDED.test(name) || COL_SHARDED.test(name);
        assert.equal(seen.get(name)?.elements, sharded ? n / 2 : n, name);
      }
    });
  });
}
