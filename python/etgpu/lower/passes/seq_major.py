"""Absorbs the two head transposes every decoder layer still copies around attention into the
instructions beside them (each transpose is otherwise a Permute: one more launch per layer and step):

  KV write  cache.index_copy(2, pos, v.transpose(1, 2))  -> etgpu::seq_major_index_copy
            (IndexCopy with x_seq_major: v stays [B, L, Hkv, D], as its projection's view made it)
  output    sdpa(q, k, v).transpose(1, 2)                -> etgpu::seq_major_sdpa
            (Sdpa with out_seq_major: every output row is stored at its [B, L, H, Ev] place; the
            reshape to [B, L, H * Ev] before the output projection is then a view, as every
            etgpu tensor is contiguous)

Only where the transpose is transformers' transpose(1, 2) of a 4-d tensor and the only reader of
what it transposes (the value for the write, the attention's result for the output), so no other
reader needs the other layout. A ring (sliding-window) layer's values are also read by the cat of
the old window, so their write keeps its Permute and IndexCopy."""

from typing import Optional

import torch
import torch.fx

from etgpu.lower.passes._fx import dtype_of, erase_chain, is_head_transpose, op_name, users

F = torch.nn.functional


@torch.library.custom_op("etgpu::seq_major_index_copy", mutates_args=())
def seq_major_index_copy(cache: torch.Tensor, dim: int, index: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Reference semantics of IndexCopy with x_seq_major: x [B, L, H, D] written as its transpose."""
    return cache.index_copy(dim, index, x.transpose(1, 2))


@seq_major_index_copy.register_fake
def _(cache, dim, index, x):
    return torch.empty_like(cache, memory_format=torch.contiguous_format)


# The arguments are aten.scaled_dot_product_attention's (names, order, defaults), so a matched
# node's args and kwargs carry over unchanged and one lowering rule reads both.
@torch.library.custom_op("etgpu::seq_major_sdpa", mutates_args=())
def seq_major_sdpa(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   attn_mask: Optional[torch.Tensor] = None, dropout_p: float = 0.0, is_causal: bool = False, *,
                   scale: Optional[float] = None, enable_gqa: bool = False) -> torch.Tensor:
    """Reference semantics of Sdpa with out_seq_major: the attention's [B, L, H, Ev] transpose."""
    out = F.scaled_dot_product_attention(query, key, value, attn_mask, dropout_p, is_causal, scale=scale,
                                         enable_gqa=enable_gqa)
    return out.transpose(1, 2).contiguous()


@seq_major_sdpa.register_fake
def _(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, *, scale=None, enable_gqa=False):
    batch, heads, queries, _ = query.shape
    return query.new_empty((batch, queries, heads, value.shape[-1]))


def _fuse_value_write(graph: torch.fx.Graph, node) -> bool:
    """index_copy(cache, 2, index, x.transpose(1, 2)) -> seq_major_index_copy(cache, 2, index, x)."""
    if op_name(node) != "aten.index_copy.default" or len(node.args) != 4 or node.kwargs:
        return False
    cache, dim, index, rows = node.args
    if not is_head_transpose(rows) or users(rows) != [node] or not isinstance(dim, int) or dim % 4 != 2:
        return False
    if dtype_of(cache) != dtype_of(rows):
        return False
    # Retargeted in place, not replaced: the node keeps its name, by which the graph signature
    # knows its value as the buffer's new state (a mutation output).
    node.target = torch.ops.etgpu.seq_major_index_copy.default
    node.args = (cache, 2, index, rows.args[0])
    erase_chain(graph, rows)
    return True


def _fuse_attention_output(graph: torch.fx.Graph, node) -> bool:
    """sdpa(...).transpose(1, 2), the transpose sdpa's only reader -> seq_major_sdpa(...)."""
    if not is_head_transpose(node):
        return False
    attention = node.args[0]
    if op_name(attention) != "aten.scaled_dot_product_attention.default" or users(attention) != [node]:
        return False
    with graph.inserting_before(node):
        fused = graph.call_function(torch.ops.etgpu.seq_major_sdpa.default, attention.args, dict(attention.kwargs))
    fused.meta["val"] = node.meta["val"]
    node.replace_all_uses_with(fused)
    erase_chain(graph, node)
    return True


def fuse_seq_major_attention(gm: torch.fx.GraphModule) -> int:
    """Rewrites every match of either pattern in place; returns how many were fused."""
    fused = 0
    for node in list(gm.graph.nodes):
        if getattr(node, "_erased", False):
            continue
        fused += _fuse_value_write(gm.graph, node) or _fuse_attention_output(gm.graph, node)
    if fused:
        gm.graph.lint()
        gm.recompile()
    return fused
