"""Small helpers the pattern passes share for reading and rewriting torch.fx graphs."""

from typing import Dict, List, Optional

import torch
import torch.fx
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

from etgpu.lower.registry import target_name

_ASSERT = "aten._assert_tensor_metadata.default"


# ExecuTorch's edge dialect spells the view ops as copies (a functional graph cannot tell them
# apart); the patterns are written against the ATen names, so both flows match the same graphs.
_EDGE_VIEWS = {f"aten.{op}_copy.{overload}": f"aten.{op}.{overload}" for op, overload in (
    ("slice", "Tensor"), ("view", "default"), ("permute", "default"), ("transpose", "int"), ("unsqueeze", "default"),
    ("squeeze", "dims"), ("expand", "default"), ("select", "int"))}


def op_name(node) -> str:
    """The ATen name of a call node's op ("" for other nodes); edge view copies as their views."""
    if not isinstance(node, torch.fx.Node) or node.op != "call_function":
        return ""
    name = target_name(node.target)
    return _EDGE_VIEWS.get(name, name)


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
    if name == "aten.transpose.int":
        return sorted(d % 4 for d in node.args[1:3]) == [1, 2]
    if name == "aten.permute.default":
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


_CONSTANT_KINDS = (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR)


def constant_inputs(ep: ExportedProgram) -> Dict[str, torch.Tensor]:
    """Placeholder name -> value of every parameter, buffer or constant the program never mutates."""
    mutated = set(ep.graph_signature.buffers_to_mutate.values())
    found = {}
    for spec in ep.graph_signature.input_specs:
        if spec.kind not in _CONSTANT_KINDS or spec.target in mutated:
            continue
        value = ep.state_dict.get(spec.target, ep.constants.get(spec.target))
        if isinstance(value, torch.Tensor):
            found[spec.arg.name] = value
    return found
