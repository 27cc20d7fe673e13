"""Lowering: ATen graphs to etgpu IR. One registry decides both what is supported and how it is
lowered (the partitioner asks it through a dry run)."""

from etgpu.lower.registry import Unsupported, lowering, lookup, supported_names, target_name  # noqa: F401
from etgpu.lower import ops  # noqa: F401  (registers every lowering rule)


def supported_ops():
    """The ATen overloads etgpu lowers (names like 'aten.add.Tensor'), sorted."""
    return supported_names()
