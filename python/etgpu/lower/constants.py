"""Constant bytes: the exact little-endian layout the runtime reads, content-hash keys, and the
compact encodings of quantized weights' operands."""

import hashlib
import os
from typing import Optional, Tuple

import torch

from etgpu import huffman_bytes, packed_float
from etgpu.ir.ConstantEncoding import ConstantEncoding


def tensor_bytes(tensor: torch.Tensor) -> bytes:
    t = tensor.detach().cpu().contiguous()
    if t.numel() == 0:
        return b""
    return t.view(torch.uint8).numpy().tobytes() if t.dim() > 0 else t.reshape(1).view(torch.uint8).numpy().tobytes()


def content_key(data: bytes, tensor: torch.Tensor) -> str:
    digest = hashlib.sha256(data).hexdigest()[:32]
    shape = "x".join(str(s) for s in tensor.shape) or "scalar"
    return f"etgpu.{str(tensor.dtype).replace('torch.', '')}.{shape}.{digest}"


def packing_enabled() -> bool:
    """ETGPU_PACK_QPARAMS=0 stores quantization scales and zeros raw instead of PackedFloat-encoded
    (larger files, no decoding at load; also how the tests compare the two)."""
    return os.environ.get("ETGPU_PACK_QPARAMS", "1") != "0"


def huffman_codes_enabled() -> bool:
    """ETGPU_HUFFMAN_CODES=0 stores quantized weights' codes raw instead of HuffmanBytes-encoded
    (larger files, no decoding at load; also how the tests compare the two)."""
    return os.environ.get("ETGPU_HUFFMAN_CODES", "1") != "0"


def encode_quant_operand(tensor: torch.Tensor, role: str) -> Tuple[Optional[bytes], int]:
    """(stored bytes, encoding) of a quantized weight's operand, or (None, Raw) to store it as it
    is: codes HuffmanBytes-encoded when that saves enough (etgpu/huffman_bytes.py), scales and float
    zeros PackedFloat-encoded when that is smaller (etgpu/packed_float.py), each when enabled."""
    if role == "codes":
        stored = huffman_bytes.encode_if_it_pays(tensor) if huffman_codes_enabled() else None
        return stored, ConstantEncoding.HuffmanBytes
    stored = packed_float.pack_if_smaller(tensor) if packing_enabled() else None
    return stored, ConstantEncoding.PackedFloat
