"""Built-in example models for `etgpu export NAME`: each returns (module, example inputs, dynamic
shapes). Seeded random weights; real architectures (a transformer MLP, a Llama-style decoder
layer, a ViT encoder block)."""

from typing import Callable, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from etgpu.models.demo import Block, DemoConfig

MAX_TOKENS = 256


class Mlp(nn.Module):
    def __init__(self, dim: int = 256, hidden: int = 1024):
        super().__init__()
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.down(F.gelu(self.up(x)))


class DecoderLayer(nn.Module):
    """One Llama-style decoder layer (RMSNorm, GQA attention with RoPE, SwiGLU) over [1, T, dim]."""

    def __init__(self, cfg: DemoConfig = DemoConfig()):
        super().__init__()
        self.block = Block(cfg)
        head_dim = cfg.dim // cfg.n_heads
        inv_freq = 1.0 / (10000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        angles = torch.outer(torch.arange(MAX_TOKENS).float(), inv_freq)
        angles = torch.cat([angles, angles], dim=-1)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x):
        t = x.shape[1]
        return self.block(x, self.cos[:t], self.sin[:t])


class VitBlock(nn.Module):
    """A ViT encoder block: pre-LayerNorm, bidirectional multi-head attention, GELU MLP."""

    def __init__(self, dim: int = 192, heads: int = 3):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v)
        x = x + self.proj(attn.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.norm2(x))


def _tokens_dim():
    return torch.export.Dim("tokens", min=1, max=MAX_TOKENS)


EXAMPLES: Dict[str, Callable[[], Tuple[nn.Module, tuple, object]]] = {
    "mlp": lambda: (Mlp(), (torch.randn(8, 256),), ({0: _tokens_dim()},)),
    "decoder-layer": lambda: (DecoderLayer(), (torch.randn(1, 16, DemoConfig().dim),), ({1: _tokens_dim()},)),
    "vit-block": lambda: (VitBlock(), (torch.randn(1, 197, 192),), None),
}


def build_example(name: str, seed: int = 0):
    if name not in EXAMPLES:
        raise ValueError(f"unknown example {name!r}; choose one of {sorted(EXAMPLES)}")
    torch.manual_seed(seed)
    module, inputs, dynamic_shapes = EXAMPLES[name]()
    return module.eval(), inputs, dynamic_shapes
