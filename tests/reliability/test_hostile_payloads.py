"""Hostile payloads: a real program edited to break one fact the executor relies on. Each must
be refused with a message saying what is wrong (at load, or at run for shape-dependent facts),
never run out of bounds. Each case is a check that a fuzzer-style payload found missing or that
review of the loader found (see docs/reliability.md)."""

import copy

import pytest
import torch

import etgpu
from etgpu.ir.Storage import Storage
from etgpu.ir.Tensor import TensorT
from etgpu.ir.UnaryOp import UnaryOp
from etgpu.runtime import EtGpuError
from models import (edited, elementwise_program, normed_rope_program, residual_norm_program, split_linear_program,
                    views_program)


def refused_at_load(data: bytes, pattern: str):
    with pytest.raises(EtGpuError, match=pattern):
        etgpu.Model(data, device="cpu")


def refused_at_run(data: bytes, inputs, pattern: str):
    model = etgpu.Model(data, device="cpu")
    with pytest.raises(EtGpuError, match=pattern):
        model.run(inputs)


def test_unedited_programs_load_and_run():
    """The edits below are what make the programs fail (guards against a broken helper)."""
    x = torch.randn(5, 3)
    etgpu.Model(edited(elementwise_program(), lambda g: None), device="cpu").run([x, x])
    out = etgpu.Model(edited(views_program(), lambda g: None), device="cpu").run([x])
    assert torch.equal(out[0], x[:, 1:].permute(1, 0))
    h, r = torch.randn(5, 4), torch.randn(5, 4)
    normed, total = etgpu.Model(edited(residual_norm_program(), lambda g: None), device="cpu").run([h, r])
    assert torch.equal(total, h + r) and normed.shape == (5, 4)


def test_overlapping_live_tensors():
    # Inputs x (1) and y (2) are both live from the start: give y x's bytes.
    def edit(g):
        g.tensors[2].offset = g.tensors[1].offset
    refused_at_load(edited(elementwise_program(), edit), r"memory plan: tensors 1 .* and 2 .* share arena bytes")


def test_partially_overlapping_live_tensors():
    def edit(g):
        g.tensors[2].offset = g.tensors[1].offset + 256  # 768-byte tensors, half overlapping
    refused_at_load(edited(elementwise_program(), edit), r"share arena bytes while both are live")


def test_instruction_writes_constant():
    def edit(g):
        g.instructions[0].op.out = 0  # tensor 0 is the constant `scale`
    refused_at_load(edited(elementwise_program(), edit), r"instruction 0 writes tensor 0, whose storage is a constant")


def test_instruction_writes_constant_through_alias():
    def edit(g):
        alias = TensorT()
        alias.name, alias.dtype, alias.shape = b"view", 0, g.tensors[0].shape
        alias.storage, alias.nbytes, alias.aliasOf = Storage.Alias, 12, 0
        g.tensors.append(alias)
        g.instructions[0].op.out = len(g.tensors) - 1
    refused_at_load(edited(elementwise_program(), edit), r"whose storage is a constant")


def test_instruction_writes_graph_input():
    def edit(g):
        g.instructions[0].op.out = 2  # y
    refused_at_load(edited(elementwise_program(), edit), r"writes tensor 2, which holds graph input data")


def test_second_output_is_checked_like_the_first():
    """AddRmsNorm writes its sum as well as `out`: the sum may not be a constant, a graph input,
    or of another shape than x."""
    def op(g):
        [ins] = [i.op for i in g.instructions]
        return ins

    x = torch.randn(5, 4)
    refused_at_load(edited(residual_norm_program(), lambda g: setattr(op(g), "sum", op(g).weight)),
                    r"writes tensor 0, whose storage is a constant")
    refused_at_load(edited(residual_norm_program(), lambda g: setattr(op(g), "sum", op(g).x)),
                    r"which holds graph input data")
    refused_at_load(edited(residual_norm_program(), lambda g: setattr(op(g), "sum", 99)),
                    r"sum output refers to tensor 99")

    def narrow_sum(g):
        g.tensors[op(g).sum].shape[1].add = 3
    refused_at_run(edited(residual_norm_program(), narrow_sum), [x, x], r"x, residual and sum must have one shape")


def test_split_linear_outputs_are_checked():
    """SplitLinear writes a list of outputs: each is checked as a write, their count is bounded,
    and their widths must add up to the weight's rows (else the kernels would index past w)."""
    def op(g):
        [ins] = [i.op for i in g.instructions]
        return ins

    def set_outs(g, change):
        outs = [int(i) for i in op(g).outs]  # (the object API's array is read-only)
        op(g).outs = change(outs) or outs

    x = torch.randn(5, 4)
    assert len(etgpu.Model(split_linear_program(), device="cpu").run([x])) == 3
    refused_at_load(edited(split_linear_program(), lambda g: set_outs(g, lambda o: o.__setitem__(1, op(g).w))),
                    r"whose storage is a constant")
    refused_at_load(edited(split_linear_program(), lambda g: set_outs(g, lambda o: o.__setitem__(2, 99))),
                    r"split output refers to tensor 99")
    refused_at_load(edited(split_linear_program(), lambda g: set_outs(g, lambda o: o * 3)),
                    r"split_linear needs 1 to 8 outputs")

    def narrow_output(g):
        g.tensors[op(g).outs[1]].shape[1].add = 1
    refused_at_run(edited(split_linear_program(), narrow_output), [x], r"outputs have 7 columns in all, w has 8 rows")

    # A Glu output: written like the others, and Glu's shape rules over the two linear outputs.
    refused_at_load(edited(split_linear_program(), lambda g: setattr(op(g), "gluOut", op(g).x)),
                    r"which holds graph input data")

    def glu_of_unequal_outputs(g):
        op(g).gluOut, op(g).gluAct = int(op(g).outs[2]), UnaryOp.Silu
        set_outs(g, lambda o: o[:2])
    refused_at_run(edited(split_linear_program(), glu_of_unequal_outputs), [x], r"glu: a, b and out must have one shape")
    refused_at_run(edited(split_linear_program(), lambda g: setattr(op(g), "gluOut", int(op(g).outs[2]))), [x],
                   r"a glu output needs exactly two linear outputs")


def test_rope_norm_weight_is_checked():
    """A Rope's norm weight is read as x's dtype, one element per position of a row: a weight of
    another dtype or shape, or a missing one, is refused; so is a norm eps that is not a number."""
    def rope(g):
        [ins] = [i.op for i in g.instructions]
        return ins

    inputs = [torch.randn(5, 2, 8), torch.randn(5, 1, 8), torch.randn(5, 1, 8)]
    assert etgpu.Model(edited(normed_rope_program(), lambda g: None), device="cpu").run(inputs)[0].shape == (5, 2, 8)

    def weight(g):
        return g.tensors[rope(g).norm.weight]

    def reshape(g):  # [8] -> [4, 2]: the same bytes, so only the Rope's own check can tell
        w = weight(g)
        second = copy.copy(w.shape[0])
        w.shape[0].add, second.add = 4, 2
        w.shape = [w.shape[0], second]
    refused_at_run(edited(normed_rope_program(), reshape), inputs,
                   r"rope: the norm weight must be 1-d with x's last dim \(8\) elements")
    refused_at_run(edited(normed_rope_program(), lambda g: setattr(weight(g), "dtype", 4)), inputs,  # int32
                   r"rope: the norm weight is int32 but x is float32")
    refused_at_load(edited(normed_rope_program(), lambda g: setattr(rope(g).norm, "weight", 99)),
                    r"norm weight refers to tensor 99")
    refused_at_load(edited(normed_rope_program(), lambda g: setattr(rope(g).norm, "eps", float("nan"))),
                    r"rope norm eps nan is not a finite non-negative number")


def test_shape_larger_inside_bounds_than_at_them():
    # [s, 64 - s] has 124 elements at s = 2 and 0 at s = 64, but 1024 at s = 32: sizing the
    # buffer from the two bounds alone would let a kernel write past it.
    def edit(g):
        g.tensors[1].shape[1].sym, g.tensors[1].shape[1].mul, g.tensors[1].shape[1].add = 0, -1, 64
    refused_at_load(edited(elementwise_program(), edit), r"tensor 1 declares 768 bytes but its shape at the bounds needs")


def test_dim_coefficient_overflow():
    def edit(g):
        g.symDims[0].max = (1 << 31) - 1
        g.tensors[1].shape[0].mul = (1 << 39)
    refused_at_load(edited(elementwise_program(), edit), r"overflows at its bound")


def test_state_larger_than_the_device_cap():
    def edit(g):
        state = TensorT()
        state.name, state.dtype, state.shape = b"kv", 6, []
        state.storage, state.nbytes = Storage.Mutable, 1 << 45  # 32 TiB of zeros from a tiny file
        state.shape = g.tensors[0].shape[:0]
        g.tensors.append(state)
    refused_at_load(edited(elementwise_program(), edit), r"bytes of device memory")


def test_arena_larger_than_the_device_cap():
    def edit(g):
        g.arenaBytes = 1 << 39
    refused_at_load(edited(elementwise_program(), edit), r"program needs .* bytes of device memory")


def test_symbolic_scalar_with_zero_divisor():
    def edit(g):
        start = g.instructions[0].op.start
        start.sym, start.mul, start.div = 0, 1, 0
    refused_at_load(edited(views_program(), edit), r"instruction 0: scalar coefficients are out of range")


def test_symbolic_scalar_with_unknown_symbol():
    def edit(g):
        g.instructions[0].op.start.sym = 7
    refused_at_load(edited(views_program(), edit), r"scalar refers to symbol 7 but the graph has 1")


def test_slice_step_overflow():
    def edit(g):
        g.instructions[0].op.step = (1 << 63) - 1  # start + step wraps negative in int64
    refused_at_run(edited(views_program(), edit), [torch.randn(5, 3)], r"slice: .* exceeds size")


def test_movement_between_dtypes():
    # permute copies elements of its input's size: a float32 input into an int8 output would
    # write four times the output's bytes.
    def edit(g):
        g.tensors[2].dtype = 6  # int8
    refused_at_run(edited(views_program(), edit), [torch.randn(5, 3)], r"permute: input is float32 but the output is int8")
