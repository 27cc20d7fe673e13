"""Symbolic sizes (torch SymInts / sympy expressions) to IR dims: (mul * sym + add) // div."""

from dataclasses import dataclass
from typing import Dict, Optional

import sympy
import torch
from torch.utils._sympy.functions import FloorDiv

from etgpu.lower.registry import Unsupported


@dataclass(frozen=True)
class AffineDim:
    sym: int  # -1 for a constant
    mul: int = 0
    add: int = 0
    div: int = 1

    def evaluate(self, values) -> int:
        if self.sym < 0:
            return self.add
        return (self.mul * values[self.sym] + self.add) // self.div


class SymbolTable:
    """The graph's symbols with their bounds, in order of first appearance."""

    def __init__(self, range_constraints: Optional[dict] = None):
        self.bounds: Dict[sympy.Symbol, tuple] = {}
        # Export can leave constraints on symbols no tensor uses (without an upper bound); only a
        # symbol a shape actually uses must be bounded, so the check waits until index().
        self._ranges = dict(range_constraints or {})
        self.order: list = []

    def index(self, symbol: sympy.Symbol) -> int:
        if symbol not in self.order:
            if symbol not in self._ranges:
                raise Unsupported(f"symbol {symbol} has no range constraint")
            ranges = self._ranges[symbol]
            # torch.export reports a floor of 2 for a Dim without `min` (its 0/1 specialization
            # while tracing), yet the program runs correctly at size 1 (a one-token decode step
            # is the main use), so that floor becomes 1. Size 0 stays rejected.
            lower = int(ranges.lower)
            self.bounds[symbol] = (1 if lower == 2 else lower, _finite_upper(symbol, ranges.upper))
            self.order.append(symbol)
        return self.order.index(symbol)

    def dim(self, size) -> AffineDim:
        """An int or SymInt size as an AffineDim."""
        if isinstance(size, int):
            return AffineDim(-1, 0, int(size), 1)
        if isinstance(size, torch.SymInt):
            expr = size.node.expr
        else:
            expr = sympy.sympify(size)
        return self._from_expr(sympy.expand(expr))

    def _from_expr(self, expr) -> AffineDim:
        if expr.is_Integer:
            return AffineDim(-1, 0, int(expr), 1)
        if isinstance(expr, FloorDiv):
            base, divisor = expr.args
            inner = self._from_expr(sympy.expand(base))
            if not divisor.is_Integer or inner.div != 1 or int(divisor) <= 0:
                raise Unsupported(f"symbolic size {expr} is not affine")
            return AffineDim(inner.sym, inner.mul, inner.add, int(divisor))
        symbols = expr.free_symbols
        if len(symbols) != 1:
            raise Unsupported(f"symbolic size {expr} depends on {len(symbols)} symbols; etgpu needs one")
        (symbol,) = symbols
        poly = sympy.Poly(expr, symbol)
        if poly.degree() > 1 or not all(c.is_Integer for c in poly.all_coeffs()):
            raise Unsupported(f"symbolic size {expr} is not affine with integer coefficients")
        coeffs = poly.all_coeffs()
        mul, add = (int(coeffs[0]), int(coeffs[1])) if len(coeffs) == 2 else (0, int(coeffs[0]))
        return AffineDim(self.index(symbol), mul, add, 1)

    def sym_dims(self):
        """(name, min, max) per symbol, in index order."""
        return [(str(s), self.bounds[s][0], self.bounds[s][1]) for s in self.order]

    def upper_values(self):
        return [self.bounds[s][1] for s in self.order]

    def lower_values(self):
        return [self.bounds[s][0] for s in self.order]


def _finite_upper(symbol, upper) -> int:
    try:
        value = int(upper)
    except (TypeError, ValueError, OverflowError, AttributeError):  # int_oo raises AttributeError
        value = None
    if value is None or value > 2**31 - 1:
        raise Unsupported(f"dynamic dim {symbol} needs an upper bound: torch.export.Dim(..., max=N)")
    return value
