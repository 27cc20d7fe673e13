"""Fuses RMSNorm written out in ATen ops into one `etgpu::rms_norm` node (one RmsNorm instruction).

transformers' Llama/Qwen/Mistral RMSNorm exports as

    xf   = x.to(float32)                       # only when x is fp16/bf16
    n    = xf * rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    out  = weight * n.to(x.dtype)              # the cast only when x was cast up

Fusion happens only where the fused kernel reproduces the eager rounding: the statistics are
fp32 (so the pattern's xf must be fp32), and the normalized value is rounded to x's dtype before
the weight multiply (`round_normalized`), whose result has the promoted dtype, as in eager.

Gemma's RMSNorm multiplies by 1 + w in fp32 and rounds once, at the end:

    out  = (n * (1.0 + weight.float())).type_as(x)      # n as above, from xf = x.float()

which becomes one rms_norm of x (of xf when no cast back follows) with weight w, unit_offset
and not round_normalized: the kernel forms 1 + w in fp32 as eager does.

A second pass (`fuse_add_rms_norm`) folds the residual add that feeds such a norm into it:

    h = x + residual;  n = rms_norm(h)    ->   h, n = etgpu::add_rms_norm(x, residual, ...)

(one AddRmsNorm instruction instead of a Binary and a RmsNorm, twice per decoder layer). h stays
a value of the graph for its other users (the residual stream the next add reads).
"""

import operator
from typing import Dict, Optional, Tuple

import torch
import torch.fx

from etgpu.lower.passes._fx import dtype_of as _dtype, op_name as _name, replace_with_call, users as _users

_CASTS = ("aten._to_copy.default", "dim_order_ops._to_dim_order_copy.default")
_HALF = (torch.float16, torch.bfloat16)


@torch.library.custom_op("etgpu::rms_norm", mutates_args=())
def rms_norm(x: torch.Tensor, weight: Optional[torch.Tensor], eps: float, unit_offset: bool,
             round_normalized: bool) -> torch.Tensor:
    """Reference semantics of the RmsNorm instruction (see schema/etgpu.fbs)."""
    xf = x.float()
    y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
    if round_normalized:
        y = y.to(x.dtype)
    if weight is not None:
        y = y * (1.0 + weight.float() if unit_offset else weight)
    return y.to(_out_dtype(x, weight, round_normalized))


@rms_norm.register_fake
def _(x, weight, eps, unit_offset, round_normalized):
    return torch.empty_like(x, dtype=_out_dtype(x, weight, round_normalized))


@torch.library.custom_op("etgpu::add_rms_norm", mutates_args=())
def add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: Optional[torch.Tensor], eps: float,
                 unit_offset: bool, round_normalized: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Reference semantics of the AddRmsNorm instruction: (sum, rms_norm(sum))."""
    total = x + residual
    return total, rms_norm(total, weight, eps, unit_offset, round_normalized)


@add_rms_norm.register_fake
def _(x, residual, weight, eps, unit_offset, round_normalized):
    return torch.empty_like(x), torch.empty_like(x, dtype=_out_dtype(x, weight, round_normalized))


def _out_dtype(x, weight, round_normalized) -> torch.dtype:
    """Llama-style (round_normalized) multiplies x-dtype values by the weight: dtypes promote.
    torch's rms_norm and Gemma's RMSNorm return x's dtype."""
    if weight is not None and round_normalized:
        return torch.promote_types(x.dtype, weight.dtype)
    return x.dtype





def _other_operand(mul: torch.fx.Node, operand: torch.fx.Node):
    """The operand of a binary mul that is not `operand` (None when it is not such a mul)."""
    if _name(mul) != "aten.mul.Tensor" or len(mul.args) != 2 or mul.kwargs:
        return None
    a, b = mul.args
    return b if a is operand else a if b is operand else None


def _mean_of_square(mean: torch.fx.Node):
    """x for mean(x^2, [-1], keepdim=True) over an fp32 x, else None."""
    if _name(mean) != "aten.mean.dim" or mean.kwargs.get("dtype") is not None:
        return None
    square, dims = mean.args[0], mean.args[1]
    keepdim = mean.args[2] if len(mean.args) > 2 else mean.kwargs.get("keepdim", False)
    rank = square.meta["val"].dim() if isinstance(square, torch.fx.Node) else 0
    if not keepdim or rank == 0 or list(dims) not in ([-1], [rank - 1]):
        return None
    if _name(square) == "aten.pow.Tensor_Scalar" and square.args[1] == 2:
        x = square.args[0]
    elif _name(square) == "aten.mul.Tensor" and len(square.args) == 2 and square.args[0] is square.args[1]:
        x = square.args[0]
    else:
        return None
    return x if _dtype(x) == torch.float32 else None


def _eps_of(add: torch.fx.Node, scalars: Dict[str, float]):
    """(mean node, eps) for mean + eps with a Python number eps, or a 0-d constant tensor's value
    (ExecuTorch's edge dialect lifts the number into one), else (None, None)."""
    if _name(add) not in ("aten.add.Tensor", "aten.add.Scalar") or add.kwargs.get("alpha", 1) != 1:
        return None, None
    a, b = (scalars.get(arg.name, arg) if _is_placeholder(arg) else arg for arg in add.args[:2])
    if isinstance(a, torch.fx.Node) and isinstance(b, (int, float)) and not isinstance(b, bool):
        return a, float(b)
    if isinstance(b, torch.fx.Node) and isinstance(a, (int, float)) and not isinstance(a, bool):
        return b, float(a)
    return None, None


def _is_placeholder(arg) -> bool:
    return isinstance(arg, torch.fx.Node) and arg.op == "placeholder"


def _cast_back(xf: torch.fx.Node, tail: torch.fx.Node) -> Optional[torch.fx.Node]:
    """The cast that is `tail`'s only reader when xf is an upcast of fp16/bf16 x and that cast
    takes tail back to x's dtype, else None."""
    tail_users = _users(tail)
    if (_name(xf) in _CASTS and _dtype(xf.args[0]) in _HALF and len(tail_users) == 1
            and _name(tail_users[0]) in _CASTS and _dtype(tail_users[0]) == _dtype(xf.args[0])):
        return tail_users[0]
    return None


def _unit_offset_weight(weight: torch.fx.Node, scalars: Dict[str, float]) -> Optional[torch.fx.Node]:
    """w for Gemma's fp32 weight 1 + w (1.0 + w.float(), either operand order), else None."""
    if _dtype(weight) != torch.float32:
        return None
    w, one = _eps_of(weight, scalars)  # (a tensor plus a number)
    if w is None or one != 1.0:
        return None
    if _name(w) in _CASTS and _dtype(w.args[0]) in _HALF:
        w = w.args[0]  # the kernel widens the weight as exactly
    return w if _dtype(w) in (torch.float32,) + _HALF else None


def _match(rsqrt: torch.fx.Node, scalars: Dict[str, float]):
    """(x, weight, eps, tail node to replace, unit_offset, round_normalized) for a match at
    `rsqrt`, else None."""
    mean, eps = _eps_of(rsqrt.args[0], scalars) if isinstance(rsqrt.args[0], torch.fx.Node) else (None, None)
    xf = _mean_of_square(mean) if mean is not None else None
    users = _users(rsqrt)
    if xf is None or len(users) != 1 or _other_operand(users[0], rsqrt) is not xf:
        return None
    x, tail = xf, users[0]
    # Llama: undo an upcast of fp16/bf16 x when the normalized value is cast straight back to x's
    # dtype (before the weight multiply).
    cast = _cast_back(xf, tail)
    if cast is not None:
        x, tail = xf.args[0], cast
    weight = None
    tail_users = _users(tail)
    if len(tail_users) == 1:
        candidate = _other_operand(tail_users[0], tail)
        size = x.meta["val"].shape[-1]
        if (isinstance(candidate, torch.fx.Node) and _dtype(candidate) in (torch.float32,) + _HALF
                and tuple(candidate.meta["val"].shape) == (size,) and isinstance(size, int)):
            weight, tail = candidate, tail_users[0]
    offset_weight = _unit_offset_weight(weight, scalars) if weight is not None and x is xf else None
    if offset_weight is None:
        return x, weight, eps, tail, False, True
    # Gemma: fp32 math times 1 + w, one rounding at the end, where a cast back to x's dtype
    # after the weight multiply ends the pattern.
    cast = _cast_back(xf, tail)
    if cast is not None:
        x, tail = xf.args[0], cast
    return x, offset_weight, eps, tail, True, False


def fuse_rms_norm(gm: torch.fx.GraphModule, scalars: Optional[Dict[str, float]] = None) -> int:
    """Rewrites every match in place; returns how many were fused. `scalars`: the values of 0-d
    constant placeholders (by name), which an eps may be."""
    scalars = scalars or {}
    fused = 0
    for node in list(gm.graph.nodes):
        if getattr(node, "_erased", False) or _name(node) != "aten.rsqrt.default":
            continue  # (erased: part of an earlier match)
        match = _match(node, scalars)
        if match is None:
            continue
        x, weight, eps, tail, unit_offset, round_normalized = match
        replace_with_call(gm.graph, tail, torch.ops.etgpu.rms_norm.default,
                          (x, weight, eps, unit_offset, round_normalized))
        fused += 1
    if fused:
        gm.graph.lint()
        gm.recompile()
    return fused


# ---- residual add + RMSNorm ----------------------------------------------------------------------

def _same_shape(a: torch.fx.Node, b: torch.fx.Node) -> bool:
    """Equal shapes, symbolic sizes compared by expression (no broadcasting either way)."""
    sa, sb = a.meta["val"].shape, b.meta["val"].shape
    return len(sa) == len(sb) and all(str(p) == str(q) for p, q in zip(sa, sb))


def _residual_add(add) -> Optional[Tuple[torch.fx.Node, torch.fx.Node]]:
    """(x, residual) when `add` is x + residual of one shape and float dtype, else None: the
    AddRmsNorm kernel neither broadcasts nor converts."""
    if _name(add) != "aten.add.Tensor" or len(add.args) != 2 or add.kwargs.get("alpha", 1) != 1:
        return None
    x, residual = add.args
    if not (isinstance(x, torch.fx.Node) and isinstance(residual, torch.fx.Node)):
        return None
    dtype = _dtype(add)
    if dtype not in (torch.float32,) + _HALF or not _dtype(x) == _dtype(residual) == dtype:
        return None
    return (x, residual) if _same_shape(x, residual) and _same_shape(x, add) else None


def _insertion_point(graph: torch.fx.Graph, add, norm, weight) -> Optional[torch.fx.Node]:
    """The node to insert the fused call before. It replaces both nodes, so it must follow its
    inputs (x, residual: before the add; the weight: before the norm) and precede every user of
    either. Right before the norm works unless a user of the sum comes earlier; right after the
    add then, if the weight is already defined there (a computed weight, e.g. Gemma's 1 + w,
    may not be); else None (not fused)."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    if all(order[u] > order[norm] for u in _users(add) if u is not norm):
        return norm
    if not isinstance(weight, torch.fx.Node) or order[weight] < order[add]:
        return add.next
    return None


def fuse_add_rms_norm(gm: torch.fx.GraphModule) -> int:
    """Rewrites every etgpu::rms_norm whose input is a residual add (see _residual_add) into one
    etgpu::add_rms_norm; the add's other users read its sum output. Returns how many."""
    graph = gm.graph
    fused = 0
    for norm in list(graph.nodes):
        if _name(norm) != "etgpu.rms_norm.default" or _name(norm.args[0]) != "aten.add.Tensor":
            continue
        add, (weight, eps, unit_offset, round_normalized) = norm.args[0], norm.args[1:]
        operands = _residual_add(add)
        where = _insertion_point(graph, add, norm, weight) if operands else None
        if where is None:
            continue
        with graph.inserting_before(where):
            call = graph.call_function(torch.ops.etgpu.add_rms_norm.default,
                                       (*operands, weight, eps, unit_offset, round_normalized))
            total = graph.call_function(operator.getitem, (call, 0))
            normed = graph.call_function(operator.getitem, (call, 1))
        call.meta["val"] = (add.meta["val"], norm.meta["val"])
        total.meta["val"], normed.meta["val"] = add.meta["val"], norm.meta["val"]
        norm.replace_all_uses_with(normed)
        graph.erase_node(norm)
        for assertion in set(add.users) - set(_users(add)):  # export's dtype checks: may precede `where`
            graph.erase_node(assertion)
        add.replace_all_uses_with(total)
        graph.erase_node(add)
        fused += 1
    if fused:
        graph.lint()
        gm.recompile()
    return fused
