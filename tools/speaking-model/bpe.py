"""A byte-level BPE tokenizer: trainer, encoder, and writer of a Hugging Face tokenizer.json.

Pre-tokenization is GPT-2's (Hugging Face `ByteLevel` with `use_regex: true`), so Duet's tokenizer
(@huggingface/tokenizers) splits text the way this encoder does. The regex below is GPT-2's with \\p{L}
and \\p{N} spelled for ASCII letters and digits: the training text is ASCII, and prepare.py checks that.
Merges are learned by counting adjacent symbol pairs over the pre-tokenized words, merging the most
frequent pair (ties broken by the smaller pair in string order), and updating only the words that contain
it. Encoding applies the merges by rank, lowest first, as Hugging Face's BPE model does.
"""

import heapq
import re
from collections import Counter, defaultdict

GPT2_ASCII_PATTERN = re.compile(
    r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+"""
)

# The regex Hugging Face's ByteLevel pre-tokenizer uses (the same as above for ASCII text).
GPT2_UNICODE_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    """GPT-2's map from the 256 bytes to printable characters (what ByteLevel writes in the vocabulary)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_CHARS = bytes_to_unicode()


def pretokenize(text):
    """Text -> byte-level words (strings of BYTE_CHARS)."""
    return ["".join(BYTE_CHARS[b] for b in w.encode("utf-8")) for w in GPT2_ASCII_PATTERN.findall(text)]


def train_bpe(text, num_merges):
    """Learns `num_merges` merges from `text`; returns the merges as a list of (left, right) pairs."""
    word_counts = Counter(pretokenize(text))
    words = [list(w) for w in word_counts]
    freqs = [word_counts[w] for w in word_counts]
    pair_counts = Counter()
    where = defaultdict(set)  # pair -> indices of words containing it
    for i, syms in enumerate(words):
        for a, b in zip(syms, syms[1:]):
            pair_counts[(a, b)] += freqs[i]
            where[(a, b)].add(i)
    # A lazy heap of (-count, pair): entries whose count is stale are skipped when popped.
    heap = [(-c, p) for p, c in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(merges) < num_merges and heap:
        neg, best = heapq.heappop(heap)
        if pair_counts.get(best, 0) != -neg:
            continue
        if -neg < 2:
            break
        merges.append(best)
        merged = best[0] + best[1]
        touched = set()
        for i in list(where[best]):
            syms = words[i]
            f = freqs[i]
            for a, b in zip(syms, syms[1:]):
                pair_counts[(a, b)] -= f
                if pair_counts[(a, b)] <= 0:
                    del pair_counts[(a, b)]
                where[(a, b)].discard(i)
                touched.add((a, b))
            out = []
            j = 0
            while j < len(syms):
                if j + 1 < len(syms) and syms[j] == best[0] and syms[j + 1] == best[1]:
                    out.append(merged)
                    j += 2
                else:
                    out.append(syms[j])
                    j += 1
            words[i] = out
            for a, b in zip(out, out[1:]):
                pair_counts[(a, b)] += f
                where[(a, b)].add(i)
                touched.add((a, b))
        where.pop(best, None)
        for p in touched:
            if p in pair_counts:
                heapq.heappush(heap, (-pair_counts[p], p))
    return merges


class BpeEncoder:
    def __init__(self, vocab, merges):
        self.vocab = vocab  # token string -> id
        self.ranks = {pair: r for r, pair in enumerate(merges)}
        self.cache = {}

    def encode_word(self, word):
        cached = self.cache.get(word)
        if cached is not None:
            return cached
        syms = list(word)
        while len(syms) > 1:
            ranked = [(self.ranks.get((a, b), None), j) for j, (a, b) in enumerate(zip(syms, syms[1:]))]
            ranked = [(r, j) for r, j in ranked if r is not None]
            if not ranked:
                break
            r, _ = min(ranked)
            # Merge every occurrence of the lowest-rank pair, left to right.
            out = []
            j = 0
            while j < len(syms):
                if j + 1 < len(syms) and self.ranks.get((syms[j], syms[j + 1])) == r:
                    out.append(syms[j] + syms[j + 1])
                    j += 2
                else:
                    out.append(syms[j])
                    j += 1
            syms = out
        ids = [self.vocab[s] for s in syms]
        self.cache[word] = ids
        return ids

    def encode(self, text):
        ids = []
        for w in pretokenize(text):
            ids.extend(self.encode_word(w))
        return ids


def build_vocab(merges, special_tokens):
    """Special tokens first (ids 0..), then the 256 byte symbols in byte order, then one id per merge."""
    vocab = {}
    for t in special_tokens:
        vocab[t] = len(vocab)
    for b in range(256):
        vocab[BYTE_CHARS[b]] = len(vocab)
    for a, b in merges:
        vocab[a + b] = len(vocab)
    return vocab


def tokenizer_json(vocab, merges, special_tokens):
    """The Hugging Face tokenizer.json document (ByteLevel pre-tokenizer and decoder, BPE model)."""
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": vocab[t],
                "content": t,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
            for t in special_tokens
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges],
        },
    }
