"""Writes into state: index_copy (KV-cache updates). When the destination is a delegate-held
mutable buffer that nothing else reads, the write happens in place: the cache is never copied."""

import torch

from etgpu.lower.context import Storage
from etgpu.lower.ops._util import normalize_dim
from etgpu.lower.registry import lowering


def _writes_in_place(ctx, dst_node) -> bool:
    """In place is exact only when this write is the buffer's sole consumer (so no instruction
    reads the old contents afterwards)."""
    tid = ctx.input(dst_node)
    return ctx.tensors[tid].storage == Storage.MUTABLE and len(dst_node.users) == 1


@lowering("aten.index_copy.default")
def index_copy(ctx, node):
    dst_node, dim, index, source = node.args[:4]
    rank = ctx.meta(dst_node).dim()
    fields = dict(index=ctx.input(index), x=ctx.input(source), dim=normalize_dim(dim, rank))
    if _writes_in_place(ctx, dst_node):
        dst = ctx.input(dst_node)
        ctx.bind(node, dst)
    else:
        dst = ctx.output(node)
        ctx.emit("Expand", x=ctx.input(dst_node), out=dst)
    ctx.emit("IndexCopy", dst=dst, **fields)
