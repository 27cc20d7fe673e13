"""Shape and data movement: views that share bytes (view, reshape, squeeze, unsqueeze, flatten,
alias) and strided copies (permute, transpose, expand, slice, select, cat, clone)."""

import torch

from etgpu.lower.ops._util import normalize_dim
from etgpu.lower.registry import Unsupported, lowering


@lowering("aten.view.default", "aten.reshape.default", "aten._unsafe_view.default",
          "aten.squeeze.dim", "aten.squeeze.dims", "aten.squeeze.default", "aten.unsqueeze.default",
          "aten.flatten.using_ints", "aten.alias.default", "aten.view_copy.default",
          "aten.squeeze_copy.dims", "aten.squeeze_copy.dim", "aten.unsqueeze_copy.default",
          "aten.alias_copy.default")
def view(ctx, node):
    # Every etgpu tensor is contiguous, so a reshape is a new shape over the same bytes.
    ctx.alias(node, of=ctx.input(node.args[0]))


@lowering("aten.clone.default", "aten.contiguous.default", "dim_order_ops._clone_dim_order.default")
def clone(ctx, node):
    ctx.emit("Expand", x=ctx.input(node.args[0]), out=ctx.output(node))


@lowering("aten.permute.default", "aten.permute_copy.default")
def permute(ctx, node):
    rank = ctx.meta(node.args[0]).dim()
    perm = [normalize_dim(d, rank) for d in node.args[1]]
    ctx.emit("Permute", x=ctx.input(node.args[0]), out=ctx.output(node), perm=perm)


@lowering("aten.transpose.int", "aten.transpose_copy.int")
def transpose(ctx, node):
    rank = ctx.meta(node.args[0]).dim()
    a, b = normalize_dim(node.args[1], rank), normalize_dim(node.args[2], rank)
    perm = list(range(rank))
    perm[a], perm[b] = perm[b], perm[a]
    ctx.emit("Permute", x=ctx.input(node.args[0]), out=ctx.output(node), perm=perm)


@lowering("aten.t.default", "aten.t_copy.default")
def t(ctx, node):
    rank = ctx.meta(node.args[0]).dim()
    ctx.emit("Permute", x=ctx.input(node.args[0]), out=ctx.output(node), perm=list(range(rank))[::-1])


@lowering("aten.expand.default", "aten.expand_copy.default")
def expand(ctx, node):
    ctx.emit("Expand", x=ctx.input(node.args[0]), out=ctx.output(node))


@lowering("aten.slice.Tensor", "aten.slice_copy.Tensor")
def slice_(ctx, node):
    x = node.args[0]
    rank = ctx.meta(x).dim()
    dim = normalize_dim(node.args[1] if len(node.args) > 1 else 0, rank)
    start = node.args[2] if len(node.args) > 2 else 0
    step = node.args[4] if len(node.args) > 4 else 1
    if start is None:
        start = 0
    if not isinstance(step, int) or step < 1:
        raise Unsupported("slice step must be a positive int")
    size = ctx.meta(x).shape[dim]
    if isinstance(start, int) and start < 0:
        start = start + size if not isinstance(size, int) else max(start + size, 0)
    if isinstance(start, int) and isinstance(size, int):
        start = min(start, size)
    ctx.emit("Slice", x=ctx.input(x), out=ctx.output(node), dim=dim, start=ctx.dim(start), step=step)


@lowering("aten.select.int", "aten.select_copy.int")
def select(ctx, node):
    x, dim, index = node.args[:3]
    rank = ctx.meta(x).dim()
    dim = normalize_dim(dim, rank)
    if isinstance(index, int) and index < 0:
        index = index + ctx.meta(x).shape[dim]
    ctx.emit("Select", x=ctx.input(x), out=ctx.output(node), dim=normalize_dim(dim, rank), index=ctx.dim(index))


@lowering("aten.cat.default", "aten.concat.default")
def cat(ctx, node):
    tensors = [t for t in node.args[0] if ctx.meta(t).numel() != 0 or ctx.meta(t).dim() != 1]
    rank = node.meta["val"].dim()
    dim = normalize_dim(node.args[1] if len(node.args) > 1 else 0, rank)
    ctx.emit("Cat", inputs=[ctx.input(t) for t in tensors], out=ctx.output(node), dim=dim)


@lowering("aten.split_with_sizes.default", "aten.split.Tensor", "aten.split_with_sizes_copy.default",
          "aten.split_copy.Tensor")
def split(ctx, node):
    """split / chunk (which export leaves as split_with_sizes): one Slice per piece, each piece a
    tuple element that getitem nodes pick up."""
    x = node.args[0]
    rank = ctx.meta(x).dim()
    dim = normalize_dim(node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0), rank)
    pieces = node.meta["val"]
    source = ctx.input(x)
    outputs, start = [], 0
    for i, piece in enumerate(pieces):
        out = ctx.new_tensor(piece.dtype, list(piece.shape), name=f"{node.name}_{i}")
        ctx.emit("Slice", x=source, out=out, dim=dim, start=ctx.dim(start), step=1)
        outputs.append(out)
        start = start + piece.shape[dim]
    ctx.tuple_values[node] = outputs
