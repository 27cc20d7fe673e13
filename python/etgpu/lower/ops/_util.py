"""Small helpers shared by lowering rules."""

import torch

from etgpu.lower.registry import Unsupported
from etgpu.dtypes import FLOAT_DTYPES


def normalize_dim(dim: int, rank: int) -> int:
    d = dim + rank if dim < 0 else dim
    if not 0 <= d < max(rank, 1):
        raise Unsupported(f"dim {dim} out of range for rank {rank}")
    return d


def require_float(value: torch.Tensor, what: str) -> None:
    if value.dtype not in FLOAT_DTYPES:
        raise Unsupported(f"{what} needs a float tensor, got {value.dtype}")


def is_static(size) -> bool:
    return isinstance(size, int)
