"""Lowering of the fused ops the pattern passes write (etgpu.lower.passes.fuse_llm): their
arguments are the IR fields."""

from etgpu.ir.UnaryOp import UnaryOp
from etgpu.lower.ops._util import normalize_dim
from etgpu.lower.ops.state import write_destination
from etgpu.lower.registry import lowering

GLU_ACTS = {"silu": UnaryOp.Silu, "gelu": UnaryOp.GeluErf, "gelu_tanh": UnaryOp.GeluTanh}


@lowering("etgpu.rope.default")
def rope(ctx, node):
    x, cos, sin, x_seq_major = node.args
    ctx.emit("Rope", x=ctx.input(x), cos=ctx.input(cos), sin=ctx.input(sin), out=ctx.output(node),
             x_seq_major=bool(x_seq_major))


@lowering("etgpu.rope_index_copy.default")
def rope_index_copy(ctx, node):
    """A Rope whose rotated rows go straight into the KV cache (fuse_rope_cache_writes): the
    cache is written in place exactly when the index_copy it replaces would be (state.py)."""
    cache_node, dim, index, x, cos, sin, x_seq_major = node.args
    fields = dict(x=ctx.input(x), cos=ctx.input(cos), sin=ctx.input(sin), index=ctx.input(index),
                  cache_dim=normalize_dim(dim, ctx.meta(cache_node).dim()), x_seq_major=bool(x_seq_major), out=-1)
    ctx.emit("Rope", cache=write_destination(ctx, cache_node, node), **fields)


@lowering("etgpu.glu.default")
def glu(ctx, node):
    a, b, act = node.args
    ctx.emit("Glu", a=ctx.input(a), b=ctx.input(b), act=GLU_ACTS[act], out=ctx.output(node))
