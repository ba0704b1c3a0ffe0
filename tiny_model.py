"""
A tiny decoder-only transformer (GPT), written out so it can be read in one sitting.

    token ids (B, T) -> token + position embeddings -> n_layer pre-norm blocks -> LayerNorm -> head -> logits (B, T, V)

Each block is  x + attention(LayerNorm(x))  then  x + MLP(LayerNorm(x)).  The causal mask and the softmax of
attention are spelled out below rather than hidden in a library call, so you can see that position t only
ever looks at positions <= t. With the defaults (d_model 64, 2 layers, 4 heads, context 24, the 137-word
vocabulary of data.py) the model has about 0.11 M parameters and trains on a laptop CPU in seconds.

Nothing to run here; it is imported by train.py and subliminal.py. Quick check:
    python -c "from tiny_model import *; m = GPT(ModelConfig(vocab_size=137)); print(m.num_params())"
"""
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelConfig:
    vocab_size: int = 137   # number of token ids (data.py's vocabulary)
    block_size: int = 24    # longest sequence the position embedding covers
    n_layer: int = 2        # transformer blocks
    n_head: int = 4         # attention heads per block; d_model must divide by it
    d_model: int = 64       # width of the residual stream
    tie_head: bool = False  # share the token embedding with the output head


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        assert cfg.d_model % cfg.n_head == 0, "d_model must be divisible by n_head"
        self.n_head = cfg.n_head
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model)
        # mask[t, s] is True where position t may attend to position s, i.e. s <= t (lower triangle)
        mask = torch.tril(torch.ones(cfg.block_size, cfg.block_size, dtype=torch.bool))
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        B, T, C = x.shape
        hs = C // self.n_head
        q, k, v = self.qkv(x).split(C, dim=2)                   # each (B, T, C)
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)       # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)       # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)       # (B, nh, T, hs)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)         # (B, nh, T, T) similarity of every pair
        att = att.masked_fill(~self.mask[:T, :T], float("-inf"))  # no looking at the future
        att = torch.softmax(att, dim=-1)                        # each row sums to 1 over positions <= t
        y = att @ v                                             # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, C)                  # heads side by side again
        return self.proj(y)


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model)
        self.proj = nn.Linear(4 * cfg.d_model, cfg.d_model)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.d_model)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.d_model)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))  # pre-norm: normalise, transform, add back to the residual stream
        x = x + self.mlp(self.ln2(x))
        return x


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.block_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_head:
            self.head.weight = self.tok_emb.weight
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(module):
        # GPT-2's small-normal init. The init is what teacher and student share (paper §6): every weight
        # drawn here depends only on the torch seed set just before GPT(...) is built.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self):
        return sum(p.numel() for p in self.parameters())

    def forward(self, idx):
        B, T = idx.shape
        if T > self.cfg.block_size:
            raise ValueError(f"sequence of length {T} is longer than block_size {self.cfg.block_size}")
        pos = torch.arange(T, device=idx.device)
        x = self.tok_emb(idx) + self.pos_emb(pos)  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))             # (B, T, vocab_size)
