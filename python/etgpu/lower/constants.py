"""Constant bytes: the exact little-endian layout the runtime reads, and content-hash keys."""

import hashlib
import os

import torch


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
