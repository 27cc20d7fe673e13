"""Small helpers the pattern passes share for reading and rewriting torch.fx graphs."""

from typing import List, Optional

import torch
import torch.fx

from etgpu.lower.registry import target_name

_ASSERT = "aten._assert_tensor_metadata.default"


def op_name(node) -> str:
    return target_name(node.target) if isinstance(node, torch.fx.Node) and node.op == "call_function" else ""


def dtype_of(node) -> Optional[torch.dtype]:
    value = node.meta.get("val") if isinstance(node, torch.fx.Node) else None
    return value.dtype if isinstance(value, torch.Tensor) else None


def users(node) -> List[torch.fx.Node]:
    """Users that compute something (export's dtype assertions do not)."""
    return [u for u in node.users if op_name(u) != _ASSERT]


def is_head_transpose(node) -> bool:
    """node = x.transpose(1, 2) (or that permute) of a 4-d x: attention's [B, L, H, D] <->
    [B, H, L, D] head transpose, which the seq-major options of Rope, IndexCopy and Sdpa absorb."""
    name = op_name(node)
    value = node.meta.get("val") if name else None
    if not isinstance(value, torch.Tensor) or value.dim() != 4:
        return False
    if name in ("aten.transpose.int", "aten.transpose_copy.int"):
        return sorted(d % 4 for d in node.args[1:3]) == [1, 2]
    if name in ("aten.permute.default", "aten.permute_copy.default"):
        return [d % 4 for d in node.args[1]] == [0, 2, 1, 3]
    return False


def erase_chain(graph: torch.fx.Graph, start: torch.fx.Node) -> None:
    """Erases `start` and, recursively, its inputs that nothing uses any more (assertions on
    them included); placeholders stay."""
    pending = [start]
    while pending:
        node = pending.pop()
        if getattr(node, "_erased", False) or node.op != "call_function" or users(node):
            continue  # (a node reached twice, e.g. x of both x^2 and x * rstd, is erased once)
        for user in list(node.users):  # only assertions are left
            graph.erase_node(user)
        inputs = node.all_input_nodes
        graph.erase_node(node)
        pending.extend(inputs)


def replace_with_call(graph: torch.fx.Graph, tail: torch.fx.Node, target, args: tuple) -> None:
    """Replaces the matched chain that ends at `tail` by one call of `target`: the call goes where
    the tail was, takes over its value's metadata and users, and the chain is erased."""
    with graph.inserting_before(tail):
        fused = graph.call_function(target, args)
    fused.meta["val"] = tail.meta["val"]
    tail.replace_all_uses_with(fused)
    erase_chain(graph, tail)
