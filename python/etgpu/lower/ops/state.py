"""Writes into state: index_copy (KV-cache updates, the seq_major pass's value writes too). When the destination is a delegate-held
mutable buffer that nothing else reads, the write happens in place: the cache is never copied."""

import torch

from etgpu.lower.context import Storage
from etgpu.lower.ops._util import normalize_dim
from etgpu.lower.registry import lowering


def writes_in_place(ctx, dst_node, write_node) -> bool:
    """In place is exact only when no instruction reads the old contents after the write: every
    other reader of the buffer (a ring cache's read of its previous window) was lowered before
    it, into storage of its own (a view would be read later, through the buffer)."""
    tid = ctx.input(dst_node)
    if ctx.tensors[tid].storage != Storage.MUTABLE:
        return False
    readers = [user for user in dst_node.users if user is not write_node]
    return all(ctx.has_value(user) and ctx.tensors[ctx.input(user)].storage != Storage.ALIAS for user in readers)


def write_destination(ctx, dst_node, node):
    """Where `node`'s write into `dst_node` goes: the state tensor itself when it may be written
    in place (writes_in_place; `node` then names it), else a copy of it (Expand) that `node` names."""
    if writes_in_place(ctx, dst_node, node):
        dst = ctx.input(dst_node)
        ctx.bind(node, dst)
        return dst
    dst = ctx.output(node)
    ctx.emit("Expand", x=ctx.input(dst_node), out=dst)
    return dst


@lowering("aten.index_copy.default")
def index_copy(ctx, node):
    _emit_index_copy(ctx, node, x_seq_major=False)


@lowering("etgpu.seq_major_index_copy.default")
def seq_major_index_copy(ctx, node):
    """The value write whose head transpose the seq_major pass absorbed: x is [B, L, H, D]."""
    _emit_index_copy(ctx, node, x_seq_major=True)


def _emit_index_copy(ctx, node, x_seq_major: bool):
    dst_node, dim, index, source = node.args[:4]
    rank = ctx.meta(dst_node).dim()
    fields = dict(index=ctx.input(index), x=ctx.input(source), dim=normalize_dim(dim, rank), x_seq_major=x_seq_major)
    ctx.emit("IndexCopy", dst=write_destination(ctx, dst_node, node), **fields)
