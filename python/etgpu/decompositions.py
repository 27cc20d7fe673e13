"""Which ATen ops stay whole (etgpu lowers them directly, faster than their decompositions) and
the decomposition table used for everything else. Shared by the torch-only path and the
ExecuTorch partitioner, so both see the same graph."""

import sys

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



def preserved_ops():
    """PRESERVED_OPS plus TorchAO's quantization ops when TorchAO is loaded (a quantized model
    has loaded it): etgpu lowers their patterns whole (lower/ops/quant.py), and their
    decompositions would leave only unpacked int8 weights behind."""
    if "torchao" not in sys.modules:
        return list(PRESERVED_OPS)
    ao = torch.ops.torchao
    return PRESERVED_OPS + [ao.dequantize_affine.default, ao.quantize_affine.default,
                            ao.choose_qparams_affine.default]


def decomposition_table():
    table = torch.export.default_decompositions()
    for op in preserved_ops():
        table.pop(op, None)
    return table
