"""Writes the fuzzers' seed corpus from real exported programs: each small model is exported,
compiled with etgpu.compile, and saved twice: the whole .etgpu file (for fuzz_container) and its
bare IR payload (for fuzz_payload). Weights are tiny so seeds stay small and mutations fast.
fuzz_packed_float gets the PackedFloat constants of those programs and a few made here;
fuzz_huffman_bytes their HuffmanBytes constants and a few made here (multi-chunk, one byte value).

    PYTHONPATH=python ETGPU_BUILD_DIR=build .venv/bin/python tests/fuzz/make_corpus.py OUT_DIR
"""

import sys
from pathlib import Path

import torch

import etgpu
from etgpu import container, huffman_bytes, packed_float
from etgpu.describe import parse
from etgpu.dtypes import dtype_code
from etgpu.ir.ConstantEncoding import ConstantEncoding

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


class PackedScales(torch.nn.Module):
    """A bf16 int4 group-32 linear and int8 embedding whose scales are stored PackedFloat-encoded:
    seeds the packed-float decoder with real payloads to mutate."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(64, 16)
        self.embed = torch.nn.Embedding(32, 64)
        from etgpu.llm.quantize import embedding_config, linear_config
        from torchao.quantization import quantize_

        self.to(torch.bfloat16)
        quantize_(self.fc, linear_config("int4-g32"))
        quantize_(self, embedding_config("int8"), filter_fn=lambda m, fqn: isinstance(m, torch.nn.Embedding))

    def forward(self, x, index):
        return self.fc(x), self.embed(index)


class HuffmanCodes(torch.nn.Module):
    """A bf16 int4 group-32 linear with normal weights (as a real model's), large enough that its
    codes are stored HuffmanBytes-encoded: seeds the decoder through a whole file."""

    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(256, 64)
        torch.nn.init.normal_(self.fc.weight, std=0.02)
        from etgpu.llm.quantize import linear_config
        from torchao.quantization import quantize_

        self.to(torch.bfloat16)
        quantize_(self.fc, linear_config("int4-g32"))

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
        ("packed_scales", PackedScales(), (torch.randn(3, 64, dtype=torch.bfloat16), torch.tensor([0, 31])), None),
        ("huffman_codes", HuffmanCodes(), (torch.randn(2, 256, dtype=torch.bfloat16),), None),
    ]


def packed_float_seed(dtype_byte: int, stored: bytes) -> bytes:
    """An input of fuzz_packed_float: the tensor's dtype, 0 (the element count is the one the
    payload's header declares), the payload."""
    return bytes([dtype_byte, 0]) + stored


def encoded_constants(data: bytes, encoding: int):
    """{key: (dtype, stored bytes)} of a compiled program's constants stored in `encoding`."""
    payload, constants = container.unpack(data)
    dtypes = {t.key.decode(): t.dtype for t in parse(payload).graph.tensors if t.encoding == encoding}
    return {key: (dtype, constants[key]) for key, dtype in sorted(dtypes.items())}


def packed_constants(data: bytes):
    """The PackedFloat constants of a compiled program, as fuzz_packed_float inputs."""
    return [packed_float_seed(dtype, stored)
            for dtype, stored in encoded_constants(data, ConstantEncoding.PackedFloat).values()]


def huffman_seed(stored: bytes, threads: int = 1) -> bytes:
    """An input of fuzz_huffman_bytes: the decoder's thread limit, 0 (the size is the one the
    payload's header declares), the payload."""
    return bytes([threads, 0]) + stored


def huffman_constants(data: bytes):
    """The HuffmanBytes constants of a compiled program, as fuzz_huffman_bytes inputs."""
    return [huffman_seed(stored) for _, stored in encoded_constants(data, ConstantEncoding.HuffmanBytes).values()]


def huffman_made_seeds():
    """Int4-like bytes in 64-byte chunks decoded on two threads (the last chunk short), one byte
    value repeated, and the documented 4-byte example."""
    generator = torch.Generator().manual_seed(0)
    codes = (torch.randn(2 * 1000, generator=generator) * 2.5 + 8).round().clamp(0, 15).to(torch.uint8)
    int4_like = codes[0::2] | codes[1::2] << 4
    return {"int4_like_chunks": huffman_seed(huffman_bytes.encode(int4_like, chunk_bytes=64), threads=2),
            "single_value": huffman_seed(huffman_bytes.encode(torch.full((300,), 9, dtype=torch.uint8))),
            "documented_example": huffman_seed(huffman_bytes.encode(torch.tensor([0, 0, 1, 2], dtype=torch.uint8)))}


def special_values_seeds():
    """Every float format with signs, zeros, a subnormal, inf and NaN (the models' scales are bf16
    and positive)."""
    values = torch.tensor([1.0, -2.0, 0.5, 0.0, -0.0, 1e-40, float("inf"), float("nan"), 3e-3])
    return {f"specials_{str(dtype).replace('torch.', '')}":
            packed_float_seed(dtype_code(dtype), packed_float.encode(values.to(dtype)))
            for dtype in (torch.float32, torch.float16, torch.bfloat16)}


def main(out_dir: str) -> None:
    out = Path(out_dir)
    for kind in ("container", "payload", "packed_float", "huffman_bytes"):
        (out / kind).mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    seeds, huffman_seeds = special_values_seeds(), huffman_made_seeds()
    for name, module, inputs, dynamic in models():
        exported = torch.export.export(module.eval(), inputs, dynamic_shapes=dynamic)
        data = etgpu.compile(exported)
        payload, _ = container.unpack(data)
        (out / "container" / f"{name}.etgpu").write_bytes(data)
        (out / "payload" / f"{name}.bin").write_bytes(payload)
        seeds.update({f"{name}_{i}": seed for i, seed in enumerate(packed_constants(data))})
        huffman_seeds.update({f"{name}_{i}": seed for i, seed in enumerate(huffman_constants(data))})
        print(f"{name}: {len(data)} bytes (payload {len(payload)})")
    for name, seed in seeds.items():
        (out / "packed_float" / f"{name}.bin").write_bytes(seed)
    print(f"packed_float: {len(seeds)} seeds")
    for name, seed in huffman_seeds.items():
        (out / "huffman_bytes" / f"{name}.bin").write_bytes(seed)
    print(f"huffman_bytes: {len(huffman_seeds)} seeds")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else str(Path(__file__).parent / "corpus"))
