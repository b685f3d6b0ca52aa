"""Exports a training checkpoint as a Hugging Face DeepSeek-V3 folder, and measures it.

    python3 tools/speaking-model/export.py --work WORK --out assets/default-model \
        --reference test/fixtures/speaking-model/reference.json

Matrices are stored as BF16, vectors (norms, e_score_correction_bias) as F32, in model.safetensors; the
tokenizer and config files prepare.py wrote are copied beside it. Everything measured afterwards uses the
stored (BF16-rounded) weights, computed in float32, which is what Duet computes:
  * held-out perplexity with sliding windows (see `window_spans`, the same scheme as `duet eval
    perplexity`), and the perplexity of a unigram model of the same tokenizer (add-one smoothed counts of
    the training tokens) on the same tokens;
  * the greedy 32-token completion of "And God said";
  * the reference that test/models/speaking-model.test.ts checks Duet against: token ids, argmax and
    top-5 log-probs at every position and all logits of the last position, for a few prompts.
Results go to OUT/eval.json and the --reference file.
"""

import argparse
import json
import math
import os
import shutil
import struct

import numpy as np
import torch

from bpe import BpeEncoder
from model import DeepseekV3ForCausalLM

EVAL_CONTEXT = 128
EVAL_STRIDE = 64


def window_spans(n, context, stride):
    """Windows over n tokens: (begin, end, first_scored). Each token 1..n-1 is scored exactly once.

    Window k covers [k * stride, min(k * stride + context, n)); it scores the tokens after the previous
    window's end (the first window scores all of its tokens but the first), so every scored token beyond
    the first window sees at least context - stride earlier tokens. The last window ends at n.
    """
    spans = []
    prev_end = 1
    begin = 0
    while prev_end < n:
        end = min(begin + context, n)
        spans.append((begin, end, prev_end))
        prev_end = end
        begin += stride
    return spans


def write_safetensors(path, tensors):
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        if t.dim() >= 2:
            raw = t.to(torch.bfloat16).view(torch.int16).numpy().tobytes()
            dtype = "BF16"
        else:
            raw = t.to(torch.float32).numpy().tobytes()
            dtype = "F32"
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def rounded_model(cfg, checkpoint):
    """The model with the weights as stored: matrices rounded to BF16, computed in float32."""
    model = DeepseekV3ForCausalLM(cfg)
    state = torch.load(checkpoint)["model"]
    model.load_state_dict(state)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
    model.eval()
    return model


@torch.no_grad()
def perplexity(model, ids, context, stride, batch=32):
    spans = window_spans(len(ids), context, stride)
    nll = 0.0
    count = 0
    for i in range(0, len(spans), batch):
        group = spans[i : i + batch]
        width = max(e - b for b, e, _ in group)
        x = torch.zeros(len(group), width, dtype=torch.long)
        for j, (b, e, _) in enumerate(group):
            x[j, : e - b] = torch.tensor(ids[b:e])
        logp = torch.log_softmax(model(x), dim=-1)
        for j, (b, e, first) in enumerate(group):
            for t in range(first, e):
                nll -= logp[j, t - b - 1, ids[t]].item()
                count += 1
    assert count == len(ids) - 1
    return math.exp(nll / count), count


def unigram_perplexity(train_ids, scored_ids, vocab_size):
    counts = np.bincount(train_ids, minlength=vocab_size).astype(np.float64) + 1.0
    logp = np.log(counts / counts.sum())
    return math.exp(-logp[np.asarray(scored_ids)].mean())


@torch.no_grad()
def greedy(model, ids, n):
    ids = list(ids)
    margins = []
    for _ in range(n):
        logits = model(torch.tensor([ids]))[0, -1]
        top2 = logits.topk(2)
        margins.append((top2.values[0] - top2.values[1]).item())
        ids.append(int(top2.indices[0]))
    return ids, min(margins)


@torch.no_grad()
def reference_entry(model, name, ids, text=None):
    """`text`, when given, is what `ids` encode (after BOS): the test checks Duet's tokenizer against it."""
    logits = model(torch.tensor([ids]))[0]
    logp = torch.log_softmax(logits, dim=-1)
    top5 = logp.topk(5, dim=-1)
    return {
        "name": name,
        "text": text,
        "ids": ids,
        "argmax": logits.argmax(-1).tolist(),
        "top1_top2_logit_gaps": [round(v, 6) for v in (lambda t: t.values[:, 0] - t.values[:, 1])(logits.topk(2, dim=-1)).tolist()],
        "top5_ids": top5.indices.tolist(),
        "top5_logprobs": [[round(v, 6) for v in row] for row in top5.values.tolist()],
        "last_logits": [round(v, 6) for v in logits[-1].tolist()],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--heldout-tokens", type=int, default=None, help="score only the first N (a quick look)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    w = lambda name: os.path.join(args.work, name)  # noqa: E731
    cfg = json.load(open(w("config.json")))
    ck = torch.load(w("checkpoint.pt"))
    model = rounded_model(cfg, w("checkpoint.pt"))

    os.makedirs(args.out, exist_ok=True)
    tensors = {k: v for k, v in model.checkpoint_tensors().items()}
    write_safetensors(os.path.join(args.out, "model.safetensors"), tensors)
    for name in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]:
        shutil.copyfile(w(name), os.path.join(args.out, name))

    tok = json.load(open(w("tokenizer.json")))
    vocab = tok["model"]["vocab"]
    merges = [tuple(m.split(" ")) for m in tok["model"]["merges"]]
    enc = BpeEncoder(vocab, merges)
    bos = cfg["bos_token_id"]

    held = [bos] + np.load(w("heldout.npy")).astype(np.int64).tolist()[: args.heldout_tokens]
    train = np.load(w("train.npy")).astype(np.int64)
    ppl, scored = perplexity(model, held, EVAL_CONTEXT, EVAL_STRIDE)
    uni = unigram_perplexity(train, held[1:], cfg["vocab_size"])
    prompt = [bos] + enc.encode("And God said")
    out_ids, margin = greedy(model, prompt, 32)
    inv = {i: s for s, i in vocab.items()}
    byte_dec = {c: b for b, c in __import__("bpe").BYTE_CHARS.items()}
    text = bytes(byte_dec[c] for i in out_ids[len(prompt) :] for c in inv[i]).decode("utf-8", "replace")
    result = {
        "trained_steps": ck["step"],
        "heldout_tokens_scored": scored,
        "heldout_perplexity": ppl,
        "unigram_heldout_perplexity": uni,
        "eval_context": EVAL_CONTEXT,
        "eval_stride": EVAL_STRIDE,
        "greedy_prompt": "And God said",
        "greedy_ids": out_ids,
        "greedy_text": text,
        "greedy_min_top1_top2_logit_gap": margin,
    }
    json.dump(result, open(os.path.join(args.out, "eval.json"), "w"), indent=2)
    print(json.dumps({k: v for k, v in result.items() if k != "greedy_ids"}, indent=2))

    held_text_ids = held[1:]
    genesis = "In the beginning God created the heaven and the earth.\nAnd the earth was"
    passage = [bos] + enc.encode(genesis)
    reference = {
        "source": "tools/speaking-model/export.py (PyTorch, float32 compute from the stored BF16 weights)",
        "prompts": [
            reference_entry(model, "and_god_said", prompt, "And God said"),
            reference_entry(model, "genesis", passage, genesis),
            reference_entry(model, "heldout_127", [bos] + held_text_ids[:126]),
        ],
        "greedy": {"prompt_ids": prompt, "ids": out_ids[len(prompt) :], "min_top1_top2_logit_gap": margin},
    }
    os.makedirs(os.path.dirname(args.reference), exist_ok=True)
    json.dump(reference, open(args.reference, "w"), separators=(",", ":"))


if __name__ == "__main__":
    main()
