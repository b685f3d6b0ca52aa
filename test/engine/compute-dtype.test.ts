// `--dtype` selects the compute precision the engine asks its platform's kernels for (vLLM's `--dtype`):
// `bfloat16` → KernelOptions.computeDType 'bfloat16'; `auto` and `float32` → 'float32'.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { computeDTypeFor, type ModelDType } from '../../src/config/engine-config.js';
import { createEngine } from '../../src/engine/create-engine.js';
import { engineConfigFromLLMOptions } from '../../src/engine/llm.js';
import { CpuPlatform } from '../../src/platforms/cpu/cpu-platform.js';
import type { KernelOptions, Platform } from '../../src/platforms/platform.js';
import { fixtureDir } from '../helpers/golden.js';

test('computeDTypeFor: bfloat16 computes in bf16, auto and float32 in float32', () => {
  assert.equal(computeDTypeFor('bfloat16'), 'bfloat16');
  assert.equal(computeDTypeFor('auto'), 'float32');
  assert.equal(computeDTypeFor('float32'), 'float32');
});

for (const [dtype, want] of [
  ['bfloat16', 'bfloat16'],
  ['auto', 'float32'],
] as [ModelDType, string][]) {
  test(`createEngine with dtype ${dtype} asks the platform for ${want} kernels`, async () => {
    const seen: KernelOptions[] = [];
    const cpu = new CpuPlatform();
    const platform: Platform = Object.assign(Object.create(cpu) as CpuPlatform, {
      createKernels(opts: KernelOptions = {}) {
        seen.push(opts);
        return cpu.createKernels(opts);
      },
    });
    const config = engineConfigFromLLMOptions({ model: fixtureDir('v2-lite-tiny'), dtype, numThreads: 1 });
    const engine = await createEngine(config, { platform });
    await engine.close();
    assert.deepEqual(
      seen.map((o) => o.computeDType),
      [want],
    );
  });
}
