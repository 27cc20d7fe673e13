"""HuffmanBytes constants (etgpu/huffman_bytes.py encodes, runtime/src/program/huffman_bytes.cpp
decodes): the documented byte layout, exact round trips through the C++ decoder for skewed,
uniform and single-valued bytes across chunk boundaries, encoding only when it pays, and quantized
models whose outputs are bit-identical with the encoding on and off (ETGPU_HUFFMAN_CODES)."""

import numpy as np
import pytest
import torch

import etgpu
from etgpu import container, huffman_bytes
from etgpu.compile import lower
from etgpu.describe import parse
from etgpu.ir.ConstantEncoding import ConstantEncoding
from etgpu.ir.Op import Op
from etgpu.runtime import EtGpuError
from encoded_constants import (assert_pte_smaller_and_same_outputs, assert_same_outputs, compiled_with,
                               decoded_by_runtime, encoded_roles, quantized_linear_embed)
from parity import pte_path_enabled

# Bytes {0, 0, 1, 2}: counts 2, 1, 1 give lengths 1, 2, 2 and canonical codes 0, 10, 11; the
# stream holds each code first bit first from bit 0 up: 0 0 10 11 -> 0b00110100. The same bytes
# are in docs/quantization.md and tests/cpp/test_huffman_bytes.cpp.
DOCUMENTED_EXAMPLE = bytes([*b"EHB", 1, 0x00, 0x00, 0x10, 0x00, 4, 0, 0, 0, 0, 0, 0, 0, 1, 2, 2] + [0] * 253 +
                           [1, 0, 0, 0, 0, 0, 0, 0, 0x34])


def _int4_like(n: int, rng: np.random.Generator, spread: float = 2.5) -> torch.Tensor:
    """Bytes of two int4 codes each, as TorchAO's symmetric codes of a normal weight (offset by 8):
    most mass near the middle values, the extremes rare."""
    q = np.clip(np.round(rng.standard_normal(2 * n) * spread) + 8, 0, 15).astype(np.uint8)
    return torch.from_numpy(q[0::2] | q[1::2] << 4)


def _int8_like(n: int, rng: np.random.Generator) -> torch.Tensor:
    return torch.from_numpy((np.clip(np.round(rng.standard_normal(n) * 40), -128, 127) + 128).astype(np.uint8))


def _uniform(n: int, rng: np.random.Generator) -> torch.Tensor:
    return torch.from_numpy(rng.integers(0, 256, n, dtype=np.uint8))


def _single_value(n: int, rng: np.random.Generator) -> torch.Tensor:
    return torch.full((n,), int(rng.integers(1, 256)), dtype=torch.uint8)


def _geometric(n: int, rng: np.random.Generator) -> torch.Tensor:
    """Byte v with probability ~2^-(v+1): unlimited Huffman codes would reach ~20+ bits."""
    return torch.from_numpy(np.minimum(rng.geometric(0.5, n) - 1, 255).astype(np.uint8))


def _two_levels(n: int, rng: np.random.Generator) -> torch.Tensor:
    """Bytes 0..127 twice as likely as 128..255."""
    return torch.from_numpy(np.where(rng.random(n) < 2 / 3, rng.integers(0, 128, n), rng.integers(128, 256, n))
                            .astype(np.uint8))


CONTENTS = {"int4_like": _int4_like, "int8_like": _int8_like, "uniform": _uniform,
            "single_value": _single_value, "geometric": _geometric}


def _decoded(stored: bytes, n: int) -> torch.Tensor:
    return decoded_by_runtime(stored, torch.uint8, n, ConstantEncoding.HuffmanBytes)


def test_encoder_writes_the_documented_example():
    assert huffman_bytes.encode(torch.tensor([0, 0, 1, 2], dtype=torch.uint8)) == DOCUMENTED_EXAMPLE


@pytest.mark.parametrize("content", CONTENTS)
@pytest.mark.parametrize("n, chunk_bytes", [(1, 16), (3, 16), (1001, 1 << 20), (1001, 100), (5000, 1000)],
                         ids=["one", "three", "one_chunk", "ends_mid_chunk", "whole_chunks"])
def test_runtime_decodes_exactly_what_was_encoded(content, n, chunk_bytes):
    values = CONTENTS[content](n, np.random.default_rng(n))
    assert values.any()
    encoded = huffman_bytes.encode(values, chunk_bytes=chunk_bytes)
    layout = huffman_bytes.read_header(encoded)
    assert layout.count == n and layout.chunk_count == -(-n // chunk_bytes)
    assert torch.equal(_decoded(encoded, n), values)


def test_chunks_end_mid_byte_and_many_decode_on_several_threads():
    """Hundreds of chunks (the runtime spreads them over its threads), a last chunk shorter than
    the rest, and chunks whose codes do not fill their last byte."""
    n, chunk_bytes = 300_007, 1000
    values = _int4_like(n, np.random.default_rng(1))
    lengths = huffman_bytes.code_lengths(huffman_bytes.histogram(values.numpy()))
    chunk_bits = lengths[values.numpy()[:chunk_bytes]].astype(np.int64).sum()
    assert chunk_bits % 8 != 0
    encoded = huffman_bytes.encode(values, chunk_bytes=chunk_bytes, lengths=lengths)
    assert len(encoded) <= huffman_bytes.encoded_size(huffman_bytes.histogram(values.numpy()), lengths, chunk_bytes)
    assert torch.equal(_decoded(encoded, n), values)


def test_length_limit_holds_and_costs_little():
    counts = huffman_bytes.histogram(_geometric(1 << 20, np.random.default_rng(2)).numpy())
    lengths = huffman_bytes.code_lengths(counts)
    assert huffman_bytes._huffman_lengths(counts).max() > huffman_bytes.MAX_CODE_BITS >= lengths.max()
    assert (np.ldexp(1.0, -lengths[lengths > 0].astype(np.int64))).sum() == 1.0  # a complete prefix code
    p = counts[counts > 0] / counts.sum()
    entropy_bits = -(p * np.log2(p)).sum() * counts.sum()
    assert (counts * lengths).sum() < 1.01 * entropy_bits + counts.sum()


def test_codes_are_near_their_entropy():
    values = _int4_like(1 << 20, np.random.default_rng(3))
    counts = huffman_bytes.histogram(values.numpy())
    p = counts[counts > 0] / counts.sum()
    entropy_bytes = -(p * np.log2(p)).sum() * values.numel() / 8
    encoded = huffman_bytes.encode_if_it_pays(values)
    assert entropy_bytes <= len(encoded) < 1.01 * entropy_bytes < 0.9 * values.numel()


@pytest.mark.parametrize("values", [
    _uniform(1 << 16, np.random.default_rng(0)),  # 8 bits of information per byte
    _int4_like(256, np.random.default_rng(0)),  # the header outweighs the saving
    _two_levels(1 << 16, np.random.default_rng(0)),  # 7.92 bits of information per byte: saves under 2%
    torch.tensor([], dtype=torch.uint8),
    torch.arange(64, dtype=torch.int32),
], ids=["uniform", "tiny", "saves_under_2_percent", "empty", "int32"])
def test_raw_when_encoding_does_not_pay(values):
    assert huffman_bytes.encode_if_it_pays(values) is None


# ---- quantized models ------------------------------------------------------------------------------

def _huffman_roles(data: bytes):
    """{(op type, 'codes'), ...}: the quantized weights' operands stored HuffmanBytes-encoded."""
    return encoded_roles(data, ConstantEncoding.HuffmanBytes)


def _model(dtype, asymmetric=False):
    """Codes large enough that the encoding pays: int4 [256, 512/2] and int8 [256, 256]."""
    return quantized_linear_embed(dtype, asymmetric, features=512, outputs=256, rows=256, normal_linear=True)


def _compiled(monkeypatch, exported, huffman: bool) -> bytes:
    return compiled_with(monkeypatch, exported, "ETGPU_HUFFMAN_CODES", huffman)


BOTH_CODES = {(Op.QuantizedLinear, "codes"), (Op.QuantizedEmbedding, "codes")}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("asymmetric", [False, True], ids=["symmetric", "asymmetric"])
def test_quantized_outputs_bit_identical_with_and_without_huffman_codes(monkeypatch, dtype, asymmetric):
    exported, inputs = _model(dtype, asymmetric)
    coded, raw = _compiled(monkeypatch, exported, True), _compiled(monkeypatch, exported, False)
    assert _huffman_roles(coded) == BOTH_CODES and _huffman_roles(raw) == set()
    assert len(coded) < len(raw)
    assert_same_outputs(coded, raw, inputs)


@pytest.mark.skipif(not pte_path_enabled(), reason="executorch not importable or ETGPU_TEST_PTE=0")
def test_pte_named_data_carries_huffman_codes(monkeypatch):
    exported, inputs = _model(torch.bfloat16, asymmetric=True)
    assert_pte_smaller_and_same_outputs(monkeypatch, exported, inputs, "ETGPU_HUFFMAN_CODES")


def _coded_constant(monkeypatch):
    """(payload, constants, key of the embedding's coded codes) of the model compiled with the
    encoding on."""
    exported, _ = _model(torch.bfloat16)
    payload, constants = container.unpack(_compiled(monkeypatch, exported, True))
    graph = parse(payload).graph
    key = next(t.key.decode() for t in graph.tensors if t.encoding == ConstantEncoding.HuffmanBytes)
    return payload, constants, key


@pytest.mark.parametrize("corruption, message", [
    (lambda b: b[:-1], r"chunk 0 ends at stream byte \d+, past the \d+ stream bytes the payload holds \(truncated\)"),
    (lambda b: b[:100], r"payload of 100 bytes is shorter than its 272-byte header \(truncated\)"),
    (lambda b: b[:16] + bytes([16]) + b[17:], r"code length of byte 0 is 16"),
], ids=["truncated", "header_cut", "bad_length"])
def test_a_corrupt_coded_constant_is_named_at_load(monkeypatch, corruption, message):
    payload, constants, key = _coded_constant(monkeypatch)
    constants[key] = corruption(constants[key])
    with pytest.raises(EtGpuError, match=rf"constant '{key}': huffman-bytes ({message})"):
        etgpu.Model(container.pack(payload, constants), device="cpu")


def test_lowered_constants_hold_the_coded_bytes(monkeypatch):
    """The bytes under a coded tensor's key decode, in the runtime, to the tensor's raw codes."""
    monkeypatch.setenv("ETGPU_HUFFMAN_CODES", "0")
    exported, _ = _model(torch.float32)
    raw = lower(exported)
    monkeypatch.setenv("ETGPU_HUFFMAN_CODES", "1")
    coded = lower(exported)
    raw_tensors, coded_tensors = parse(raw.payload).graph.tensors, parse(coded.payload).graph.tensors
    checked = 0
    for r, c in zip(raw_tensors, coded_tensors):
        if c.encoding != ConstantEncoding.HuffmanBytes:
            continue
        stored = coded.constants[c.key.decode()]
        assert huffman_bytes.read_header(stored).count == c.nbytes > len(stored)
        expected = raw.constants[r.key.decode()]
        assert _decoded(stored, c.nbytes).numpy().tobytes() == expected
        checked += 1
    assert checked == 2
