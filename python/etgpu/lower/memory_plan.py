"""Memory plan: arena offsets for every arena tensor, sized at the symbols' upper bounds, reusing
bytes between tensors whose lifetimes do not overlap (greedy by size, best offset first).

One lifetime is stretched for an engine's sake: the x of a quantized gate/up pair stays live
through the Glu of their outputs right after them. The CUDA engine runs the three as one GEMV
launch whose epilogue writes the Glu (quant.cu quant_linear_group), so the Glu's output must not
take x's bytes, which other blocks of that launch still read. It costs x's bytes at that one step."""

from typing import List

import torch

from etgpu.lower.context import LoweringContext, Storage

ALIGNMENT = 256  # keeps every tensor start friendly to vector loads on any engine


def tensor_nbytes(ctx: LoweringContext, tid: int) -> int:
    spec = ctx.tensors[tid]
    element = torch.empty((), dtype=spec.dtype).element_size()
    sizes = []
    for values in (ctx.symbols.lower_values(), ctx.symbols.upper_values()):
        count = 1
        for dim in spec.shape:
            count *= max(dim.evaluate(values), 0)
        sizes.append(count * element)
    return max(sizes)


def _lifetimes(ctx: LoweringContext):
    """(first, last) instruction index per tensor id; aliases count as uses of their base."""
    n = len(ctx.instructions)
    first = {}
    last = {}

    def root(tid):
        spec = ctx.tensors[tid]
        return spec.alias_of if spec.storage == Storage.ALIAS else tid

    def touch(tid, index):
        r = root(tid)
        first[r] = min(first.get(r, index), index)
        last[r] = max(last.get(r, index), index)

    for tid in ctx.inputs:
        touch(tid, -1)
    for index, ins in enumerate(ctx.instructions):
        for tid in ins.reads + ins.writes:
            touch(tid, index)
    for tid in ctx.outputs:
        touch(tid, n)
    for x, glu_index in _glu_pairs(ctx):
        touch(x, glu_index)
    return first, last


def _glu_pairs(ctx: LoweringContext):
    """(x, index of the Glu) for each QuantizedLinear pair without activation quantization that reads
    one x, followed by the Glu of their two outputs (gate first)."""
    ins = ctx.instructions
    for i in range(len(ins) - 2):
        gate, up, glu = ins[i:i + 3]
        if (gate.op == up.op == "QuantizedLinear" and glu.op == "Glu"
                and gate.fields["x"] == up.fields["x"]
                and not gate.fields.get("act", 0) and not up.fields.get("act", 0)
                and (glu.fields["a"], glu.fields["b"]) == (gate.fields["out"], up.fields["out"])):
            yield gate.fields["x"], i + 2


def plan_memory(ctx: LoweringContext) -> int:
    """Fills offset and nbytes of every tensor; returns the arena size in bytes."""
    for tid, spec in enumerate(ctx.tensors):
        spec.nbytes = tensor_nbytes(ctx, tid)
    first, last = _lifetimes(ctx)
    arena = [tid for tid, s in enumerate(ctx.tensors) if s.storage == Storage.ARENA and tid in first]
    arena.sort(key=lambda tid: (-ctx.tensors[tid].nbytes, tid))
    placed: List[tuple] = []  # (offset, end, first, last)
    total = 0
    for tid in arena:
        size = _aligned(max(ctx.tensors[tid].nbytes, 1))
        lo, hi = first[tid], last[tid]
        busy = sorted((o, e) for o, e, f, l in placed if f <= hi and lo <= l)
        offset = 0
        for start, end in busy:
            if offset + size <= start:
                break
            offset = max(offset, _aligned(end))
        ctx.tensors[tid].offset = offset
        placed.append((offset, offset + size, lo, hi))
        total = max(total, offset + size)
    return total


def _aligned(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT
