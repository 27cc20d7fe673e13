"""Matrix products: linear, mm, bmm, addmm, matmul -> one MatMul instruction each; sibling linears
merged by etgpu.lower.passes.split_linear -> one SplitLinear."""

import torch

from etgpu.lower.ops import quant
from etgpu.lower.ops._util import require_float
from etgpu.lower.ops.fused import GLU_ACTS
from etgpu.lower.registry import Unsupported, lowering, target_name

SPLIT_LINEAR = "etgpu.split_linear.default"
SPLIT_LINEAR_GLU = "etgpu.split_linear_glu.default"
SPLIT_LINEAR_OPS = (SPLIT_LINEAR, SPLIT_LINEAR_GLU)


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


@lowering(*SPLIT_LINEAR_OPS)
def split_linear(ctx, node):
    """Sibling linears as one SplitLinear: their weights (and biases, zeros where a sibling has
    none) concatenated along the output dim into one constant each; the originals stay lazy
    (graph._repacked_only), so each weight byte is stored once. split_linear_glu's node value is
    the Glu of its two outputs, which the instruction then also writes."""
    x, weights, biases = node.args[:3]
    require_float(ctx.meta(x), "split_linear")
    hosts = [ctx.host_tensor(w) for w in weights]
    if any(h is None for h in hosts):
        raise Unsupported("split_linear needs its weights as constants")
    fields = dict(x=ctx.input(x), w=ctx.constant(f"{node.name}_weight", torch.cat(hosts)))
    if any(b is not None for b in biases):
        parts = [ctx.host_tensor(b) if b is not None else torch.zeros(h.shape[0], dtype=h.dtype)
                 for b, h in zip(biases, hosts)]
        if any(p is None for p in parts):
            raise Unsupported("split_linear needs its biases as constants")
        fields["bias"] = ctx.constant(f"{node.name}_bias", torch.cat(parts))
    x_shape = list(ctx.meta(x).shape[:-1])
    fields["outs"] = [ctx.new_tensor(h.dtype, x_shape + [h.shape[0]], name=f"{node.name}_{i}")
                      for i, h in enumerate(hosts)]
    if target_name(node.target) == SPLIT_LINEAR_GLU:
        fields.update(glu_out=ctx.output(node), glu_act=GLU_ACTS[node.args[3]])
    else:
        ctx.tuple_values[node] = fields["outs"]
    ctx.emit("SplitLinear", **fields)
