"""Lowering of the fused ops the pattern passes write (etgpu.lower.passes.fuse_llm): their
arguments are the IR fields."""

from etgpu.ir.UnaryOp import UnaryOp
from etgpu.lower.registry import lowering

_ACTS = {"silu": UnaryOp.Silu, "gelu": UnaryOp.GeluErf, "gelu_tanh": UnaryOp.GeluTanh}


@lowering("etgpu.rope.default")
def rope(ctx, node):
    x, cos, sin, x_seq_major = node.args
    ctx.emit("Rope", x=ctx.input(x), cos=ctx.input(cos), sin=ctx.input(sin), out=ctx.output(node),
             x_seq_major=bool(x_seq_major))


@lowering("etgpu.glu.default")
def glu(ctx, node):
    a, b, act = node.args
    ctx.emit("Glu", a=ctx.input(a), b=ctx.input(b), act=_ACTS[act], out=ctx.output(node))
