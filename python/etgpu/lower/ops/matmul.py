"""Matrix products: linear, mm, bmm, addmm, matmul -> one MatMul instruction each."""

import torch

from etgpu.lower.ops import quant
from etgpu.lower.ops._util import require_float
from etgpu.lower.registry import Unsupported, lowering


@lowering("aten.linear.default")
def linear(ctx, node):
    x, weight = node.args[0], node.args[1]
    bias = node.args[2] if len(node.args) > 2 else None
    require_float(ctx.meta(x), "linear")
    quantized = quant.quantized_weight_of(ctx, weight)
    if quantized is not None:
        return quant.lower_linear(ctx, node, quantized)
    if ctx.meta(weight).dim() != 2:
        raise Unsupported("linear weight must be 2-d")
    fields = dict(a=ctx.input(x), b=ctx.input(weight), trans_b=True)
    if bias is not None:
        fields["bias"] = ctx.input(bias)
    ctx.emit("MatMul", out=ctx.output(node), **fields)


@lowering("aten.mm.default", "aten.bmm.default", "aten.matmul.default")
def mm(ctx, node):
    a, b = node.args[0], node.args[1]
    if ctx.meta(a).dim() < 2 or ctx.meta(b).dim() < 2:
        raise Unsupported("matmul with a 1-d operand")
    require_float(ctx.meta(a), "matmul")
    ctx.emit("MatMul", a=ctx.input(a), b=ctx.input(b), out=ctx.output(node))


@lowering("aten.addmm.default")
def addmm(ctx, node):
    bias, a, b = node.args[:3]
    if node.kwargs.get("beta", 1) != 1 or node.kwargs.get("alpha", 1) != 1:
        raise Unsupported("addmm with beta/alpha other than 1")
    require_float(ctx.meta(a), "addmm")
    ctx.emit("MatMul", a=ctx.input(a), b=ctx.input(b), bias=ctx.input(bias), out=ctx.output(node))
