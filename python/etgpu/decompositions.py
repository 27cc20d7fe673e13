"""Which ATen ops stay whole (etgpu lowers them directly, faster than their decompositions) and
the decomposition table used for everything else. Shared by the torch-only path and the
ExecuTorch partitioner, so both see the same graph."""

import torch

# Ops kept intact: each has a direct lowering rule.
PRESERVED_OPS = [
    torch.ops.aten.linear.default,
    torch.ops.aten.scaled_dot_product_attention.default,
    torch.ops.aten.gelu.default,
    torch.ops.aten.silu.default,
    torch.ops.aten.layer_norm.default,
    torch.ops.aten.rms_norm.default,
    torch.ops.aten.matmul.default,
    torch.ops.aten.softmax.int,
    torch.ops.aten.log_softmax.int,
    torch.ops.aten.index_copy.default,
]


def decomposition_table():
    table = torch.export.default_decompositions()
    for op in PRESERVED_OPS:
        table.pop(op, None)
    return table
