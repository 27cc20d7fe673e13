"""Lowering of the fused ops the pattern passes write (etgpu.lower.passes.fuse_llm): their
arguments are the IR fields."""

from etgpu.ir.RopeNorm import RopeNormT
from etgpu.ir.UnaryOp import UnaryOp
from etgpu.lower.ops._util import normalize_dim
from etgpu.lower.ops.state import write_destination
from etgpu.lower.registry import lowering

GLU_ACTS = {"silu": UnaryOp.Silu, "gelu": UnaryOp.GeluErf, "gelu_tanh": UnaryOp.GeluTanh}


def _rope_fields(ctx, x, cos, sin, x_seq_major, norm, weight, eps, unit_offset, round_normalized) -> dict:
    """The fields etgpu::rope's arguments give every Rope; a norm (fuse_rope_norms) is a RopeNorm."""
    fields = dict(x=ctx.input(x), cos=ctx.input(cos), sin=ctx.input(sin), x_seq_major=bool(x_seq_major))
    if norm:
        table = RopeNormT()
        table.weight = -1 if weight is None else ctx.input(weight)
        table.eps, table.unitOffset, table.roundNormalized = float(eps), bool(unit_offset), bool(round_normalized)
        fields["norm"] = table
    return fields


@lowering("etgpu.rope.default")
def rope(ctx, node):
    ctx.emit("Rope", out=ctx.output(node), **_rope_fields(ctx, *node.args))


@lowering("etgpu.rope_index_copy.default")
def rope_index_copy(ctx, node):
    """A Rope whose rotated rows go straight into the KV cache (fuse_rope_cache_writes): the
    cache is written in place exactly when the index_copy it replaces would be (state.py)."""
    cache_node, dim, index = node.args[:3]
    fields = dict(index=ctx.input(index), cache_dim=normalize_dim(dim, ctx.meta(cache_node).dim()), out=-1,
                  **_rope_fields(ctx, *node.args[3:]))
    ctx.emit("Rope", cache=write_destination(ctx, cache_node, node), **fields)


@lowering("etgpu.glu.default")
def glu(ctx, node):
    a, b, act = node.args
    ctx.emit("Glu", a=ctx.input(a), b=ctx.input(b), act=GLU_ACTS[act], out=ctx.output(node))
