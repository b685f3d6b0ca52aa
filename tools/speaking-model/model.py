"""A DeepSeek-V3-architecture causal LM in PyTorch that computes exactly what Duet's forward computes.

Duet (src/models/deepseek.ts, src/layers/*) follows DeepSeek's reference inference code; this module is a
training twin of it:
  * MLA with q compression: q = q_b(rms(q_a(x))); kv_a(x) gives the latent (normalised by kv_a_layernorm)
    and one shared rope key; kv_b up-projects the latent to per-head nope keys and values. The explicit
    (non-absorbed) form is used here; Duet's absorbed form computes the same function.
  * Rotary embedding rotates adjacent pairs (x[2i], x[2i+1]) by frequency i, as DeepSeek's reference does;
    YaRN blends interpolated and extrapolated frequencies whenever max_position_embeddings exceeds
    rope_scaling.original_max_position_embeddings, and its mscale enters only the softmax scale.
  * MoE (layers >= first_k_dense_replace, every moe_layer_freq): sigmoid scores, the noaux_tc selection
    bias (e_score_correction_bias) steering only the choice, group-limited top-k (a group scores by the sum
    of its best two biased scores), weights from the unbiased scores renormalised and multiplied by
    routed_scaling_factor, plus the shared experts.
  * RMSNorm in float32: x * rsqrt(mean(x^2) + eps) * w.
Parameter names are the Hugging Face DeepSeek-V3 checkpoint names (model.layers.N.self_attn.q_a_proj...),
so state_dict() is the checkpoint.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


def yarn_inverse_frequencies(cfg):
    """Inverse frequencies [qk_rope_head_dim / 2], with YaRN as Duet's src/layers/rope.ts computes them."""
    dim = cfg["qk_rope_head_dim"]
    base = cfg["rope_theta"]
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    y = cfg.get("rope_scaling")
    if y and cfg["max_position_embeddings"] > y["original_max_position_embeddings"]:
        orig = y["original_max_position_embeddings"]

        def correction_dim(rot):
            return dim * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(base))

        low = max(math.floor(correction_dim(y["beta_fast"])), 0)
        high = min(math.ceil(correction_dim(y["beta_slow"])), dim - 1)
        if low == high:
            high += 0.001
        ramp = ((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low)).clamp(0, 1)
        smooth = 1 - ramp
        inv = inv / y["factor"] * (1 - smooth) + inv * smooth
    return inv


def softmax_scale(cfg):
    scale = (cfg["qk_nope_head_dim"] + cfg["qk_rope_head_dim"]) ** -0.5
    y = cfg.get("rope_scaling")
    if y and cfg["max_position_embeddings"] > y["original_max_position_embeddings"]:
        m = 0.1 * y.get("mscale_all_dim", 0) * math.log(y["factor"]) + 1
        scale *= m * m
    return scale


def apply_rope(x, cos, sin):
    """x [..., T, rope]; cos/sin [T, rope/2]. Rotates adjacent pairs (x[2i], x[2i+1])."""
    x1 = x[..., 0::2]
    x2 = x[..., 1::2]
    r1 = x1 * cos - x2 * sin
    r2 = x2 * cos + x1 * sin
    return torch.stack((r1, r2), dim=-1).flatten(-2)


class Mlp(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, hidden, inter):
        super().__init__()
        self.gate_proj = nn.Linear(hidden, inter, bias=False)
        self.up_proj = nn.Linear(hidden, inter, bias=False)
        self.down_proj = nn.Linear(inter, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.nope = cfg["qk_nope_head_dim"]
        self.rope = cfg["qk_rope_head_dim"]
        self.vdim = cfg["v_head_dim"]
        self.latent = cfg["kv_lora_rank"]
        eps = cfg["rms_norm_eps"]
        self.q_a_proj = nn.Linear(h, cfg["q_lora_rank"], bias=False)
        self.q_a_layernorm = RMSNorm(cfg["q_lora_rank"], eps)
        self.q_b_proj = nn.Linear(cfg["q_lora_rank"], self.heads * (self.nope + self.rope), bias=False)
        self.kv_a_proj_with_mqa = nn.Linear(h, self.latent + self.rope, bias=False)
        self.kv_a_layernorm = RMSNorm(self.latent, eps)
        self.kv_b_proj = nn.Linear(self.latent, self.heads * (self.nope + self.vdim), bias=False)
        self.o_proj = nn.Linear(self.heads * self.vdim, h, bias=False)
        self.scale = softmax_scale(cfg)

    def forward(self, x, cos, sin, mask):
        B, T, _ = x.shape
        H = self.heads
        q = self.q_b_proj(self.q_a_layernorm(self.q_a_proj(x))).view(B, T, H, self.nope + self.rope)
        q = q.transpose(1, 2)  # [B, H, T, nope + rope]
        q_nope, q_pe = q[..., : self.nope], apply_rope(q[..., self.nope :], cos, sin)
        kv_a = self.kv_a_proj_with_mqa(x)
        latent = self.kv_a_layernorm(kv_a[..., : self.latent])
        k_pe = apply_rope(kv_a[..., self.latent :], cos, sin).unsqueeze(1)  # [B, 1, T, rope]
        kv = self.kv_b_proj(latent).view(B, T, H, self.nope + self.vdim).transpose(1, 2)
        k_nope, v = kv[..., : self.nope], kv[..., self.nope :]
        scores = (q_nope @ k_nope.transpose(-1, -2) + q_pe @ k_pe.transpose(-1, -2)) * self.scale
        probs = torch.softmax(scores + mask, dim=-1)
        out = (probs @ v).transpose(1, 2).reshape(B, T, H * self.vdim)
        return self.o_proj(out)


class Gate(nn.Module):
    """Sigmoid router with the noaux_tc selection bias and group-limited top-k."""

    def __init__(self, cfg):
        super().__init__()
        self.n_experts = cfg["n_routed_experts"]
        self.top_k = cfg["num_experts_per_tok"]
        self.n_group = cfg["n_group"]
        self.topk_group = cfg["topk_group"]
        self.scaling = cfg["routed_scaling_factor"]
        self.weight = nn.Parameter(torch.empty(self.n_experts, cfg["hidden_size"]))
        # Not trained by gradient: adjusted after each step towards balanced load (auxiliary-loss-free).
        self.register_buffer("e_score_correction_bias", torch.zeros(self.n_experts))

    def forward(self, x):
        """x [N, hidden] -> (experts [N, k], weights [N, k], scores [N, E])."""
        scores = torch.sigmoid(F.linear(x, self.weight))
        select = scores.detach() + self.e_score_correction_bias
        if self.n_group > 1:
            N = x.shape[0]
            grouped = select.view(N, self.n_group, -1)
            group_scores = grouped.topk(2, dim=-1).values.sum(-1)
            keep = group_scores.topk(self.topk_group, dim=-1).indices
            group_mask = torch.zeros(N, self.n_group, dtype=torch.bool).scatter_(1, keep, True)
            select = grouped.masked_fill(~group_mask.unsqueeze(-1), float("-inf")).view(N, -1)
        experts = select.topk(self.top_k, dim=-1).indices
        weights = scores.gather(1, experts)
        weights = weights / weights.sum(-1, keepdim=True) * self.scaling
        return experts, weights, scores


class Moe(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h = cfg["hidden_size"]
        self.gate = Gate(cfg)
        self.experts = nn.ModuleList(Mlp(h, cfg["moe_intermediate_size"]) for _ in range(cfg["n_routed_experts"]))
        self.shared_experts = Mlp(h, cfg["moe_intermediate_size"] * cfg["n_shared_experts"])
        self.last_load = None

    def forward(self, x):
        shape = x.shape
        flat = x.reshape(-1, shape[-1])
        experts, weights, _ = self.gate(flat)
        out = self.shared_experts(flat)
        load = torch.zeros(len(self.experts))
        for e, expert in enumerate(self.experts):
            rows, slot = (experts == e).nonzero(as_tuple=True)
            load[e] = rows.numel()
            if rows.numel() == 0:
                continue
            y = expert(flat[rows]) * weights[rows, slot].unsqueeze(-1)
            out = out.index_add(0, rows, y)
        self.last_load = load
        return out.view(shape)


class DecoderLayer(nn.Module):
    def __init__(self, cfg, index):
        super().__init__()
        eps = cfg["rms_norm_eps"]
        self.input_layernorm = RMSNorm(cfg["hidden_size"], eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], eps)
        is_moe = index >= cfg["first_k_dense_replace"] and index % cfg["moe_layer_freq"] == 0
        self.mlp = Moe(cfg) if is_moe else Mlp(cfg["hidden_size"], cfg["intermediate_size"])

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class Backbone(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


class DeepseekV3ForCausalLM(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        self.model = Backbone(cfg)
        self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        self.register_buffer("inv_freq", yarn_inverse_frequencies(cfg), persistent=False)

    def init_weights(self, generator, std=0.02):
        """Normal(0, std) linears and embeddings; residual output projections scaled by 1/sqrt(2 layers)."""
        out_std = std / math.sqrt(2 * self.cfg["num_hidden_layers"])
        for name, p in self.named_parameters():
            if name.endswith("layernorm.weight") or name.endswith("norm.weight"):
                nn.init.ones_(p)
            elif name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                with torch.no_grad():
                    p.normal_(0, out_std, generator=generator)
            else:
                with torch.no_grad():
                    p.normal_(0, std, generator=generator)

    def moe_layers(self):
        return [layer.mlp for layer in self.model.layers if isinstance(layer.mlp, Moe)]

    def forward(self, ids):
        """ids [B, T] at positions 0..T-1 -> logits [B, T, vocab]."""
        T = ids.shape[1]
        angles = torch.arange(T, dtype=torch.float32).unsqueeze(1) * self.inv_freq.unsqueeze(0)
        cos, sin = angles.cos(), angles.sin()
        mask = torch.full((T, T), float("-inf")).triu(1)
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        return self.lm_head(self.model.norm(x))

    def checkpoint_tensors(self):
        """name -> tensor with the Hugging Face DeepSeek-V3 checkpoint names (the bias buffers included)."""
        return {k: v for k, v in self.state_dict().items() if k != "inv_freq"}
