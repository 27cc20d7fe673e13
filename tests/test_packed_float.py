"""PackedFloat constants (etgpu/packed_float.py encodes, runtime/src/program/packed_float.cpp
decodes): the documented byte layout, bit-exact round trips through the C++ decoder for any
bf16/f16/f32 bits, packing only when it saves bytes, and quantized models whose outputs are
bit-identical with the encoding on and off (ETGPU_PACK_QPARAMS)."""

import pytest
import torch

import etgpu
from etgpu import container, packed_float
from etgpu.compile import lower
from etgpu.describe import parse
from etgpu.ir.ConstantEncoding import ConstantEncoding
from etgpu.runtime import EtGpuError
from encoded_constants import (assert_pte_smaller_and_same_outputs, assert_same_outputs, compiled_with,
                               decoded_by_runtime, encoded_roles, quantized_linear_embed)
from parity import pte_path_enabled

DTYPES = [torch.bfloat16, torch.float16, torch.float32]
_BITS_DTYPE = {2: torch.int16, 4: torch.int32}


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(_BITS_DTYPE[t.element_size()])


def _random_bits(dtype, n, generator) -> torch.Tensor:
    """Elements with arbitrary bit patterns: every sign, exponent (subnormals, inf, NaN) and
    mantissa, so the exponent field spans its whole range."""
    width = torch.tensor([], dtype=dtype).element_size()
    raw = torch.randint(-(1 << 8 * width - 1), 1 << 8 * width - 1, (n,), generator=generator, dtype=torch.int64)
    return raw.to(_BITS_DTYPE[width]).view(dtype)


def _specials(dtype) -> torch.Tensor:
    """Ordinary values of both signs first, then +-0, +-inf, the largest and smallest normals, the
    smallest subnormal and NaNs (quiet, with a payload, negative)."""
    info = torch.finfo(dtype)
    values = torch.tensor([1.0, -3.5, 0.0, -0.0, float("inf"), float("-inf"), info.max, -info.tiny], dtype=dtype)
    int_dtype = _BITS_DTYPE[values.element_size()]
    nan = _bits(torch.tensor([float("nan")], dtype=dtype))
    sign = torch.tensor([torch.iinfo(int_dtype).min], dtype=int_dtype)
    patterns = torch.cat([torch.tensor([1], dtype=int_dtype), nan, nan | 1, nan | sign])
    return torch.cat([values, patterns.view(dtype)])


def _scale_like(dtype, n, generator) -> torch.Tensor:
    """Positive values over a few binades, like a quantized weight's group scales."""
    return (torch.rand(n, generator=generator) * 0.02 + 0.001).to(dtype)


def _decoded_by_runtime(stored: bytes, dtype, n: int) -> torch.Tensor:
    return decoded_by_runtime(stored, dtype, n, ConstantEncoding.PackedFloat)


def test_encoder_writes_the_documented_example():
    """bf16 {1.0, -2.0, 0.5}: the bytes worked out by hand in docs/quantization.md (and decoded
    by tests/cpp/test_packed_float.cpp)."""
    encoded = packed_float.encode(torch.tensor([1.0, -2.0, 0.5], dtype=torch.bfloat16))
    assert encoded == bytes([*b"EPF", 1, 8, 7, 2, 1, 3, 0, 0, 0, 126, 0, 0, 0, 0x80, 0x00, 0x0C, 0x00])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("content", ["random_bits", "specials", "scale_like"])
@pytest.mark.parametrize("n", [1, 3, 1001])
def test_runtime_decodes_exactly_what_was_encoded(dtype, content, n):
    generator = torch.Generator().manual_seed(n)
    if content == "specials":
        specials = _specials(dtype)
        values = specials[torch.arange(n) % len(specials)]
    else:
        values = (_random_bits if content == "random_bits" else _scale_like)(dtype, n, generator)
    assert torch.any(_bits(values) != 0)
    decoded = _decoded_by_runtime(packed_float.encode(values), dtype, n)
    assert decoded.dtype == dtype and torch.equal(_bits(decoded), _bits(values))


def test_bit_stream_ending_mid_byte_and_spanning_encoder_chunks():
    """More elements than one encoder chunk, with a bit count that is not a whole number of bytes."""
    n = (1 << 20) + 3
    values = _scale_like(torch.bfloat16, n, torch.Generator().manual_seed(1))
    values[7] = -values[7]  # one sign bit makes every element carry one
    encoded = packed_float.encode(values)
    layout = packed_float.read_header(encoded)
    assert layout.sign_bits == 1 and (n * layout.element_bits) % 8 != 0
    assert len(encoded) == layout.nbytes
    assert torch.equal(_bits(_decoded_by_runtime(encoded, torch.bfloat16, n)), _bits(values))


@pytest.mark.parametrize("dtype, at_most_bits", [(torch.bfloat16, 10), (torch.float16, 13), (torch.float32, 26)])
def test_scales_are_packed_and_smaller(dtype, at_most_bits):
    values = _scale_like(dtype, 4096, torch.Generator().manual_seed(0))
    packed = packed_float.pack_if_smaller(values)
    layout = packed_float.read_header(packed)
    assert layout.sign_bits == 0 and layout.element_bits <= at_most_bits
    assert len(packed) == layout.nbytes < values.numel() * values.element_size()


@pytest.mark.parametrize("values", [
    _random_bits(torch.bfloat16, 4096, torch.Generator().manual_seed(0)),  # 16 bits per element
    torch.tensor([0.25, 0.5], dtype=torch.bfloat16),  # the header outweighs the saving
    torch.tensor([], dtype=torch.float32),
    torch.arange(8, dtype=torch.int32),
    torch.arange(8, dtype=torch.uint8),  # NVFP4's e4m3 scales
], ids=["full_range", "tiny", "empty", "int32", "uint8"])
def test_raw_when_packing_does_not_pay(values):
    assert packed_float.pack_if_smaller(values) is None


# ---- quantized models ------------------------------------------------------------------------------

def _packed_roles(data: bytes):
    """{'scales', 'zeros', ...}: the quantized weights' operands stored PackedFloat-encoded."""
    return {role for _, role in encoded_roles(data, ConstantEncoding.PackedFloat)}


def _compiled(monkeypatch, exported, pack: bool) -> bytes:
    return compiled_with(monkeypatch, exported, "ETGPU_PACK_QPARAMS", pack)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("asymmetric", [False, True], ids=["symmetric", "asymmetric"])
def test_quantized_outputs_bit_identical_with_and_without_packing(monkeypatch, dtype, asymmetric):
    exported, inputs = quantized_linear_embed(dtype, asymmetric)
    packed, raw = _compiled(monkeypatch, exported, True), _compiled(monkeypatch, exported, False)
    assert _packed_roles(packed) == ({"scales", "zeros"} if asymmetric else {"scales"})
    assert _packed_roles(raw) == set() and len(packed) < len(raw)
    assert_same_outputs(packed, raw, inputs)


@pytest.mark.skipif(not pte_path_enabled(), reason="executorch not importable or ETGPU_TEST_PTE=0")
def test_pte_named_data_carries_packed_scales(monkeypatch):
    exported, inputs = quantized_linear_embed(torch.bfloat16, asymmetric=True)
    assert_pte_smaller_and_same_outputs(monkeypatch, exported, inputs, "ETGPU_PACK_QPARAMS")


def test_a_truncated_packed_constant_is_named_at_load(monkeypatch):
    exported, _ = quantized_linear_embed(torch.bfloat16, asymmetric=False)
    payload, constants = container.unpack(_compiled(monkeypatch, exported, True))
    graph = parse(payload).graph
    key = next(t.key.decode() for t in graph.tensors if t.encoding == ConstantEncoding.PackedFloat)
    constants[key] = constants[key][:-1]
    with pytest.raises(EtGpuError, match=rf"constant '{key}': packed-float payload has \d+ bytes; .*\(truncated\)"):
        etgpu.Model(container.pack(payload, constants), device="cpu")


def test_lowered_constants_hold_the_packed_bytes(monkeypatch):
    """The bytes under a packed tensor's key are the encoder's output for that tensor's values."""
    monkeypatch.setenv("ETGPU_PACK_QPARAMS", "1")
    exported, _ = quantized_linear_embed(torch.float32, asymmetric=False)
    lowered = lower(exported)
    graph = parse(lowered.payload).graph
    packed = [t for t in graph.tensors if t.encoding == ConstantEncoding.PackedFloat]
    assert packed
    for t in packed:
        layout = packed_float.read_header(lowered.constants[t.key.decode()])
        assert layout.count * layout.fmt.width_bytes == t.nbytes
        assert len(lowered.constants[t.key.decode()]) == layout.nbytes < t.nbytes
