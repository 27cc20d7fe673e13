"""Attention: aten.scaled_dot_product_attention -> one Sdpa instruction.

The IR's causal flag is aligned at the bottom right (query i sees keys j <= i + S - L, what a KV
cache step needs); torch's is_causal is aligned at the top left (j <= i). They agree when L == S,
so the rule sets the flag only when L and S are the same (static or symbolic) size; otherwise it
builds torch's top-left mask from two aranges and a comparison and passes it as a bool mask.

SDPA arrives whole: it is in etgpu.decompositions.PRESERVED_OPS, so run_decompositions keeps it
(checked with torch 2.13), and grouped-query attention with enable_gqa=True runs natively (query
head h reads kv head h // (H / Hkv)). HF-style GQA that repeats k/v before SDPA lowers too, as
ordinary data movement.

etgpu.seq_major_sdpa (passes/seq_major.py: SDPA whose result is read only through its head
transpose) lowers the same way, with the Sdpa's out_seq_major set."""

import torch

from etgpu.ir.BinaryOp import BinaryOp
from etgpu.lower.ops._util import require_float
from etgpu.lower.ops.index import view_as_shape
from etgpu.lower.registry import Unsupported, lowering


def _arg(node, index: int, name: str, default):
    if len(node.args) > index:
        return node.args[index]
    return node.kwargs.get(name, default)


def _as_4d(ctx, arg, name: str) -> int:
    """q/k/v/out as [B, H, L, E]: rank 3 gets a leading 1 (a view; no copy)."""
    value = ctx.meta(arg)
    tid = ctx.input(arg)
    if value.dim() == 4:
        return tid
    if value.dim() == 3:
        return view_as_shape(ctx, tid, [1, *value.shape], name)
    raise Unsupported(f"scaled_dot_product_attention with rank-{value.dim()} operands (etgpu takes 3 or 4)")


def _top_left_causal_mask(ctx, queries, keys, name: str) -> int:
    """Bool [L, S] with mask[i, j] = j <= i (torch's is_causal), for any L and S."""
    rows = ctx.new_tensor(torch.int64, [queries, 1], f"{name}_rows")
    cols = ctx.new_tensor(torch.int64, [keys], f"{name}_cols")
    mask = ctx.new_tensor(torch.bool, [queries, keys], f"{name}_causal")
    ctx.emit("Arange", out=rows, start=0.0, step=1.0)
    ctx.emit("Arange", out=cols, start=0.0, step=1.0)
    ctx.emit("Binary", op=BinaryOp.Le, a=cols, b=rows, out=mask)
    return mask


@lowering("aten.scaled_dot_product_attention.default")
def sdpa(ctx, node):
    _emit_sdpa(ctx, node, out_seq_major=False)


@lowering("etgpu.seq_major_sdpa.default")
def seq_major_sdpa(ctx, node):
    """SDPA whose output transpose the seq_major pass absorbed (same arguments): out is
    [B, L, H, Ev]. The pass only matches 4-d operands."""
    _emit_sdpa(ctx, node, out_seq_major=True)


def _emit_sdpa(ctx, node, out_seq_major: bool):
    q, k, v = node.args[:3]
    attn_mask = _arg(node, 3, "attn_mask", None)
    dropout_p = _arg(node, 4, "dropout_p", 0.0)
    is_causal = _arg(node, 5, "is_causal", False)
    scale = _arg(node, 6, "scale", None)
    enable_gqa = _arg(node, 7, "enable_gqa", False)
    if dropout_p != 0:
        raise Unsupported(f"scaled_dot_product_attention with dropout_p={dropout_p}")
    if not isinstance(scale, (int, float, type(None))) or scale == 0:
        raise Unsupported(f"scaled_dot_product_attention scale={scale!r}")
    qv, kv, vv = (ctx.meta(a) for a in (q, k, v))
    require_float(qv, "scaled_dot_product_attention")
    if not qv.dim() == kv.dim() == vv.dim():
        raise Unsupported("scaled_dot_product_attention with operands of different ranks")
    if qv.dim() == 4 and qv.shape[1] != kv.shape[1] and not enable_gqa:
        raise Unsupported("query and key heads differ without enable_gqa")
    queries, keys = qv.shape[-2], kv.shape[-2]

    fields = dict(q=_as_4d(ctx, q, f"{node.name}_q"), k=_as_4d(ctx, k, f"{node.name}_k"),
                  v=_as_4d(ctx, v, f"{node.name}_v"), scale=float(scale or 0.0))
    if attn_mask is not None:
        mask_val = ctx.meta(attn_mask)
        if mask_val.dtype != torch.bool and mask_val.dtype != qv.dtype:
            raise Unsupported(f"attn_mask of dtype {mask_val.dtype} with {qv.dtype} queries")
        fields["mask"] = ctx.input(attn_mask)
    if is_causal:
        if attn_mask is not None:
            raise Unsupported("attn_mask together with is_causal")  # torch rejects it too
        if ctx.dim(queries) == ctx.dim(keys):
            fields["causal"] = True
        else:
            fields["mask"] = _top_left_causal_mask(ctx, queries, keys, node.name)

    out = ctx.output(node)
    if qv.dim() == 3:
        out = view_as_shape(ctx, out, [1, *node.meta["val"].shape], f"{node.name}_out")
    ctx.emit("Sdpa", out=out, out_seq_major=out_seq_major, **fields)
