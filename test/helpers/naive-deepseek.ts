// An independent, deliberately naive DeepSeek forward pass in float64 for tests: MLA in its explicit
// (non-absorbed) form with per-head keys and values from kv_b_proj, rotary embedding the Hugging Face way
// (de-interleave, then rotate halves), plain loops for routing. It shares no code with src/models or
// src/layers, so that agreement between the two is evidence, not tautology. It is validated against the
// official reference's golden outputs (test/models/naive-reference.test.ts) and then used to check
// configurations the golden checkpoints do not cover (sigmoid scoring, noaux_tc, q compression with
// v_head_dim != qk_nope_head_dim).

import type { DeepseekConfig } from '../../src/config/model-config.js';
import type { WeightSource } from '../../src/loader/weight-source.js';

type Mat = { rows: number; cols: number; data: Float64Array };

function read(src: WeightSource, name: string): Float64Array {
  const raw = src.read(name);
  if (raw.dtype === 'f32') return Float64Array.from(raw.data);
  const out = new Float64Array(raw.data.length);
  const u32 = new Uint32Array(1);
  const f32 = new Float32Array(u32.buffer);
  for (let i = 0; i < raw.data.length; i++) {
    u32[0] = raw.data[i]! << 16;
    out[i] = f32[0]!;
  }
  return out;
}

function mat(src: WeightSource, name: string): Mat {
  const info = src.info(name);
  return { rows: info.shape[0]!, cols: info.shape[1]!, data: read(src, name) };
}

/** y = W x for W [rows, cols]. */
function mv(w: Mat, x: Float64Array): Float64Array {
  const y = new Float64Array(w.rows);
  for (let r = 0; r < w.rows; r++) {
    let s = 0;
    for (let c = 0; c < w.cols; c++) s += w.data[r * w.cols + c]! * x[c]!;
    y[r] = s;
  }
  return y;
}

function rmsNorm(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * inv * w[i]!);
}

const silu = (v: number) => v / (1 + Math.exp(-v));

function mlp(src: WeightSource, p: string, x: Float64Array): Float64Array {
  const g = mv(mat(src, `${p}.gate_proj.weight`), x);
  const u = mv(mat(src, `${p}.up_proj.weight`), x);
  return mv(
    mat(src, `${p}.down_proj.weight`),
    g.map((v, i) => silu(v) * u[i]!),
  );
}

/** YaRN inverse frequencies and softmax scale, computed in float64 from the formulas. */
function ropeSetup(c: DeepseekConfig): { inv: Float64Array; scale: number } {
  const d = c.qkRopeHeadDim;
  const inv = Float64Array.from({ length: d / 2 }, (_, i) => 1 / c.ropeTheta ** ((2 * i) / d));
  let scale = (c.qkNopeHeadDim + c.qkRopeHeadDim) ** -0.5;
  const y = c.ropeScaling;
  if (y && c.maxPositionEmbeddings > y.originalMaxPositionEmbeddings) {
    const dimAt = (rot: number) =>
      (d * Math.log(y.originalMaxPositionEmbeddings / (rot * 2 * Math.PI))) / (2 * Math.log(c.ropeTheta));
    const low = Math.max(Math.floor(dimAt(y.betaFast)), 0);
    const high = Math.min(Math.ceil(dimAt(y.betaSlow)), d - 1);
    for (let i = 0; i < d / 2; i++) {
      const ramp = Math.min(Math.max((i - low) / (high === low ? 0.001 : high - low), 0), 1);
      inv[i] = (inv[i]! / y.factor) * ramp + inv[i]! * (1 - ramp);
    }
    const m = 0.1 * y.mscaleAllDim * Math.log(y.factor) + 1;
    scale *= m * m;
  }
  return { inv, scale };
}

/** Hugging Face style: de-interleave [x0, x1, x2, x3...] to [x0, x2, ..., x1, x3, ...], rotate halves. */
function ropeHf(x: Float64Array, pos: number, inv: Float64Array): Float64Array {
  const h = x.length / 2;
  const de = new Float64Array(x.length);
  for (let i = 0; i < h; i++) {
    de[i] = x[2 * i]!;
    de[h + i] = x[2 * i + 1]!;
  }
  const out = new Float64Array(x.length);
  for (let i = 0; i < h; i++) {
    const c = Math.cos(pos * inv[i]!);
    const s = Math.sin(pos * inv[i]!);
    out[i] = de[i]! * c - de[h + i]! * s;
    out[h + i] = de[h + i]! * c + de[i]! * s;
  }
  return out;
}

export interface NaiveOutput {
  /** [T][vocab] logits at every position. */
  readonly logits: Float64Array[];
  /** layer → per token, chosen experts in descending selection score. */
  readonly routing: Map<number, number[][]>;
}

/** Full causal prefill of one sequence at positions 0..T-1. */
export function naiveForward(c: DeepseekConfig, src: WeightSource, ids: readonly number[]): NaiveOutput {
  const H = c.numAttentionHeads;
  const nope = c.qkNopeHeadDim;
  const rope = c.qkRopeHeadDim;
  const vd = c.vHeadDim;
  const L = c.kvLoraRank;
  const { inv, scale } = ropeSetup(c);
  const emb = mat(src, 'model.embed_tokens.weight');
  let xs = ids.map((id) => emb.data.slice(id * emb.cols, (id + 1) * emb.cols));
  const routing = new Map<number, number[][]>();

  for (let layer = 0; layer < c.numHiddenLayers; layer++) {
    const p = `model.layers.${layer}`;
    const a = `${p}.self_attn`;
    const hn = xs.map((x) => rmsNorm(x, read(src, `${p}.input_layernorm.weight`), c.rmsNormEps));
    const qs = hn.map((h) =>
      c.qLoraRank === null
        ? mv(mat(src, `${a}.q_proj.weight`), h)
        : mv(
            mat(src, `${a}.q_b_proj.weight`),
            rmsNorm(
              mv(mat(src, `${a}.q_a_proj.weight`), h),
              read(src, `${a}.q_a_layernorm.weight`),
              c.rmsNormEps,
            ),
          ),
    );
    const kvB = mat(src, `${a}.kv_b_proj.weight`);
    const keys: Float64Array[][] = [];
    const vals: Float64Array[][] = [];
    const kPes: Float64Array[] = [];
    hn.forEach((h, t) => {
      const kvA = mv(mat(src, `${a}.kv_a_proj_with_mqa.weight`), h);
      const latent = rmsNorm(kvA.slice(0, L), read(src, `${a}.kv_a_layernorm.weight`), c.rmsNormEps);
      kPes.push(ropeHf(kvA.slice(L, L + rope), t, inv));
      const kv = mv(kvB, latent); // [H * (nope + vd)]
      keys.push(Array.from({ length: H }, (_, hh) => kv.slice(hh * (nope + vd), hh * (nope + vd) + nope)));
      vals.push(
        Array.from({ length: H }, (_, hh) => kv.slice(hh * (nope + vd) + nope, (hh + 1) * (nope + vd))),
      );
    });
    const oProj = mat(src, `${a}.o_proj.weight`);
    const attnOut = qs.map((q, t) => {
      const concat = new Float64Array(H * vd);
      for (let hh = 0; hh < H; hh++) {
        const qh = q.slice(hh * (nope + rope), (hh + 1) * (nope + rope));
        const qPe = ropeHf(qh.slice(nope), t, inv);
        const scores = Array.from({ length: t + 1 }, (_, s) => {
          let dot = 0;
          for (let i = 0; i < nope; i++) dot += qh[i]! * keys[s]![hh]![i]!;
          for (let i = 0; i < rope; i++) dot += qPe[i]! * kPes[s]![i]!;
          return dot * scale;
        });
        const m = Math.max(...scores);
        const e = scores.map((v) => Math.exp(v - m));
        const z = e.reduce((x, y) => x + y, 0);
        for (let s = 0; s <= t; s++)
          for (let i = 0; i < vd; i++) concat[hh * vd + i]! += (e[s]! / z) * vals[s]![hh]![i]!;
      }
      return mv(oProj, concat);
    });
    xs = xs.map((x, t) => x.map((v, i) => v + attnOut[t]![i]!));

    const hn2 = xs.map((x) => rmsNorm(x, read(src, `${p}.post_attention_layernorm.weight`), c.rmsNormEps));
    const isMoe = c.nRoutedExperts !== null && layer >= c.firstKDenseReplace && layer % c.moeLayerFreq === 0;
    let ffn: Float64Array[];
    if (!isMoe) {
      ffn = hn2.map((h) => mlp(src, `${p}.mlp`, h));
    } else {
      const E = c.nRoutedExperts!;
      const gate = mat(src, `${p}.mlp.gate.weight`);
      const bias = c.topkMethod === 'noaux_tc' ? read(src, `${p}.mlp.gate.e_score_correction_bias`) : null;
      const chosen: number[][] = [];
      ffn = hn2.map((h) => {
        const logits = mv(gate, h);
        let scores: number[];
        if (c.scoringFunc === 'softmax') {
          const m = Math.max(...logits);
          const e = Array.from(logits, (v) => Math.exp(v - m));
          const z = e.reduce((x, y) => x + y, 0);
          scores = e.map((v) => v / z);
        } else scores = Array.from(logits, (v) => 1 / (1 + Math.exp(-v)));
        const sel = scores.map((s, e) => s + (bias ? bias[e]! : 0));
        const allowed = new Set<number>(Array.from({ length: E }, (_, e) => e));
        if (c.topkMethod !== 'greedy' && c.nGroup > 1) {
          const per = E / c.nGroup;
          const groupScore = Array.from({ length: c.nGroup }, (_, g) => {
            const s = sel.slice(g * per, (g + 1) * per).sort((x, y) => y - x);
            return bias ? s[0]! + s[1]! : s[0]!;
          });
          const keep = groupScore
            .map((s, g) => [s, g] as const)
            .sort((x, y) => y[0] - x[0])
            .slice(0, c.topkGroup)
            .map(([, g]) => g);
          allowed.clear();
          for (const g of keep) for (let e = g * per; e < (g + 1) * per; e++) allowed.add(e);
        }
        const top = [...allowed].sort((x, y) => sel[y]! - sel[x]!).slice(0, c.numExpertsPerTok);
        chosen.push(top);
        let w = top.map((e) => scores[e]!);
        if (c.scoringFunc === 'sigmoid' || c.normTopkProb) {
          const z = w.reduce((x, y) => x + y, 0);
          w = w.map((v) => v / z);
        }
        w = w.map((v) => v * c.routedScalingFactor);
        const out = new Float64Array(h.length);
        top.forEach((e, j) => {
          const y = mlp(src, `${p}.mlp.experts.${e}`, h);
          for (let i = 0; i < out.length; i++) out[i]! += w[j]! * y[i]!;
        });
        if (c.nSharedExperts > 0) {
          const y = mlp(src, `${p}.mlp.shared_experts`, h);
          for (let i = 0; i < out.length; i++) out[i]! += y[i]!;
        }
        return out;
      });
      routing.set(layer, chosen);
    }
    xs = xs.map((x, t) => x.map((v, i) => v + ffn[t]![i]!));
  }
  const head = mat(src, c.tieWordEmbeddings ? 'model.embed_tokens.weight' : 'lm_head.weight');
  const norm = read(src, 'model.norm.weight');
  return { logits: xs.map((x) => mv(head, rmsNorm(x, norm, c.rmsNormEps))), routing };
}
