"""Reductions: sum, mean, prod, amax/amin (and max/min over all dims), max/min along a dim with
their indices, argmax/argmin, any/all: one Reduce instruction each (two for max.dim/min.dim);
var/var_mean as a short two-pass sequence."""

import torch

from etgpu.dtypes import FLOAT_DTYPES
from etgpu.ir.BinaryOp import BinaryOp
from etgpu.ir.ReduceOp import ReduceOp
from etgpu.ir.UnaryOp import UnaryOp
from etgpu.lower.ops._util import normalize_dim
from etgpu.lower.registry import Unsupported, lowering, target_name


def _arg(node, index, name, default=None):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _dims(node, x, index=1, name="dim"):
    """The reduced dims, normalized; [] means every dim (torch's None, [] and omitted alike)."""
    dims = _arg(node, index, name)
    if dims is None:
        return []
    if isinstance(dims, int):
        dims = [dims]
    rank = x.dim()
    return sorted({normalize_dim(d, rank) for d in dims}) if rank else []


def _check_dtypes(x: torch.Tensor, out: torch.Tensor) -> None:
    """The kernel reads x exactly and accumulates wide, so it matches torch only where torch does
    not first cast x to a narrower type: float -> same or wider float, integer/bool -> int64 (or a
    float, as torch's dtype= argument asks)."""
    if x.dtype in FLOAT_DTYPES:
        widening = out.dtype == x.dtype or out.dtype == torch.float32
        if not widening:
            raise Unsupported(f"reduction of {x.dtype} into {out.dtype}")
    elif out.dtype not in FLOAT_DTYPES and out.dtype != torch.int64:
        raise Unsupported(f"integer reduction of {x.dtype} into {out.dtype}")


def _emit(ctx, node, op, dims, keepdim):
    ctx.emit("Reduce", op=op, x=ctx.input(node.args[0]), out=ctx.output(node), dims=dims, keepdim=bool(keepdim))


@lowering("aten.sum.dim_IntList", "aten.sum.default", "aten.prod.dim_int", "aten.prod.default",
          "aten.mean.dim", "aten.mean.default")
def sum_prod_mean(ctx, node):
    name, overload = target_name(node.target).split(".")[1:]
    x = ctx.meta(node.args[0])
    op = {"sum": ReduceOp.Sum, "prod": ReduceOp.Prod, "mean": ReduceOp.Mean}[name]
    if op == ReduceOp.Mean and x.dtype not in FLOAT_DTYPES:
        raise Unsupported(f"mean of {x.dtype}")
    _check_dtypes(x, node.meta["val"])
    if overload == "default":
        _emit(ctx, node, op, [], False)
    else:
        _emit(ctx, node, op, _dims(node, x), _arg(node, 2, "keepdim", False))


_OVER_DIMS = {"aten.amax.default": ReduceOp.Amax, "aten.amin.default": ReduceOp.Amin,
              "aten.argmax.default": ReduceOp.Argmax, "aten.argmin.default": ReduceOp.Argmin}


@lowering(*_OVER_DIMS)
def extreme_over_dims(ctx, node):
    """amax / amin / argmax / argmin: (x, dim, keepdim), every dim when dim is absent."""
    _emit(ctx, node, _OVER_DIMS[target_name(node.target)], _dims(node, ctx.meta(node.args[0])),
          _arg(node, 2, "keepdim", False))


@lowering("aten.max.default", "aten.min.default")
def max_min_all(ctx, node):
    _emit(ctx, node, ReduceOp.Amax if target_name(node.target) == "aten.max.default" else ReduceOp.Amin, [], False)




@lowering("aten.max.dim", "aten.min.dim")
def max_min_dim(ctx, node):
    """(values, indices): an Amax/Amin and an Argmax/Argmin over the same dim. Both treat NaN as
    the extreme and take the first one, so the index always points at the value."""
    is_max = target_name(node.target) == "aten.max.dim"
    x = ctx.meta(node.args[0])
    dims = _dims(node, x)
    keepdim = bool(_arg(node, 2, "keepdim", False))
    values, indices = node.meta["val"]
    src = ctx.input(node.args[0])
    out_values = ctx.new_tensor(values.dtype, values.shape, name=f"{node.name}_values")
    out_indices = ctx.new_tensor(indices.dtype, indices.shape, name=f"{node.name}_indices")
    ctx.emit("Reduce", op=ReduceOp.Amax if is_max else ReduceOp.Amin, x=src, out=out_values, dims=dims,
             keepdim=keepdim)
    ctx.emit("Reduce", op=ReduceOp.Argmax if is_max else ReduceOp.Argmin, x=src, out=out_indices, dims=dims,
             keepdim=keepdim)
    ctx.tuple_values[node] = [out_values, out_indices]


@lowering("aten.any.default", "aten.any.dim", "aten.any.dims", "aten.all.default", "aten.all.dim", "aten.all.dims")
def any_all(ctx, node):
    name, overload = target_name(node.target).split(".")[1:]
    op = ReduceOp.Any if name == "any" else ReduceOp.All
    x = ctx.meta(node.args[0])
    if overload == "default":
        dims, keepdim = [], False
    else:
        dims, keepdim = _dims(node, x), _arg(node, 2, "keepdim", False)
    # Output is bool (uint8 for uint8 input, as torch keeps it); the kernel stores 0/1 either way.
    ctx.emit("Reduce", op=op, x=ctx.input(node.args[0]), out=ctx.output(node), dims=dims, keepdim=bool(keepdim))


@lowering("aten.var.correction", "aten.var_mean.correction")
def var(ctx, node):
    """Two-pass variance in fp32 scratch (torch accumulates half types in fp32 too):
    mean (keepdim) -> x - mean -> square -> sum -> times 1 / (N - correction). std exports as
    var followed by sqrt. var_mean also yields the mean, in x's dtype."""
    src = node.args[0]
    x = ctx.meta(src)
    if x.dtype not in FLOAT_DTYPES:
        raise Unsupported(f"var of {x.dtype}")
    dims = _dims(node, x)
    reduced = dims or list(range(x.dim()))
    count = 1
    for d in reduced:
        if not isinstance(x.shape[d], int):
            raise Unsupported("var over a dynamic dim (the divisor must be a constant)")
        count *= x.shape[d]
    correction = node.kwargs.get("correction")
    correction = 1 if correction is None else correction
    if not isinstance(correction, (int, float)) or count - correction <= 0:
        raise Unsupported(f"var with correction {correction!r} over {count} elements")
    keepdim = bool(node.kwargs.get("keepdim", False))
    is_var_mean = target_name(node.target) == "aten.var_mean.correction"
    out_val = node.meta["val"][0] if is_var_mean else node.meta["val"]

    x_id = ctx.input(src)
    kept_shape = [1 if d in reduced else s for d, s in enumerate(x.shape)]
    mean = ctx.new_tensor(torch.float32, kept_shape, name=f"{node.name}_mean")
    centered = ctx.new_tensor(torch.float32, x.shape, name=f"{node.name}_centered")
    squared = ctx.new_tensor(torch.float32, x.shape, name=f"{node.name}_squared")
    total = ctx.new_tensor(torch.float32, out_val.shape, name=f"{node.name}_sum")
    ctx.emit("Reduce", op=ReduceOp.Mean, x=x_id, out=mean, dims=dims, keepdim=True)
    ctx.emit("Binary", op=BinaryOp.Sub, a=x_id, b=mean, out=centered)
    ctx.emit("Unary", op=UnaryOp.Square, x=centered, out=squared)
    ctx.emit("Reduce", op=ReduceOp.Sum, x=squared, out=total, dims=dims, keepdim=keepdim)
    scale = 1.0 / (count - correction)
    if not is_var_mean:
        ctx.emit("Binary", op=BinaryOp.Mul, a=total, scalar=scale, out=ctx.output(node))
        return
    mean_val = node.meta["val"][1]
    out_var = ctx.new_tensor(out_val.dtype, out_val.shape, name=f"{node.name}_var")
    out_mean = ctx.new_tensor(mean_val.dtype, mean_val.shape, name=f"{node.name}_mean_out")
    ctx.emit("Binary", op=BinaryOp.Mul, a=total, scalar=scale, out=out_var)
    ctx.emit("Reduce", op=ReduceOp.Mean, x=x_id, out=out_mean, dims=dims, keepdim=keepdim)
    ctx.tuple_values[node] = [out_var, out_mean]
