"""Text in, vectors out: a word-level tokenizer and a small transformer text encoder.

    tok = Tokenizer()                        # the words of the shapes-world captions
    ids, mask = tok(["a red circle", "a big blue box above a tiny disc"])
    ids.shape, mask.shape                    # (2, 24) word ids, (2, 24) True where a real word is
    enc = TextEncoder()
    states, pooled = enc(ids, mask)          # (2, 24, 128) one vector per word, (2, 128) one per prompt

A *tokenizer* turns text into a list of integers (token ids), one per word here; Stable
Diffusion's tokenizer splits text into sub-word pieces instead, but the idea is the same.
Every prompt is padded to the same length with a <pad> id so that a batch is one
rectangle of numbers; `mask` says which positions are real words. A word the tokenizer
has never seen cannot mean anything to the model, so by default it is an error that names it.

The *text encoder* looks each id up in an embedding table, adds a learned vector per
position (so that "red circle left of blue square" and "blue square left of red circle"
differ), and mixes the words with a few transformer blocks (self-attention, Vaswani et
al. 2017) that never look at padding. It returns a state per token (what the U-Net's
cross-attention reads) and a pooled vector per prompt (the masked mean; what CLIP compares).
"""
import difflib
import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, UNK = "<pad>", "<unk>"
MAX_LEN = 24


class Tokenizer:
    """Word-level tokenizer: lower-case, split on spaces, drop punctuation, look words up.

    vocab: the known words (default: every word of the shapes-world captions). Ids 0 and 1
    are <pad> and <unk>; the words follow in sorted order. max_len: prompts are padded (or
    refused) to this many words.
    """

    def __init__(self, vocab=None, max_len=MAX_LEN):
        if vocab is None:
            from .shapes import vocabulary
            vocab = vocabulary()
        if isinstance(vocab, str) or not all(isinstance(w, str) for w in vocab):
            raise TypeError("vocab must be a list of words (strings), e.g. shapes.vocabulary()")
        bad = [w for w in vocab if w != w.lower() or not w or self.split(w) != [w]]
        if bad:
            raise ValueError(f"vocab words must be single lower-case words without punctuation; got {bad[:5]}")
        if not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1:
            raise ValueError(f"max_len must be a positive integer, got {max_len!r}")
        self.words = [PAD, UNK] + sorted(set(vocab) - {PAD, UNK})
        self.index = {w: i for i, w in enumerate(self.words)}
        self.max_len = max_len
        self.pad_id, self.unk_id = 0, 1
        self.config = {"vocab": self.words[2:], "max_len": max_len}

    def __len__(self):
        return len(self.words)

    @staticmethod
    def split(text):
        """'A red circle, left of a box.' -> ['a', 'red', 'circle', 'left', 'of', 'a', 'box']"""
        return [w for w in (t.strip(".,;:!?\"'()") for t in text.lower().split()) if w]

    def __call__(self, texts, unknown="error", too_long="error"):
        return self.encode(texts, unknown=unknown, too_long=too_long)

    def encode(self, texts, unknown="error", too_long="error"):
        """Token ids and the padding mask of one prompt or a list: (B, max_len) int64, (B, max_len) bool.

        unknown:  "error" (default) raises a ValueError naming the unknown words;
                  "warn" maps them to <unk> with a warning.
        too_long: "error" (default) raises for prompts over max_len words; "truncate" cuts
                  them with a warning.
        """
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, (list, tuple)) or not all(isinstance(t, str) for t in texts):
            raise TypeError("encode expects a prompt (str) or a list of prompts, "
                            f"got {type(texts).__name__}")
        if unknown not in ("error", "warn") or too_long not in ("error", "truncate"):
            raise ValueError(f"unknown= must be 'error' or 'warn' and too_long= 'error' or 'truncate'; "
                             f"got unknown={unknown!r}, too_long={too_long!r}")
        if len(texts) == 0:
            raise ValueError("encode got an empty list of prompts; give at least one")
        rows = []
        for i, text in enumerate(texts):
            words = self.split(text)
            if not words:
                raise ValueError(f"prompt {i} ({text!r}) has no words; the model needs at least one")
            missing = [w for w in dict.fromkeys(words) if w not in self.index]
            if missing:
                msg = (f"unknown word{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} in prompt "
                       f"{text!r}{self._suggest(missing)}: the tokenizer knows only the {len(self) - 2} words "
                       f"of its vocabulary (see tokenizer.words)")
                if unknown == "error":
                    raise ValueError(msg + "; rephrase, or pass unknown='warn' to map them to <unk>")
                warnings.warn(msg + "; they become <unk>, which carries no meaning", stacklevel=2)
            if len(words) > self.max_len:
                msg = (f"prompt {text!r} has {len(words)} words, more than max_len={self.max_len}; "
                       f"the words past the limit are {' '.join(words[self.max_len:])!r}")
                if too_long == "error":
                    raise ValueError(msg + "; shorten it, or pass too_long='truncate' to drop them")
                warnings.warn(msg + "; they are dropped", stacklevel=2)
                words = words[:self.max_len]
            rows.append([self.index.get(w, self.unk_id) for w in words] + [self.pad_id] * (self.max_len - len(words)))
        ids = torch.tensor(rows, dtype=torch.long)                       # (B, L)
        return ids, ids != self.pad_id                                   # (B, L), (B, L)

    def decode(self, ids):
        """Back to text, skipping padding: (B, L) ids -> B strings."""
        ids = torch.as_tensor(ids)
        ids = ids[None] if ids.dim() == 1 else ids
        return [" ".join(self.words[i] for i in row.tolist() if i != self.pad_id) for row in ids]

    def _suggest(self, missing):
        hints = []
        for w in missing:
            close = difflib.get_close_matches(w, self.words[2:], n=1)
            if close:
                hints.append(f"{close[0]!r} for {w!r}")
        return f" (did you mean {', '.join(hints)}?)" if hints else ""


class Attention(nn.Module):
    """Multi-head self-attention where no position attends to padding."""

    def __init__(self, dim, heads):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x, mask):                                          # x (B, L, D), mask (B, L)
        b, l, d = x.shape
        q, k, v = self.qkv(x).view(b, l, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (B, h, L, d/h)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])            # keys: real words only
        return self.out(y.transpose(1, 2).reshape(b, l, d))


class Block(nn.Module):
    """A pre-norm transformer block: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dim, heads, mlp_ratio=4):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x, mask):
        x = x + self.attn(self.norm1(x), mask)
        return x + self.mlp(self.norm2(x))


class TextEncoder(nn.Module):
    """Token ids -> per-token states (B, L, dim) and a pooled prompt vector (B, dim).

    vocab, max_len: the tokenizer's (kept here, so a saved encoder can read prompts again).
    dim, depth, heads: width, number of transformer blocks, attention heads.
    """

    def __init__(self, vocab=None, max_len=MAX_LEN, dim=128, depth=3, heads=4):
        super().__init__()
        self.tokenizer = Tokenizer(vocab, max_len)
        self.config = {"vocab": self.tokenizer.config["vocab"], "max_len": max_len, "dim": dim,
                       "depth": depth, "heads": heads}
        self.dim = dim
        self.token_emb = nn.Embedding(len(self.tokenizer), dim)
        self.pos_emb = nn.Parameter(torch.randn(max_len, dim) * 0.02)    # learned: one vector per position
        self.blocks = nn.ModuleList(Block(dim, heads) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.token_emb.weight, std=0.02)

    def forward(self, ids, mask=None):
        """ids (B, L) int64, mask (B, L) bool (default: ids != <pad>) -> states (B, L, D), pooled (B, D)."""
        if ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError(f"ids must be a (B, L) int64 tensor from the tokenizer, got {ids.dtype} "
                             f"of shape {tuple(ids.shape)}")
        if ids.device != self.pos_emb.device:
            raise ValueError(f"ids are on {ids.device}, the text encoder's weights on {self.pos_emb.device}: "
                             f"move one to the other, e.g. ids.to({str(self.pos_emb.device)!r})")
        if ids.shape[1] > self.pos_emb.shape[0]:
            raise ValueError(f"ids have {ids.shape[1]} positions, more than max_len={self.pos_emb.shape[0]}")
        mask = ids != self.tokenizer.pad_id if mask is None else mask.bool()
        if not mask.any(1).all():
            raise ValueError("every prompt needs at least one real token (a row of the mask is all False)")
        x = self.token_emb(ids) + self.pos_emb[:ids.shape[1]]            # (B, L, D)
        for block in self.blocks:
            x = block(x, mask)
        states = self.norm(x)                                            # (B, L, D)
        m = mask[..., None].to(states.dtype)                             # (B, L, 1)
        pooled = (states * m).sum(1) / m.sum(1)                          # (B, D): mean over real words
        return states, pooled

    def encode(self, prompts, device=None, **kwargs):
        """Tokenize and encode in one go: prompts -> (states, pooled, mask)."""
        ids, mask = self.tokenizer(prompts, **kwargs)
        device = device if device is not None else self.pos_emb.device
        states, pooled = self(ids.to(device), mask.to(device))
        return states, pooled, mask.to(device)
