"""Prepares the speaking model's data: the KJV text, its train/held-out split, the tokenizer, the token ids.

    python3 tools/speaking-model/prepare.py --work WORK

Reads the King James Bible with Debian's `bible` program (packages bible-kjv and bible-kjv-text), one
verse per line with its reference removed. Every 20th chapter (chapters 20, 40, ... in canonical order)
is held out for evaluation; the rest is training text. Learns a byte-level BPE tokenizer of 4096 ids on
the training text (BOS and EOS are ids 0 and 1) and writes into WORK:
  train.txt, heldout.txt            the two texts (one verse per line)
  train.npy, heldout.npy            their token ids (uint16), without BOS
  train_line_starts.npy             the token index at which each training verse starts
  tokenizer.json, tokenizer_config.json, config.json, generation_config.json
"""

import argparse
import json
import os
import re
import subprocess

import numpy as np

from bpe import BpeEncoder, build_vocab, tokenizer_json, train_bpe

VOCAB_SIZE = 4096
BOS, EOS = "<|begin_of_text|>", "<|end_of_text|>"
HELD_OUT_EVERY = 20

# The model: DeepSeek-V3's architecture at toy size (see README.md beside this file).
MODEL_CONFIG = {
    "architectures": ["DeepseekV3ForCausalLM"],
    "model_type": "deepseek_v3",
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 128,
    "intermediate_size": 384,
    "moe_intermediate_size": 96,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "q_lora_rank": 64,
    "kv_lora_rank": 64,
    "qk_nope_head_dim": 32,
    "qk_rope_head_dim": 16,
    "v_head_dim": 32,
    "n_routed_experts": 8,
    "n_shared_experts": 1,
    "num_experts_per_tok": 2,
    "n_group": 4,
    "topk_group": 2,
    "topk_method": "noaux_tc",
    "scoring_func": "sigmoid",
    "norm_topk_prob": True,
    "routed_scaling_factor": 2.5,
    "first_k_dense_replace": 1,
    "moe_layer_freq": 1,
    "max_position_embeddings": 512,
    "rope_theta": 10000,
    "rope_scaling": {
        "type": "yarn",
        "factor": 4,
        "original_max_position_embeddings": 128,
        "beta_fast": 32,
        "beta_slow": 1,
        "mscale": 1.0,
        "mscale_all_dim": 1.0,
    },
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": False,
    "hidden_act": "silu",
    "bos_token_id": 0,
    "eos_token_id": 1,
    "torch_dtype": "bfloat16",
}

GENERATION_CONFIG = {"bos_token_id": 0, "eos_token_id": 1, "do_sample": True, "temperature": 0.7, "top_p": 0.9}

# A plain-text chat format. The model was trained on scripture only, so a chat reply continues in that
# style; the template exists so that the chat API renders prompts the same way every time.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }}\n"
    "{% elif message['role'] == 'user' %}Question: {{ message['content'] }}\n"
    "{% elif message['role'] == 'assistant' %}Answer: {{ message['content'] }}{{ eos_token }}\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}Answer:{% endif %}"
)

TOKENIZER_CONFIG = {
    "add_bos_token": True,
    "add_eos_token": False,
    "bos_token": BOS,
    "eos_token": EOS,
    "pad_token": EOS,
    "unk_token": None,
    "clean_up_tokenization_spaces": False,
    "model_max_length": MODEL_CONFIG["max_position_embeddings"],
    "tokenizer_class": "PreTrainedTokenizerFast",
    "chat_template": CHAT_TEMPLATE,
}

VERSE = re.compile(r"^(\d?[A-Za-z]+)(\d+):(\d+) (.*)$")


def read_kjv():
    """[(book, chapter, verse text)] in canonical order, from Debian's `bible` program."""
    raw = subprocess.run(["bible", "-f", "Gen1:1-Rev22:21"], check=True, capture_output=True, text=True).stdout
    verses = []
    for line in raw.splitlines():
        m = VERSE.match(line)
        if m is None:
            raise SystemExit(f"unexpected line from bible: {line!r}")
        verses.append((m.group(1), int(m.group(2)), m.group(4).strip()))
    if len(verses) != 31102:
        raise SystemExit(f"expected the 31102 verses of the KJV, got {len(verses)}")
    return verses


def split(verses):
    chapter_index = -1
    last = None
    train, held = [], []
    for book, chapter, text in verses:
        if (book, chapter) != last:
            chapter_index += 1
            last = (book, chapter)
        (held if chapter_index % HELD_OUT_EVERY == HELD_OUT_EVERY - 1 else train).append(text)
    return train, held


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    train_lines, held_lines = split(read_kjv())
    train_text = "\n".join(train_lines) + "\n"
    held_text = "\n".join(held_lines) + "\n"
    if not (train_text + held_text).isascii():
        raise SystemExit("the text is not ASCII: bpe.py's pre-tokenizer assumes it is")

    specials = [BOS, EOS]
    merges = train_bpe(train_text, VOCAB_SIZE - 256 - len(specials))
    vocab = build_vocab(merges, specials)
    if len(vocab) != VOCAB_SIZE:
        raise SystemExit(f"vocabulary has {len(vocab)} entries, expected {VOCAB_SIZE}")
    enc = BpeEncoder(vocab, merges)

    def encode_lines(lines):
        ids, starts = [], []
        for line in lines:
            starts.append(len(ids))
            ids.extend(enc.encode(line + "\n"))
        return ids, starts

    train_ids, train_starts = encode_lines(train_lines)
    held_ids, _ = encode_lines(held_lines)
    # Per-line encoding equals whole-text encoding ("\n" is always a pre-token of its own).
    assert held_ids == enc.encode(held_text)

    w = lambda name: os.path.join(args.work, name)  # noqa: E731
    open(w("train.txt"), "w").write(train_text)
    open(w("heldout.txt"), "w").write(held_text)
    np.save(w("train.npy"), np.array(train_ids, dtype=np.uint16))
    np.save(w("heldout.npy"), np.array(held_ids, dtype=np.uint16))
    np.save(w("train_line_starts.npy"), np.array(train_starts, dtype=np.int64))
    json.dump(tokenizer_json(vocab, merges, specials), open(w("tokenizer.json"), "w"), ensure_ascii=False)
    json.dump(TOKENIZER_CONFIG, open(w("tokenizer_config.json"), "w"), indent=2)
    json.dump(MODEL_CONFIG, open(w("config.json"), "w"), indent=2)
    json.dump(GENERATION_CONFIG, open(w("generation_config.json"), "w"), indent=2)
    print(
        f"train: {len(train_lines)} verses, {len(train_ids)} tokens; "
        f"held out: {len(held_lines)} verses, {len(held_ids)} tokens; vocabulary {len(vocab)}"
    )


if __name__ == "__main__":
    main()
