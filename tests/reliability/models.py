"""Small exported programs shared by the reliability tests (compiled once per test session)."""

import functools

import flatbuffers
import torch

import etgpu
from etgpu import container
from etgpu.ir.Program import Program, ProgramT

SEQ_MAX = 64


class Elementwise(torch.nn.Module):
    """Float math with a constant: NaN/Inf propagate through mul, add, sigmoid, div, max."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.tensor([0.5, -2.0, 3.0]))

    def forward(self, x, y):
        return torch.sigmoid(x * self.scale + y), torch.maximum(x, y) / (y.abs() + 1)


class Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 4)

    def forward(self, x):
        return torch.relu(self.fc(x))


@functools.lru_cache(maxsize=None)
def elementwise_program() -> bytes:
    """x, y: [seq, 3] float32 with seq dynamic in [2, SEQ_MAX]."""
    torch.manual_seed(0)
    seq = torch.export.Dim("seq", min=3, max=SEQ_MAX)
    inputs = (torch.randn(5, 3), torch.randn(5, 3))
    exported = torch.export.export(Elementwise().eval(), inputs, dynamic_shapes=({0: seq}, {0: seq}))
    return etgpu.compile(exported)


@functools.lru_cache(maxsize=None)
def linear_module() -> Linear:
    torch.manual_seed(0)
    return Linear().eval()


@functools.lru_cache(maxsize=None)
def linear_program() -> bytes:
    """x: [rows, 3] float32, rows dynamic in [2, SEQ_MAX]; weights in the container."""
    rows = torch.export.Dim("rows", min=2, max=SEQ_MAX)
    exported = torch.export.export(linear_module(), (torch.randn(4, 3),), dynamic_shapes=({0: rows},))
    return etgpu.compile(exported)


def elementwise_reference(x, y):
    with torch.no_grad():
        return Elementwise()(x, y)


class SliceThenPermute(torch.nn.Module):
    def forward(self, x):
        return x[:, 1:].permute(1, 0)


@functools.lru_cache(maxsize=None)
def views_program() -> bytes:
    """x: [seq, 3] -> slice (symbolic start) -> permute."""
    seq = torch.export.Dim("seq", min=3, max=SEQ_MAX)
    exported = torch.export.export(SliceThenPermute(), (torch.randn(5, 3),), dynamic_shapes=({0: seq},))
    return etgpu.compile(exported)


class ResidualNorm(torch.nn.Module):
    """h = x + r; h * rsqrt(mean(h^2) + eps) * w, returning both: one AddRmsNorm (two outputs)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.tensor([0.5, -2.0, 3.0, 1.5]))

    def forward(self, x, r):
        h = x + r
        return h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w, h


@functools.lru_cache(maxsize=None)
def residual_norm_program() -> bytes:
    """x, r: [seq, 4] float32, seq dynamic in [2, SEQ_MAX]; tensors: w (0), x (1), r (2), then
    the instruction's sum and out."""
    seq = torch.export.Dim("seq", min=2, max=SEQ_MAX)
    inputs = (torch.randn(5, 4), torch.randn(5, 4))
    exported = torch.export.export(ResidualNorm(), inputs, dynamic_shapes=({0: seq}, {0: seq}))
    return etgpu.compile(exported)


class SiblingLinears(torch.nn.Module):
    """q/k/v-like linears of one input: one SplitLinear writing three outputs."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2), torch.nn.Linear(4, 2)

    def forward(self, x):
        return self.q(x), self.k(x), self.v(x)


@functools.lru_cache(maxsize=None)
def split_linear_program() -> bytes:
    """x: [seq, 4] float32, seq dynamic in [2, SEQ_MAX] -> one SplitLinear (outputs of 4, 2, 2)."""
    seq = torch.export.Dim("seq", min=2, max=SEQ_MAX)
    return etgpu.compile(torch.export.export(SiblingLinears(), (torch.randn(5, 4),), dynamic_shapes=({0: seq},)))


class NormedRope(torch.nn.Module):
    """q [seq, heads, 8] RMS-normalized per head (weight w) and roped: one Rope with a norm."""

    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.tensor([0.5, -2.0, 3.0, 1.5, 1.0, 0.25, -1.0, 2.0]))

    def forward(self, q, cos, sin):
        n = q * torch.rsqrt(q.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w
        return n * cos + torch.cat((-n[..., 4:], n[..., :4]), dim=-1) * sin


@functools.lru_cache(maxsize=None)
def normed_rope_program() -> bytes:
    """q: [seq, 2, 8], cos, sin: [seq, 1, 8] float32, seq dynamic in [2, SEQ_MAX]."""
    seq = torch.export.Dim("seq", min=2, max=SEQ_MAX)
    inputs = (torch.randn(5, 2, 8), torch.randn(5, 1, 8), torch.randn(5, 1, 8))
    exported = torch.export.export(NormedRope(), inputs, dynamic_shapes=({0: seq},) * 3)
    return etgpu.compile(exported)


def edited(data: bytes, edit) -> bytes:
    """`data` with edit(graph) applied to its payload (constants kept)."""
    payload, constants = container.unpack(data)
    program = ProgramT.InitFromObj(Program.GetRootAs(payload, 0))
    edit(program.graph)
    builder = flatbuffers.Builder(1024)
    builder.Finish(program.Pack(builder), file_identifier=b"ETGP")
    return container.pack(bytes(builder.Output()), constants)
