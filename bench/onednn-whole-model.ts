// The whole DeepSeek-V2-Lite (27 layers) in W8A8 from dummy weights on one device, as docs/int8.md reports
// it (issue 11, acceptance 3): time to ready, then decode tok/s at batch 1 and at 8 sequences (total), 32
// tokens after 4-token prompts, prefill included, 2 threads, a 512 MiB KV cache. It holds about 16 GiB:
// run it alone, under the heavy-run lock, with /usr/bin/time -v for the peak RSS:
//
//   flock /tmp/duet-heavy.lock /usr/bin/time -v node dist/bench/onednn-whole-model.js [--device onednn|cpu]
//
// --layers N cuts the model to N layers (a quick check that needs no lock below 4).

import { LLM } from '../src/engine/llm.js';
import { parseBenchArgs } from './bench-args.js';

const { values } = parseBenchArgs(import.meta.url, {
  options: {
    device: { type: 'string', default: 'onednn' },
    model: { type: 'string', default: 'assets/configs/deepseek-v2-lite' },
    threads: { type: 'string', default: '2' },
    /** Cut the model to this many layers (a quick check); default: all 27. */
    layers: { type: 'string' },
  },
});
const t0 = performance.now();
const llm = new LLM({
  model: values.model,
  loadFormat: 'dummy',
  quantization: 'w8a8',
  device: values.device,
  numThreads: Number(values.threads),
  kvCacheMemory: 512 * 2 ** 20,
  maxNumSeqs: 8,
  ...(values.layers ? { hfOverrides: { num_hidden_layers: Number(values.layers) } } : {}),
});
await llm.engine();
console.log(`${values.device}: ready after ${((performance.now() - t0) / 1000).toFixed(1)} s`);
for (const batch of [1, 8]) {
  const prompts = Array.from({ length: batch }, (_, i) => ({ prompt_token_ids: [100 + i, 200, 300, 400] }));
  const t = performance.now();
  const outs = await llm.generate(
    prompts,
    { temperature: 0, maxTokens: 32, ignoreEos: true },
    { useTqdm: false },
  );
  const s = (performance.now() - t) / 1000;
  const n = outs.reduce((sum, o) => sum + (o.outputs[0]?.token_ids.length ?? 0), 0);
  console.log(
    `${values.device}: batch ${batch}: ${n} tokens in ${s.toFixed(1)} s, ${(n / s).toFixed(2)} tok/s`,
  );
}
await llm.close();
