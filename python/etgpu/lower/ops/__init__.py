"""Lowering rules, one module per op family (importing a module registers its rules)."""

from etgpu.lower.ops import (attention, elementwise, fused, index, matmul, norm, quant, reduce, state,  # noqa: F401
                             views)
