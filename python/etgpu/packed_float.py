"""Packed float: a lossless, compact encoding of a float constant's bytes (PackedFloat in
schema/etgpu.fbs; byte layout in docs/quantization.md, decoder runtime/src/program/packed_float.cpp).

Quantization scales span a narrow range of exponents, so storing each element's exponent field
relative to the smallest one, in just enough bits, and its sign bit only when some element is
negative, shrinks bf16 scales from 16 bits to about 9-12. The fields are copied, never
interpreted, so every bit pattern (zeros, subnormals, infinities, NaN payloads) survives."""

import struct
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

MAGIC = b"EPF"
VERSION = 1
# magic, version, format exponent bits, format mantissa bits, stored exponent bits, sign stored,
# element count, smallest biased exponent, 3 zero bytes: 16 bytes.
HEADER = struct.Struct("<3sBBBBBIB3x")
# Elements per chunk of the bit packing: a multiple of 8, so each chunk ends on a byte boundary
# whatever the element's bit width; bounds the temporary bit arrays to a few tens of MB.
_CHUNK = 1 << 20


@dataclass(frozen=True)
class FloatFormat:
    exponent_bits: int
    mantissa_bits: int

    @property
    def width_bytes(self) -> int:
        return (1 + self.exponent_bits + self.mantissa_bits) // 8


FORMATS = {torch.bfloat16: FloatFormat(8, 7), torch.float16: FloatFormat(5, 10), torch.float32: FloatFormat(8, 23)}


@dataclass(frozen=True)
class Layout:
    """How one tensor's elements are stored: each is the code [sign][exponent - min_exponent]
    [mantissa] (top bit first), element_bits wide, written into the stream low bits first."""
    fmt: FloatFormat
    exponent_bits: int   # stored (relative) exponent bits, 0 when every exponent is the same
    sign_bits: int       # 1 when some element has its sign bit set, else 0
    min_exponent: int    # the smallest biased exponent field
    count: int

    @property
    def element_bits(self) -> int:
        return self.sign_bits + self.exponent_bits + self.fmt.mantissa_bits

    @property
    def nbytes(self) -> int:
        return HEADER.size + (self.count * self.element_bits + 7) // 8


def _raw_bits(tensor: torch.Tensor) -> np.ndarray:
    """The elements' bit patterns as uint32, read through an integer view of the same width
    (numpy has no bf16)."""
    narrow = tensor.element_size() == 2
    bits = tensor.detach().cpu().contiguous().reshape(-1).view(torch.int16 if narrow else torch.int32).numpy()
    return bits.view(np.uint16 if narrow else np.uint32).astype(np.uint32)


def _fields(bits: np.ndarray, fmt: FloatFormat):
    mantissa = bits & np.uint32((1 << fmt.mantissa_bits) - 1)
    exponent = (bits >> np.uint32(fmt.mantissa_bits)) & np.uint32((1 << fmt.exponent_bits) - 1)
    sign = bits >> np.uint32(fmt.mantissa_bits + fmt.exponent_bits)
    return sign, exponent, mantissa


def _bit_stream(codes: np.ndarray, width: int) -> bytes:
    """The low `width` bits of each uint32 code, concatenated: code i at stream bits
    [i * width, (i + 1) * width), stream bit j being bit j % 8 of byte j // 8."""
    parts = []
    for start in range(0, codes.size, _CHUNK):
        chunk = codes[start:start + _CHUNK].astype("<u4").view(np.uint8).reshape(-1, 4)
        bits = np.unpackbits(chunk, axis=1, bitorder="little")[:, :width]
        parts.append(np.packbits(bits.reshape(-1), bitorder="little").tobytes())
    return b"".join(parts)


def _analyse(tensor: torch.Tensor):
    """(sign, exponent, mantissa fields, layout) of a tensor encode() takes, or None."""
    fmt = FORMATS.get(tensor.dtype)
    if fmt is None or tensor.numel() == 0 or tensor.numel() >= 1 << 32:  # count is a u32
        return None
    sign, exponent, mantissa = _fields(_raw_bits(tensor), fmt)
    lo, hi = int(exponent.min()), int(exponent.max())
    return sign, exponent, mantissa, Layout(fmt, (hi - lo).bit_length(), int(sign.any()), lo, exponent.size)


def _pack(sign: np.ndarray, exponent: np.ndarray, mantissa: np.ndarray, layout: Layout) -> bytes:
    m_bits = layout.fmt.mantissa_bits
    relative = exponent - np.uint32(layout.min_exponent)
    codes = (sign << np.uint32(layout.exponent_bits + m_bits)) | (relative << np.uint32(m_bits)) | mantissa
    header = HEADER.pack(MAGIC, VERSION, layout.fmt.exponent_bits, m_bits, layout.exponent_bits,
                         layout.sign_bits, layout.count, layout.min_exponent)
    return header + _bit_stream(codes, layout.element_bits)


def encode(tensor: torch.Tensor) -> bytes:
    """The packed-float bytes of a non-empty bf16/f16/f32 tensor, whether or not they are
    smaller than its own (pack_if_smaller decides what is stored)."""
    analysed = _analyse(tensor)
    if analysed is None:
        raise ValueError(f"packed float takes a non-empty bf16/f16/f32 tensor, not {tensor.dtype}[{tensor.numel()}]")
    return _pack(*analysed)


def pack_if_smaller(tensor: torch.Tensor) -> Optional[bytes]:
    """encode(tensor) when that is smaller than the tensor's own bytes, else None (store raw)."""
    analysed = _analyse(tensor)
    if analysed is None or analysed[-1].nbytes >= tensor.numel() * tensor.element_size():
        return None
    return _pack(*analysed)


def read_header(data: bytes) -> Optional[Layout]:
    """The layout a packed-float payload's header declares (None when it is not one): what
    `etgpu inspect` and the tests read back."""
    if len(data) < HEADER.size:
        return None
    magic, version, e_bits, m_bits, d_bits, s_bits, count, min_exp = HEADER.unpack_from(data)
    if magic != MAGIC or version != VERSION:
        return None
    return Layout(FloatFormat(e_bits, m_bits), d_bits, s_bits, min_exp, count)
