"""Common-subexpression elimination: nodes computing the same pure op on the same operands
become one. An exported LLM recomputes per layer what only depends on the step (the attention
function builds its position mask from arange and the positions in every layer; rotary tables are
re-cast and re-sliced per layer), and each copy would be its own kernel per decode step.

Only ATen-style overloads that neither mutate nor draw random numbers are merged; the graph is
functional after export, so two such nodes with equal arguments compute equal values."""

from typing import Any, Dict

import torch
import torch.fx


def _pure(node: torch.fx.Node) -> bool:
    target = node.target
    if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload):
        return False
    if target._schema.is_mutable or torch.Tag.nondeterministic_seeded in target.tags:
        return False
    return not target._schema.name.startswith("aten::_assert")


def _key(value: Any, canonical: Dict[torch.fx.Node, torch.fx.Node]):
    """A hashable form of an argument, with nodes replaced by their surviving equivalent."""
    if isinstance(value, torch.fx.Node):
        return ("node", canonical.get(value, value))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_key(v, canonical) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _key(v, canonical)) for k, v in value.items())))
    return (type(value).__name__, value)  # the type too: 1 == 1.0 == True, an op may tell them apart


def eliminate_common_subexpressions(gm: torch.fx.GraphModule) -> int:
    """Merges duplicates in place; returns how many nodes were removed."""
    seen: Dict[Any, torch.fx.Node] = {}
    canonical: Dict[torch.fx.Node, torch.fx.Node] = {}
    removed = 0
    for node in list(gm.graph.nodes):
        if not _pure(node):
            continue
        try:
            key = (node.target, _key(node.args, canonical), _key(node.kwargs, canonical))
            hash(key)
        except TypeError:
            continue  # an argument that cannot be compared by value: keep the node
        first = seen.setdefault(key, node)
        if first is node:
            continue
        canonical[node] = first
        node.replace_all_uses_with(first)
        removed += 1
    for node in canonical:  # every use now reads the surviving node
        gm.graph.erase_node(node)
    if removed:
        gm.graph.lint()
        gm.recompile()
    return removed
