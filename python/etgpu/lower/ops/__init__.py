"""Lowering rules, one module per op family (importing a module registers its rules)."""

from etgpu.lower.ops import attention, elementwise, index, matmul, norm, quant, reduce, state, views  # noqa: F401
