"""Softmax / log-softmax, layer norm and RMS norm: one instruction each."""

import torch

from etgpu.dtypes import FLOAT_DTYPES
from etgpu.lower.ops._util import normalize_dim, require_float
from etgpu.lower.registry import Unsupported, lowering, target_name


def _arg(node, index, name, default=None):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _optional_input(ctx, arg) -> int:
    if arg is None:
        return -1
    if not isinstance(arg, torch.fx.Node):
        raise Unsupported(f"expected a tensor or None, got {type(arg).__name__}")
    require_float(ctx.meta(arg), "norm weight/bias")
    return ctx.input(arg)


# ---- softmax -------------------------------------------------------------------------------------

@lowering("aten.softmax.int", "aten._softmax.default", "aten.log_softmax.int", "aten._log_softmax.default")
def softmax(ctx, node):
    """softmax.int's dtype= and _softmax's half_to_float both only widen the output; the kernel
    reads x exactly and computes wide, so only a narrowing output differs from torch."""
    x = ctx.meta(node.args[0])
    require_float(x, "softmax")
    out_dtype = node.meta["val"].dtype
    if out_dtype != x.dtype and out_dtype != torch.float32:
        raise Unsupported(f"softmax of {x.dtype} into {out_dtype}")
    dim = normalize_dim(node.args[1], x.dim())
    log = "log_softmax" in target_name(node.target)
    ctx.emit("Softmax", x=ctx.input(node.args[0]), out=ctx.output(node), dim=dim, log=log)


# ---- layer norm ----------------------------------------------------------------------------------

def _emit_layer_norm(ctx, node, out: int, eps) -> None:
    x = ctx.meta(node.args[0])
    require_float(x, "layer_norm")
    normalized_shape = list(node.args[1])
    if not 1 <= len(normalized_shape) <= x.dim():
        raise Unsupported(f"layer_norm over {len(normalized_shape)} dims of a rank-{x.dim()} tensor")
    weight = _optional_input(ctx, _arg(node, 2, "weight"))
    bias = _optional_input(ctx, _arg(node, 3, "bias"))
    ctx.emit("LayerNorm", x=ctx.input(node.args[0]), weight=weight, bias=bias, out=out, eps=float(eps),
             normalized_ndim=len(normalized_shape))


@lowering("aten.layer_norm.default")
def layer_norm(ctx, node):
    _emit_layer_norm(ctx, node, ctx.output(node), _arg(node, 4, "eps", 1e-5))


@lowering("aten.native_layer_norm.default")
def native_layer_norm(ctx, node):
    """Only the normalized output is produced; the saved mean and rstd (for autograd) are not,
    so a graph that reads them keeps this node off etgpu."""
    out = node.meta["val"][0]
    tid = ctx.new_tensor(out.dtype, out.shape, name=node.name)
    _emit_layer_norm(ctx, node, tid, node.args[4])
    ctx.tuple_values[node] = [tid, None, None]


# ---- RMS norm ------------------------------------------------------------------------------------

@lowering("aten.rms_norm.default")
def rms_norm(ctx, node):
    """torch's rms_norm: fp32 math, one rounding at the end, output in x's dtype; eps=None is
    fp32's machine epsilon (the opmath type's, whatever x's dtype)."""
    x = ctx.meta(node.args[0])
    require_float(x, "rms_norm")
    if len(node.args[1]) != 1:
        raise Unsupported("rms_norm over more than the last dim")
    eps = _arg(node, 3, "eps")
    if eps is None:
        eps = torch.finfo(torch.float32).eps
    weight = _optional_input(ctx, _arg(node, 2, "weight"))
    ctx.emit("RmsNorm", x=ctx.input(node.args[0]), weight=weight, out=ctx.output(node), eps=float(eps),
             unit_offset=False, round_normalized=False)


@lowering("etgpu.rms_norm.default")
def etgpu_rms_norm(ctx, node):
    """The fused op the RMSNorm pattern pass writes (etgpu.lower.passes.rms_norm): its arguments
    are the IR fields."""
    x, weight, eps, unit_offset, round_normalized = node.args
    if ctx.meta(x).dtype not in FLOAT_DTYPES:
        raise Unsupported("rms_norm of a non-float tensor")
    ctx.emit("RmsNorm", x=ctx.input(x), weight=_optional_input(ctx, weight), out=ctx.output(node),
             eps=float(eps), unit_offset=bool(unit_offset), round_normalized=bool(round_normalized))


@lowering("etgpu.add_rms_norm.default")
def etgpu_add_rms_norm(ctx, node):
    """The residual add + RMSNorm pair (etgpu.lower.passes.rms_norm.fuse_add_rms_norm): one
    instruction writing two tensors, the node's (sum, normed) tuple; getitem reads them."""
    x, residual, weight, eps, unit_offset, round_normalized = node.args
    total, normed = node.meta["val"]
    if total.dtype not in FLOAT_DTYPES:
        raise Unsupported("add_rms_norm of a non-float tensor")
    sum_id = ctx.new_tensor(total.dtype, total.shape, name=f"{node.name}_sum")
    out_id = ctx.new_tensor(normed.dtype, normed.shape, name=node.name)
    ctx.emit("AddRmsNorm", x=ctx.input(x), residual=ctx.input(residual), weight=_optional_input(ctx, weight),
             sum=sum_id, out=out_id, eps=float(eps), unit_offset=bool(unit_offset),
             round_normalized=bool(round_normalized))
    ctx.tuple_values[node] = [sum_id, out_id]
