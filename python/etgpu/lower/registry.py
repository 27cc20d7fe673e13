"""The lowering registry: ATen overload name -> lowering rule.

A rule is `rule(ctx, node)`; it reads operands with `ctx.input(...)`, creates outputs with
`ctx.output(node)` and emits IR with `ctx.emit(...)`. It raises `Unsupported` for any case it
cannot lower; that is also how the partitioner learns a node must stay on the CPU."""

from typing import Callable, Dict, Optional

_RULES: Dict[str, Callable] = {}


class Unsupported(Exception):
    """This node (or this use of it) has no lowering; the message says why."""


def target_name(target) -> str:
    """'aten.add.Tensor' for an ATen OpOverload or an ExecuTorch edge op wrapping one."""
    import torch

    if not isinstance(target, torch._ops.OpOverload):
        target = getattr(target, "_op", target)  # an edge op wraps its ATen overload
    return str(target)


def lowering(*names: str):
    def register(rule: Callable) -> Callable:
        for name in names:
            if name in _RULES:
                raise ValueError(f"two lowering rules for {name}")
            _RULES[name] = rule
        return rule

    return register


def lookup(target) -> Optional[Callable]:
    return _RULES.get(target_name(target))


def supported_names():
    return sorted(_RULES)
