"""Elementwise ops: unary math and activations, binary arithmetic and comparisons (broadcasting,
tensor or scalar operands), where, casts, full/zeros/ones, arange."""

import torch

from etgpu.ir.BinaryOp import BinaryOp
from etgpu.ir.UnaryOp import UnaryOp
from etgpu.lower.registry import Unsupported, lowering, target_name

# ---- unary ---------------------------------------------------------------------------------------

_UNARY = {
    "aten.neg.default": UnaryOp.Neg, "aten.abs.default": UnaryOp.Abs, "aten.sqrt.default": UnaryOp.Sqrt,
    "aten.rsqrt.default": UnaryOp.Rsqrt, "aten.exp.default": UnaryOp.Exp, "aten.log.default": UnaryOp.Log,
    "aten.relu.default": UnaryOp.Relu, "aten.silu.default": UnaryOp.Silu,
    "aten.sigmoid.default": UnaryOp.Sigmoid, "aten.tanh.default": UnaryOp.Tanh,
    "aten.logical_not.default": UnaryOp.LogicalNot, "aten.sin.default": UnaryOp.Sin,
    "aten.cos.default": UnaryOp.Cos, "aten.reciprocal.default": UnaryOp.Reciprocal,
    "aten.erf.default": UnaryOp.Erf, "aten.floor.default": UnaryOp.Floor, "aten.ceil.default": UnaryOp.Ceil,
    "aten.round.default": UnaryOp.Round, "aten.log1p.default": UnaryOp.Log1p,
    "aten.expm1.default": UnaryOp.Expm1, "aten.sign.default": UnaryOp.Sign, "aten.trunc.default": UnaryOp.Trunc,
    "aten.bitwise_not.default": UnaryOp.BitwiseNot, "aten.isnan.default": UnaryOp.IsNan,
    "aten.hardsigmoid.default": UnaryOp.HardSigmoid,
    "aten.hardswish.default": UnaryOp.HardSwish,
}


def _emit_unary(ctx, node, op, alpha=0.0, beta=0.0):
    x = ctx.input(node.args[0])
    out = ctx.output(node)
    ctx.emit("Unary", op=op, x=x, out=out, alpha=float(alpha), beta=float(beta))


@lowering(*_UNARY)
def unary(ctx, node):
    _emit_unary(ctx, node, _UNARY[target_name(node.target)])


@lowering("aten.gelu.default")
def gelu(ctx, node):
    approximate = node.kwargs.get("approximate", node.args[1] if len(node.args) > 1 else "none")
    if approximate not in ("none", "tanh"):
        raise Unsupported(f"gelu approximate={approximate!r}")
    _emit_unary(ctx, node, UnaryOp.GeluTanh if approximate == "tanh" else UnaryOp.GeluErf)


@lowering("aten.clamp.default")
def clamp(ctx, node):
    lo = node.args[1] if len(node.args) > 1 else node.kwargs.get("min")
    hi = node.args[2] if len(node.args) > 2 else node.kwargs.get("max")
    if isinstance(lo, torch.fx.Node) or isinstance(hi, torch.fx.Node):
        raise Unsupported("clamp with tensor bounds")
    _emit_unary(ctx, node, UnaryOp.Clamp, -float("inf") if lo is None else lo, float("inf") if hi is None else hi)


@lowering("aten.pow.Tensor_Scalar")
def pow_scalar(ctx, node):
    _emit_unary(ctx, node, UnaryOp.PowScalar, node.args[1])


@lowering("aten.leaky_relu.default")
def leaky_relu(ctx, node):
    _emit_unary(ctx, node, UnaryOp.LeakyRelu, node.args[1] if len(node.args) > 1 else 0.01)


@lowering("aten.elu.default")
def elu(ctx, node):
    if len(node.args) > 2 and (node.args[2] != 1 or (len(node.args) > 3 and node.args[3] != 1)):
        raise Unsupported("elu with scale/input_scale")
    _emit_unary(ctx, node, UnaryOp.Elu, node.args[1] if len(node.args) > 1 else 1.0)


@lowering("aten.softplus.default")
def softplus(ctx, node):
    beta = node.args[1] if len(node.args) > 1 else 1.0
    threshold = node.args[2] if len(node.args) > 2 else 20.0
    _emit_unary(ctx, node, UnaryOp.Softplus, beta, threshold)


# ---- binary --------------------------------------------------------------------------------------

_BINARY = {
    "add": BinaryOp.Add, "sub": BinaryOp.Sub, "mul": BinaryOp.Mul, "div": BinaryOp.Div,
    "pow": BinaryOp.Pow, "maximum": BinaryOp.Maximum, "minimum": BinaryOp.Minimum,
    "eq": BinaryOp.Eq, "ne": BinaryOp.Ne, "lt": BinaryOp.Lt, "le": BinaryOp.Le, "gt": BinaryOp.Gt,
    "ge": BinaryOp.Ge, "logical_and": BinaryOp.LogicalAnd, "logical_or": BinaryOp.LogicalOr,
    "floor_divide": BinaryOp.FloorDiv, "remainder": BinaryOp.Remainder, "bitwise_and": BinaryOp.BitwiseAnd,
    "bitwise_or": BinaryOp.BitwiseOr, "bitwise_xor": BinaryOp.BitwiseXor, "atan2": BinaryOp.Atan2,
}
_BINARY_OVERLOADS = ("Tensor", "Scalar", "default", "Scalar_Tensor", "Tensor_Tensor")


def _binary_names():
    for name in _BINARY:
        for overload in _BINARY_OVERLOADS:
            yield f"aten.{name}.{overload}"
    yield "aten.div.Tensor_mode"
    yield "aten.div.Scalar_mode"


@lowering(*_binary_names())
def binary(ctx, node):
    target = target_name(node.target)
    _, name, overload = target.split(".")
    op = _BINARY[name]
    if overload.endswith("_mode"):
        mode = node.kwargs.get("rounding_mode", node.args[2] if len(node.args) > 2 else None)
        op = {None: BinaryOp.Div, "floor": BinaryOp.FloorDiv, "trunc": BinaryOp.TruncDiv}.get(mode)
        if op is None:
            raise Unsupported(f"div rounding_mode={mode!r}")
    lhs, rhs = node.args[0], node.args[1]
    alpha = node.kwargs.get("alpha", 1)
    if isinstance(alpha, torch.fx.Node):
        raise Unsupported("symbolic alpha")
    fields = dict(op=op, alpha=float(alpha))
    if isinstance(lhs, torch.fx.Node) and isinstance(rhs, torch.fx.Node):
        fields.update(a=ctx.input(lhs), b=ctx.input(rhs))
    elif isinstance(lhs, torch.fx.Node):
        fields.update(a=ctx.input(lhs), scalar=_scalar(rhs))
    elif isinstance(rhs, torch.fx.Node):
        fields.update(a=ctx.input(rhs), scalar=_scalar(lhs), scalar_first=True)
    else:
        raise Unsupported("binary op on two scalars")
    fields["out"] = ctx.output(node)
    ctx.emit("Binary", **fields)


def _scalar(value) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    raise Unsupported(f"scalar operand of type {type(value).__name__}")


@lowering("aten.where.self")
def where(ctx, node):
    cond, a, b = node.args
    value = node.meta["val"]
    operands = [ctx.input(cond)]
    for arg in (a, b):
        operands.append(ctx.input(arg) if isinstance(arg, torch.fx.Node) else ctx.scalar_tensor(arg, value.dtype))
    ctx.emit("Where", cond=operands[0], a=operands[1], b=operands[2], out=ctx.output(node))


@lowering("aten.where.ScalarOther", "aten.where.ScalarSelf", "aten.where.Scalar")
def where_scalar(ctx, node):
    where(ctx, node)


# ---- casts and creation ------------------------------------------------------------------------

@lowering("aten._to_copy.default", "dim_order_ops._to_dim_order_copy.default")
def to_copy(ctx, node):
    x = ctx.input(node.args[0])
    out = ctx.output(node)
    source = ctx.meta(node.args[0])
    if source.dtype == node.meta["val"].dtype:
        ctx.emit("Expand", x=x, out=out)
    else:
        ctx.emit("Cast", x=x, out=out)


@lowering("aten.full.default", "aten.zeros.default", "aten.ones.default", "aten.scalar_tensor.default")
def full(ctx, node):
    name = target_name(node.target).split(".")[1]
    value = {"zeros": 0.0, "ones": 1.0}.get(name)
    if value is None:
        value = node.args[1] if name == "full" else node.args[0]
    if isinstance(value, torch.fx.Node):
        raise Unsupported("fill value from a tensor")
    ctx.emit("Fill", out=ctx.output(node), value=float(value))


@lowering("aten.full_like.default", "aten.zeros_like.default", "aten.ones_like.default")
def full_like(ctx, node):
    name = target_name(node.target).split(".")[1]
    value = {"zeros_like": 0.0, "ones_like": 1.0}.get(name, node.args[1] if len(node.args) > 1 else None)
    if not isinstance(value, (int, float, bool)):
        raise Unsupported("fill value")
    ctx.emit("Fill", out=ctx.output(node), value=float(value))


@lowering("aten.arange.default", "aten.arange.start", "aten.arange.start_step")
def arange(ctx, node):
    args = list(node.args)
    start, step = (0, 1) if len(args) == 1 else (args[0], args[2] if len(args) > 2 else 1)
    if not all(isinstance(v, (int, float)) for v in (start, step)):
        raise Unsupported("arange with symbolic start or step")
    ctx.emit("Arange", out=ctx.output(node), start=float(start), step=float(step))


# ---- graph bookkeeping nodes that compute nothing --------------------------------------------

@lowering("aten._assert_tensor_metadata.default", "aten._assert_scalar.default", "aten.sym_size.int",
          "aten.sym_constrain_range_for_size.default", "aten.sym_constrain_range.default",
          "aten._assert_async.msg")
def no_op(ctx, node):
    """Export-time checks and symbolic sizes: etgpu checks shapes itself, and rules read sizes
    from node metadata, so these produce no instruction (and no tensor value)."""
