// `checkSharding` refuses a parallel plan the model's shape does not split, before any weight is read or
// rank thread started: for a grid of shapes and plans it throws exactly when building the model under
// that plan throws, with the same message.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReferenceKernels } from '../../src/kernels/reference/reference-kernels.js';
import { moeGroupPosition, type ParallelPlan } from '../../src/layers/parallel-plan.js';
import { DummyWeightSource } from '../../src/loader/dummy-weights.js';
import { loadDeepseekConfig } from '../../src/loader/hf-config.js';
import { checkSharding, DeepseekForCausalLM } from '../../src/models/deepseek.js';
import { deepseekTensorSpecs } from '../../src/models/deepseek-weights.js';
import { fixtureDir } from '../helpers/golden.js';
import { createLocalGroup } from '../helpers/local-group.js';

/** The error message `f` throws, or null. */
function thrown(f: () => void): string | null {
  try {
    f();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

describe('checkSharding', () => {
  // v2-lite-tiny: 4 heads, intermediate 128, 8 experts of 32, one shared expert; the overrides make each
  // of heads, dense MLP, routed experts and expert features the first thing that does not split.
  const shapes: Record<string, unknown>[] = [
    {},
    { num_attention_heads: 24 },
    { num_attention_heads: 24, intermediate_size: 96 },
    { num_attention_heads: 24, intermediate_size: 96, moe_intermediate_size: 48, n_shared_experts: 2 },
  ];
  const plans: ParallelPlan[] = [];
  for (const size of [1, 2, 3, 4, 8]) {
    for (const expertParallel of [false, true]) {
      plans.push({ rank: size - 1, size, expertParallel, moeComm: 'allgather' });
    }
  }
  plans.push({
    rank: 1,
    size: 2,
    expertParallel: false,
    moeComm: 'allgather',
    dataParallelRank: 1,
    dataParallelSize: 3,
  });

  it('throws exactly when loading under the plan throws, with the same message', () => {
    let refused = 0;
    const messages = new Set<string>();
    for (const overrides of shapes) {
      const config = loadDeepseekConfig(fixtureDir('v2-lite-tiny'), overrides);
      for (const plan of plans) {
        const expected = thrown(
          () =>
            new DeepseekForCausalLM(config, {
              kernels: new ReferenceKernels(),
              source: new DummyWeightSource(deepseekTensorSpecs(config), { seed: 1, dtype: 'bf16' }),
              weightDType: 'bf16',
              communicator: createLocalGroup(plan.size)[plan.rank]!,
              moeCommunicator: createLocalGroup(moeGroupPosition(plan).size)[moeGroupPosition(plan).rank]!,
              plan,
            }),
        );
        const label = `${JSON.stringify(overrides)} ${JSON.stringify(plan)}`;
        assert.equal(
          thrown(() => checkSharding(config, plan)),
          expected,
          label,
        );
        if (expected !== null) {
          refused++;
          messages.add(expected.replace(/\(\d+\)/g, '(n)'));
        }
      }
    }
    // The grid reaches every kind of refusal, and accepts some plans too.
    assert.deepEqual([...messages].sort(), [
      'intermediate_size (n) must be divisible by the number of ranks sharing it (n)',
      'moe_intermediate_size (n) must be divisible by the number of ranks sharing it (n)',
      'n_routed_experts (n) must be divisible by the number of ranks sharing it (n)',
      'num_attention_heads (n) must be divisible by the number of ranks sharing it (n)',
    ]);
    assert.ok(refused > 0 && refused < shapes.length * plans.length);
  });
});
