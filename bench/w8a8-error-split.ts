// A developer probe (not a benchmark, not run by tests): where W8A8's argmax disagreement with float32
// comes from on bench:vs-llamacpp's model, for docs/int8.md (accuracy against llama.cpp Q8_0). It scores
// the bench's accuracy prompts (seeds 7, 8, …; 512 positions each) with a bare forward per variant, one
// model in memory at a time (float32 variants hold about 9.4 GiB: run it under the heavy-run lock).
//
//   flock /tmp/duet-heavy.lock node dist/bench/w8a8-error-split.js CACHE_DIR VARIANT[,VARIANT…] [numPrompts]
//
// CACHE_DIR: the bench's cache folder (with hf/ and hf-w8a8/). Variants: ref (float32; run it first, its
// traces are kept as CACHE_DIR/probe-ref-N.json), ckpt (the hf-w8a8 checkpoint), wonly (its int8 weights
// dequantized, float activations), aonly[:REGEX] (float weights, per-token int8 activations into every
// int8 linear, or those whose name matches REGEX), ablk32 (the same in blocks of 32 along k, as llama.cpp's
// Q8_0 quantizes activations), ahadB (per token, after a normalised Hadamard rotation in blocks of B
// values, B a power of two: the online rotation of QuaRot / SpinQuant, weights taken as rotated alike), sqA (SmoothQuant with α = A, quantized in memory, int8 LM head; the
// calibration is kept as CACHE_DIR/probe-calib.json).

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dequantizeInt8, quantizeDynamic } from '../src/kernels/int8-quant.js';
import type { Kernels, LinearWeight } from '../src/kernels/kernels.js';
import { loadDeepseekConfig } from '../src/loader/hf-config.js';
import { openModelWeights } from '../src/loader/model-folder.js';
import { openSafetensors } from '../src/loader/safetensors.js';
import {
  floatLinearSource,
  type LinearSource,
  quantizingLinearSource,
} from '../src/loader/w8a8/linear-source.js';
import {
  groupWeightMaxima,
  smoothedWeightSource,
  smoothingFactors,
} from '../src/loader/w8a8/quantize-smoothquant.js';
import type { WeightSource } from '../src/loader/weight-source.js';
import { DeepseekForCausalLM } from '../src/models/deepseek.js';
import { calibrateNormMaxima, deepseekSmoothingGroups } from '../src/models/deepseek-smoothing.js';
import { deepseekCheckpointLayout, deepseekLinearRole } from '../src/models/deepseek-weights.js';
import { prefillPrompt } from '../src/models/prefill-prompt.js';
import { createWasmKernels } from '../src/platforms/cpu/wasm-kernels.js';

const [cacheDir, variantList, numPromptsArg] = process.argv.slice(2) as [string, string, string?];
const hf = join(cacheDir, 'hf');
const config = loadDeepseekConfig(hf);
const V = config.vocabSize;
const numPrompts = Number(numPromptsArg ?? 4);

/** The bench's seeded token ids (bench/vs-llamacpp.ts). */
function randomTokens(s: number, n: number): number[] {
  let x = (s * 2654435761 + 1) >>> 0;
  return Array.from({ length: n }, () => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % V;
  });
}
const prompts = Array.from({ length: numPrompts }, (_, i) => randomTokens(7 + i, 513));
const calib = Array.from({ length: 4 }, (_, i) => randomTokens(5000 + i, 128));

const head8 = (n: string) =>
  n === 'lm_head.weight' || deepseekLinearRole(n) === 'dequantize' ? 'int8' : deepseekLinearRole(n);

interface Trace {
  argmax: number[];
  logprob: number[];
  gap: number[];
}

async function run(kernels: Kernels, model: DeepseekForCausalLM): Promise<Trace[]> {
  const out: Trace[] = [];
  for (const ids of prompts) {
    const L = ids.length - 1;
    const logits = await prefillPrompt(config, kernels, model, ids.slice(0, L));
    const t: Trace = { argmax: [], logprob: [], gap: [] };
    for (let i = 0; i < L; i++) {
      const row = logits.subarray(i * V, (i + 1) * V);
      let a = 0;
      let b = -1;
      for (let v = 1; v < V; v++) {
        if (row[v]! > row[a]!) {
          b = a;
          a = v;
        } else if (b < 0 || row[v]! > row[b]!) b = v;
      }
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(row[v]! - row[a]!);
      t.argmax.push(a);
      t.gap.push(row[a]! - row[b]!);
      t.logprob.push(row[ids[i + 1]!]! - row[a]! - Math.log(sum));
    }
    out.push(t);
  }
  return out;
}

/** Float weights, activations of int8-role linears (and the head) fake-quantized per token. */
function actQuantKernels(
  kernels: Kernels,
  linears: LinearSource,
  only: RegExp,
  block = 0,
  /** Rotate each row by a normalised Hadamard transform in blocks of this many values before quantizing. */
  hadamard = 0,
): { k: Kernels; l: LinearSource } {
  let pending: string[] = [];
  const marked = new WeakSet<LinearWeight>();
  const l: LinearSource = {
    readLinear(name, shape, rows, cols, staged) {
      pending.push(name);
      return linears.readLinear(name, shape, rows, cols, staged);
    },
  };
  const k = new Proxy(kernels, {
    get(target, prop) {
      if (prop === 'prepareLinear') {
        return (...args: Parameters<Kernels['prepareLinear']>) => {
          const w = target.prepareLinear(...args);
          if (
            pending.some((n) => head8(n) === 'int8' && deepseekLinearRole(n) !== 'dequantize' && only.test(n))
          ) {
            marked.add(w);
          }
          pending = [];
          return w;
        };
      }
      if (prop === 'linear') {
        return (out: Float32Array, x: Float32Array, w: LinearWeight, m: number) => {
          if (!marked.has(w)) return target.linear(out, x, w, m);
          const kk = w.k;
          // Per token (block 0), or per block of `block` values along k (as llama.cpp's Q8_0 activations).
          const b = block > 0 && kk % block === 0 ? block : kk;
          const rows = (m * kk) / b;
          const q = new Int32Array(m * kk);
          const sc = new Float32Array(rows);
          const hb = hadamard > 0 && kk % hadamard === 0 ? hadamard : 0;
          const xin =
            hb > 0 ? hadamardBlocks(Float32Array.from(x.subarray(0, m * kk)), hb) : x.subarray(0, m * kk);
          quantizeDynamic(q, sc, xin, rows, b);
          const xq = new Float32Array(m * kk);
          for (let i = 0; i < rows; i++)
            for (let c = 0; c < b; c++) xq[i * b + c] = Math.fround(q[i * b + c]! * sc[i]!);
          // The transform is its own inverse: rotating back stands for weights rotated the same way offline.
          return target.linear(out, hb > 0 ? hadamardBlocks(xq, hb) : xq, w, m);
        };
      }
      const v = Reflect.get(target, prop, target) as unknown;
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { k, l };
}

/** In place: every `block` consecutive values times the normalised Hadamard matrix (fast Walsh–Hadamard). */
function hadamardBlocks(x: Float32Array, block: number): Float32Array {
  const norm = 1 / Math.sqrt(block);
  for (let b0 = 0; b0 < x.length; b0 += block) {
    for (let h = 1; h < block; h *= 2) {
      for (let i = b0; i < b0 + block; i += 2 * h) {
        for (let j = i; j < i + h; j++) {
          const a = x[j]!;
          const c = x[j + h]!;
          x[j] = a + c;
          x[j + h] = a - c;
        }
      }
    }
    for (let i = b0; i < b0 + block; i++) x[i] = x[i]! * norm;
  }
  return x;
}

async function smoothedSource(alpha: number): Promise<WeightSource> {
  const groups = deepseekSmoothingGroups(config);
  const stats = join(cacheDir, 'probe-calib.json');
  let act: Map<string, Float32Array>;
  if (existsSync(stats)) {
    act = new Map(
      Object.entries(JSON.parse(readFileSync(stats, 'utf8')) as Record<string, number[]>).map(([k, v]) => [
        k,
        Float32Array.from(v),
      ]),
    );
  } else {
    const kernels = await createWasmKernels({ numThreads: 2 });
    const src = openSafetensors(hf);
    act = await calibrateNormMaxima(config, kernels, src, groups, calib);
    src.close();
    kernels.dispose();
    writeFileSync(stats, JSON.stringify(Object.fromEntries([...act].map(([k, v]) => [k, Array.from(v)]))));
  }
  const src = openSafetensors(hf);
  const wmax = groupWeightMaxima(src, groups);
  const factors = new Map(
    groups.map((g) => [g.norm, smoothingFactors(act.get(g.norm)!, wmax.get(g.norm)!, alpha)]),
  );
  return smoothedWeightSource(src, groups, factors);
}

const refPath = join(cacheDir, `probe-ref-${numPrompts}.json`);
for (const variant of variantList.split(',')) {
  const t0 = performance.now();
  const kernels = await createWasmKernels({ numThreads: 2 });
  let model: DeepseekForCausalLM;
  let k: Kernels = kernels;
  if (variant === 'ref') {
    const s = openSafetensors(hf);
    model = new DeepseekForCausalLM(config, { kernels, source: s, weightDType: 'f32' });
    s.close();
  } else if (variant === 'ckpt' || variant === 'wonly') {
    const dir = join(cacheDir, 'hf-w8a8');
    const cfg = loadDeepseekConfig(dir);
    const w = openModelWeights(dir, cfg, deepseekCheckpointLayout(cfg), 'auto');
    let linears = w.linears;
    if (variant === 'wonly') {
      const base = w.linears;
      linears = {
        readLinear(name, shape, rows, cols) {
          const b = base.readLinear(name, shape, rows, cols);
          if (b.kind === 'float') return b;
          return {
            kind: 'float',
            raw: { dtype: 'f32', data: dequantizeInt8(b.weight, rows.count, cols?.count ?? shape[1]) },
          };
        },
      };
    }
    model = new DeepseekForCausalLM(config, { kernels, source: w.source, linears, weightDType: 'f32' });
    w.source.close();
  } else if (variant.startsWith('aonly')) {
    const s = openSafetensors(hf);
    const a = actQuantKernels(kernels, floatLinearSource(s), new RegExp(variant.slice(6) || '.'));
    k = a.k;
    model = new DeepseekForCausalLM(config, { kernels: a.k, source: s, linears: a.l, weightDType: 'f32' });
    s.close();
  } else if (variant.startsWith('ahad')) {
    const s = openSafetensors(hf);
    const a = actQuantKernels(kernels, floatLinearSource(s), /./, 0, Number(variant.slice(4)));
    k = a.k;
    model = new DeepseekForCausalLM(config, { kernels: a.k, source: s, linears: a.l, weightDType: 'f32' });
    s.close();
  } else if (variant === 'ablk32') {
    const s = openSafetensors(hf);
    const a = actQuantKernels(kernels, floatLinearSource(s), /./, 32);
    k = a.k;
    model = new DeepseekForCausalLM(config, { kernels: a.k, source: s, linears: a.l, weightDType: 'f32' });
    s.close();
  } else if (variant.startsWith('sq')) {
    const s = await smoothedSource(Number(variant.slice(2)));
    model = new DeepseekForCausalLM(config, {
      kernels,
      source: s,
      linears: quantizingLinearSource(s, head8),
      weightDType: 'f32',
    });
    s.close();
  } else throw new Error(variant);
  const loaded = performance.now();
  const traces = await run(k, model);
  kernels.dispose();
  if (variant === 'ref') {
    writeFileSync(refPath, JSON.stringify(traces));
  }
  const ref = JSON.parse(readFileSync(refPath, 'utf8')) as Trace[];
  const agree = traces.map(
    (t, p) => t.argmax.filter((a, i) => a === ref[p]!.argmax[i]).length / t.argmax.length,
  );
  const dlp = traces.map(
    (t, p) => t.logprob.reduce((s, x, i) => s + Math.abs(x - ref[p]!.logprob[i]!), 0) / t.logprob.length,
  );
  const mean = agree.reduce((a, b) => a + b, 0) / agree.length;
  console.log(
    `${variant}: load ${((loaded - t0) / 1000).toFixed(0)} s, run ${((performance.now() - loaded) / 1000).toFixed(0)} s; ` +
      `agreement per prompt ${agree.map((a) => a.toFixed(4)).join(' ')}, mean ${mean.toFixed(4)}; mean|Δlogprob| ${dlp.map((d) => d.toFixed(4)).join(' ')}`,
  );
  if (variant === 'ref') {
    const gaps = ref.flatMap((t) => t.gap).sort((a, b) => a - b);
    console.log(
      `  ref top1-top2 gap: median ${gaps[gaps.length >> 1]!.toFixed(3)}, p10 ${gaps[Math.floor(gaps.length / 10)]!.toFixed(3)}`,
    );
  }
}
