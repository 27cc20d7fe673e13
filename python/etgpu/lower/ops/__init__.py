"""Lowering rules, one module per op family (importing a module registers its rules)."""

from etgpu.lower.ops import elementwise, matmul, state, views  # noqa: F401
