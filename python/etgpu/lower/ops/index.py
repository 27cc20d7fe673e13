"""Indexed reads: index_select, embedding, gather, and x[idx] / x[:, idx] (aten.index.Tensor with
one index tensor) -> one IndexSelect or Gather instruction each. Index values are range-checked
by the engine at run time (a bad index is an error, never an out-of-bounds read)."""

import torch

from etgpu.lower.context import Storage, TensorSpec
from etgpu.lower.ops import quant
from etgpu.lower.ops._util import normalize_dim
from etgpu.lower.registry import Unsupported, lowering

_INDEX_DTYPES = (torch.int64, torch.int32)


def _require_index(value, what: str) -> None:
    if not isinstance(value, torch.Tensor) or value.dtype not in _INDEX_DTYPES:
        dtype = getattr(value, "dtype", type(value).__name__)
        raise Unsupported(f"{what}: index must be an int64 or int32 tensor, got {dtype}")


def view_as_shape(ctx, tid: int, shape, name: str) -> int:
    """A tensor sharing `tid`'s bytes with another (same-numel) shape; for operands a rule
    reshapes itself, where ctx.alias (which needs an FX node) does not apply."""
    base = ctx.tensors[tid]
    root = base.alias_of if base.storage == Storage.ALIAS else tid
    dims = [ctx.dim(s) for s in shape]
    return ctx.add_tensor(TensorSpec(name, base.dtype, dims, storage=Storage.ALIAS, alias_of=root))


def _emit_index_select(ctx, node, x, dim: int, index) -> None:
    x_val, index_val = ctx.meta(x), ctx.meta(index)
    _require_index(index_val, "index_select")
    if not isinstance(x_val, torch.Tensor) or x_val.dim() == 0:
        raise Unsupported("index_select on a 0-d tensor")
    dim = normalize_dim(dim, x_val.dim())
    index_id = ctx.input(index)
    if index_val.dim() == 0 and node.meta["val"].dim() == x_val.dim():
        # index_select keeps the dim for a 0-d index: the same as a 1-element index.
        index_id = view_as_shape(ctx, index_id, [1], f"{node.name}_index")
    ctx.emit("IndexSelect", x=ctx.input(x), index=index_id, out=ctx.output(node), dim=dim)


@lowering("aten.index_select.default")
def index_select(ctx, node):
    x, dim, index = node.args[:3]
    _emit_index_select(ctx, node, x, dim, index)


@lowering("aten.embedding.default")
def embedding(ctx, node):
    # padding_idx, scale_grad_by_freq and sparse only change the backward pass.
    weight, indices = node.args[:2]
    quantized = quant.quantized_weight_of(ctx, weight)
    if quantized is not None:
        return quant.lower_embedding(ctx, node, quantized)
    if ctx.meta(weight).dim() != 2:
        raise Unsupported("embedding weight must be 2-d")
    _emit_index_select(ctx, node, weight, 0, indices)


@lowering("aten.index.Tensor")
def index_tensor(ctx, node):
    """x[idx], x[:, idx], ...: one index tensor after only full slices is an index_select along
    that dim (out = x.shape[:d] + idx.shape + x.shape[d+1:], as advanced indexing gives)."""
    x, indices = node.args[:2]
    present = [i for i, index in enumerate(indices) if index is not None]
    if len(present) != 1:
        raise Unsupported(f"aten.index with {len(present)} index tensors (etgpu handles one)")
    dim = present[0]
    index = indices[dim]
    if ctx.meta(index).dtype not in _INDEX_DTYPES:
        raise Unsupported(f"aten.index with a {ctx.meta(index).dtype} index (boolean masks are not supported)")
    _emit_index_select(ctx, node, x, dim, index)


@lowering("aten.gather.default")
def gather(ctx, node):
    x, dim, index = node.args[:3]
    x_val, index_val = ctx.meta(x), ctx.meta(index)
    _require_index(index_val, "gather")
    if x_val.dim() == 0 or index_val.dim() != x_val.dim():
        raise Unsupported("gather needs index of the same rank as the input (rank >= 1)")
    dim = normalize_dim(dim, x_val.dim())
    ctx.emit("Gather", x=ctx.input(x), index=ctx.input(index), out=ctx.output(node), dim=dim)
