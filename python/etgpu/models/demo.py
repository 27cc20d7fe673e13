"""The bundled demo: a small Llama-style decoder (token embedding, RMSNorm, rotary attention with
grouped-query heads and causal SDPA, SwiGLU MLP, tied-free LM head) over a byte-level vocabulary.

Its weights are seeded random numbers, not a trained model: the demo shows the whole flow
(torch.export with a dynamic sequence length -> etgpu.compile -> run on the GPU engine, or the CPU
engine without a GPU) and checks the result against PyTorch eager. The text it would generate
is meaningless."""

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class DemoConfig:
    vocab_size: int = 256      # one token per byte
    dim: int = 128
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: int = 2        # grouped-query attention, as in Llama 3 / Qwen
    hidden_dim: int = 352
    max_seq_len: int = 128
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class Attention(nn.Module):
    def __init__(self, cfg: DemoConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads = cfg.n_heads, cfg.n_kv_heads
        self.head_dim = cfg.dim // cfg.n_heads
        self.wq = nn.Linear(cfg.dim, cfg.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(cfg.dim, cfg.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(cfg.dim, cfg.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(cfg.n_heads * self.head_dim, cfg.dim, bias=False)

    def forward(self, x, cos, sin):
        b, t, _ = x.shape
        q = self.wq(x).view(b, t, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.wk(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.wv(x).view(b, t, self.n_kv_heads, self.head_dim).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # Grouped-query attention through SDPA's enable_gqa (one instruction; also avoids the
        # expand+reshape that torch 2.11's export cannot keep dynamic).
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        return self.wo(out.transpose(1, 2).reshape(b, t, -1))


class FeedForward(nn.Module):
    def __init__(self, cfg: DemoConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
        self.w3 = nn.Linear(cfg.dim, cfg.hidden_dim, bias=False)
        self.w2 = nn.Linear(cfg.hidden_dim, cfg.dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))  # SwiGLU


class Block(nn.Module):
    def __init__(self, cfg: DemoConfig):
        super().__init__()
        self.attention_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.attention = Attention(cfg)
        self.ffn_norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.feed_forward = FeedForward(cfg)

    def forward(self, x, cos, sin):
        x = x + self.attention(self.attention_norm(x), cos, sin)
        return x + self.feed_forward(self.ffn_norm(x))


class DemoTransformer(nn.Module):
    """tokens [B, T] (int64) -> logits [B, T, vocab]."""

    def __init__(self, cfg: DemoConfig):
        super().__init__()
        self.cfg = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.dim)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.RMSNorm(cfg.dim, eps=cfg.norm_eps)
        self.output = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
        head_dim = cfg.dim // cfg.n_heads
        inv_freq = 1.0 / cfg.rope_theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
        angles = torch.outer(torch.arange(cfg.max_seq_len).float(), inv_freq)
        angles = torch.cat((angles, angles), dim=-1)
        # Precomputed rotary tables, sliced to the sequence length at run time.
        self.register_buffer("rope_cos", angles.cos(), persistent=False)
        self.register_buffer("rope_sin", angles.sin(), persistent=False)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        cos, sin = self.rope_cos[:t], self.rope_sin[:t]
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            x = layer(x, cos, sin)
        return self.output(self.norm(x))


def build(seed: int = 0, cfg: Optional[DemoConfig] = None) -> DemoTransformer:
    """The demo model with seeded random weights (scaled like a trained model's, so activations stay O(1))."""
    cfg = cfg or DemoConfig()
    generator = torch.Generator().manual_seed(seed)
    model = DemoTransformer(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                std = 1.0 if "embeddings" in name else 1.0 / math.sqrt(p.shape[1])
                p.copy_(torch.randn(p.shape, generator=generator) * std)
    return model.eval()


def export(model: DemoTransformer, seq_len: int = 48):
    """torch.export with a dynamic sequence length in [2, max_seq_len]."""
    tokens = torch.randint(0, model.cfg.vocab_size, (1, seq_len))
    seq = torch.export.Dim("seq", min=2, max=model.cfg.max_seq_len)
    return torch.export.export(model, (tokens,), dynamic_shapes=({1: seq},))


def _best_ms(fn, iters: int = 5, sync=lambda: None) -> float:
    """Best of `iters` timed calls after one warm-up call (`sync` waits for queued GPU work)."""
    best = float("inf")
    with torch.inference_mode():
        fn()
        for _ in range(iters):
            sync()
            start = time.perf_counter()
            fn()
            sync()
            best = min(best, time.perf_counter() - start)
    return best * 1e3


def _eager_cuda_ms(model: nn.Module, tokens: torch.Tensor) -> Optional[float]:
    """PyTorch eager on the GPU, the baseline etgpu's CUDA engine has to beat (None without a GPU)."""
    if not torch.cuda.is_available():
        return None
    import copy

    cuda_model, cuda_tokens = copy.deepcopy(model).cuda(), tokens.cuda()
    return _best_ms(lambda: cuda_model(cuda_tokens), sync=torch.cuda.synchronize)


def run(device: str = "auto", seq_len: int = 48, out: Optional[str] = None, seed: int = 0) -> dict:
    """Exports, compiles and runs the demo; returns what it measured (main() prints it)."""
    import etgpu

    model = build(seed)
    exported = export(model, seq_len)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(out) if out else Path(tmp) / "demo.etgpu"
        start = time.perf_counter()
        etgpu.compile(exported, path)
        compile_s = time.perf_counter() - start
        runner = etgpu.load(path, device=device)
        results = {"path": str(path) if out else None, "file_bytes": path.stat().st_size,
                   "compile_s": compile_s, "cases": []}
        # Two lengths: the export-time one and another, so the dynamic dimension is exercised.
        for length in sorted({seq_len, max(2, seq_len // 2 + 1)}):
            tokens = torch.randint(0, model.cfg.vocab_size, (1, length),
                                   generator=torch.Generator().manual_seed(seed + length))
            with torch.no_grad():
                expected = model(tokens)
            actual = runner.run([tokens])[0]
            err = (actual - expected).abs().max().item()
            results["cases"].append({
                "seq_len": length, "max_abs_err": err,
                "rel_err": err / max(expected.abs().max().item(), 1e-12),
                "etgpu_ms": _best_ms(lambda: runner.run([tokens])),
                "eager_ms": _best_ms(lambda: model(tokens)),
                "eager_cuda_ms": _eager_cuda_ms(model, tokens),
            })
        results["engine"] = runner.stats().get("engine_note", "?")
    return results


def main(device: str = "auto", seq_len: int = 48, out: Optional[str] = None) -> int:
    from etgpu.lower.registry import Unsupported

    cfg = DemoConfig()
    print(f"etgpu demo: {cfg.n_layers}-layer Llama-style decoder, dim {cfg.dim}, {cfg.n_heads} heads "
          f"({cfg.n_kv_heads} KV), vocab {cfg.vocab_size} (bytes); random seeded weights, not a trained model")
    try:
        results = run(device=device, seq_len=seq_len, out=out)
    except Unsupported as e:
        print(f"etgpu demo: this build cannot lower the demo model yet: {e}")
        return 1
    print(f"compiled in {results['compile_s']:.2f} s, {results['file_bytes'] / 1e6:.2f} MB"
          + (f" -> {results['path']}" if results["path"] else ""))
    print(f"engine: {results['engine']}")
    ok = True
    for case in results["cases"]:
        # fp32 end to end; a few matmuls deep, so allow the TF32 budget on the GPU.
        good = case["rel_err"] <= 1e-3
        ok &= good
        print(f"seq_len {case['seq_len']:>3}: max |etgpu - eager| = {case['max_abs_err']:.3g} "
              f"(rel {case['rel_err']:.2g}, {'ok' if good else 'TOO LARGE'}); "
              f"etgpu {case['etgpu_ms']:.2f} ms, torch eager CPU {case['eager_ms']:.2f} ms"
              + (f", CUDA {case['eager_cuda_ms']:.2f} ms" if case["eager_cuda_ms"] is not None else ""))
    return 0 if ok else 1
