"""Writes the fuzzers' seed corpus from real exported programs: each small model is exported,
compiled with etgpu.compile, and saved twice: the whole .etgpu file (for fuzz_container) and its
bare IR payload (for fuzz_payload). Weights are tiny so seeds stay small and mutations fast.

    PYTHONPATH=python ETGPU_BUILD_DIR=build .venv/bin/python tests/fuzz/make_corpus.py OUT_DIR
"""

import sys
from pathlib import Path

import torch

import etgpu
from etgpu import container

Dim = torch.export.Dim


class Elementwise(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.tensor([0.5, -2.0, 3.0, 1.5]))

    def forward(self, x, y):
        return torch.sigmoid(x * self.scale + y).clamp(-1, 1), torch.relu(x - y) / (y.abs() + 1)


class IntegerMath(torch.nn.Module):
    def forward(self, a, b):
        return (a * b + 3) // (b.abs() + 1), torch.where(a > b, a, b)


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x):
        return torch.nn.functional.gelu(self.fc(x))


class BatchedMatmul(torch.nn.Module):
    def forward(self, a, b):
        return a @ b.transpose(-1, -2)


class Views(torch.nn.Module):
    def forward(self, x):
        y = x.reshape(2, 3, 4).permute(2, 0, 1)
        z = torch.cat([y[1:3], y[:, :, 0:1].expand(4, 2, 3)[2:4]], dim=0)
        return z.select(1, 1), y.float().half()


class Dynamic(torch.nn.Module):
    def forward(self, x, y):
        return (x + y).transpose(0, 1), x[:, 1:] * 2.0


class QuantizedLinear(torch.nn.Module):
    """A TorchAO int4 group-32 linear: seeds the QuantizedLinear decoding and checks."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(64, 8)
        from etgpu.llm.quantize import linear_config
        from torchao.quantization import quantize_

        quantize_(self, linear_config("int4-g32"))

    def forward(self, x):
        return self.fc(x)


class RopeGlu(torch.nn.Module):
    """transformers' rotate_half RoPE and a SiLU-gated product: seeds the fused Rope and Glu."""

    def forward(self, q, cos, sin, gate, up):
        half = q.shape[-1] // 2
        rotated = torch.cat((-q[..., half:], q[..., :half]), dim=-1)
        return q * cos + rotated * sin, torch.nn.functional.silu(gate) * up


class NormedRopeCache(torch.nn.Module):
    """Qwen3's key path: per-head RMSNorm, RoPE of the [B, L, H, D] view and the KV-cache write,
    one Rope with a norm and a cache: seeds the Rope's norm decoding and checks."""

    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.randn(8))
        self.register_buffer("cache", torch.zeros(1, 2, 16, 8))

    def forward(self, k, cos, sin, pos):
        k = k * torch.rsqrt(k.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w
        k = k.transpose(1, 2)
        half = k.shape[-1] // 2
        self.cache.index_copy_(2, pos, k * cos + torch.cat((-k[..., half:], k[..., :half]), dim=-1) * sin)
        return self.cache * 1.0


def models():
    """(name, module, example inputs, dynamic_shapes)."""
    seq = Dim("seq", min=1, max=64)
    return [
        ("elementwise", Elementwise(), (torch.randn(3, 4), torch.randn(3, 4)), None),
        ("integer_math", IntegerMath(), (torch.randint(-9, 9, (2, 5)), torch.randint(-9, 9, (2, 5))), None),
        ("linear", Linear(), (torch.randn(2, 4),), None),
        ("batched_matmul", BatchedMatmul(), (torch.randn(2, 3, 4), torch.randn(2, 5, 4)), None),
        ("views", Views(), (torch.randn(24),), None),
        ("dynamic", Dynamic(), (torch.randn(5, 3), torch.randn(5, 3)), ({0: seq}, {0: seq})),
        ("dynamic_linear", Linear(), (torch.randn(6, 4),), ({0: Dim("rows", min=2, max=32)},)),
        ("quantized_linear", QuantizedLinear(), (torch.randn(3, 64),), None),
        ("rope_glu", RopeGlu(), (torch.randn(1, 2, 3, 8), torch.randn(1, 1, 3, 8), torch.randn(1, 1, 3, 8),
                                 torch.randn(3, 16), torch.randn(3, 16)), None),
        ("normed_rope_cache", NormedRopeCache(), (torch.randn(1, 3, 2, 8), torch.randn(1, 1, 3, 8),
                                                  torch.randn(1, 1, 3, 8), torch.tensor([4, 5, 6])), None),
    ]


def main(out_dir: str) -> None:
    out = Path(out_dir)
    (out / "container").mkdir(parents=True, exist_ok=True)
    (out / "payload").mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    for name, module, inputs, dynamic in models():
        exported = torch.export.export(module.eval(), inputs, dynamic_shapes=dynamic)
        data = etgpu.compile(exported)
        payload, _ = container.unpack(data)
        (out / "container" / f"{name}.etgpu").write_bytes(data)
        (out / "payload" / f"{name}.bin").write_bytes(payload)
        print(f"{name}: {len(data)} bytes (payload {len(payload)})")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent / "corpus"))
