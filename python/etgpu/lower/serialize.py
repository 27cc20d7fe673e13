"""IR objects to FlatBuffer bytes (the generated object API does the packing)."""

import flatbuffers

from etgpu.dtypes import dtype_code
from etgpu.ir.Dim import DimT
from etgpu.ir.FormatVersion import FormatVersion
from etgpu.ir.Graph import GraphT
from etgpu.ir.Instruction import InstructionT
from etgpu.ir.Op import Op
from etgpu.ir.Program import ProgramT
from etgpu.ir.SymDim import SymDimT
from etgpu.ir.Tensor import TensorT
from etgpu.lower.context import LoweringContext, _camel
from etgpu.lower.symbolic import AffineDim

import importlib


def _dim(d: AffineDim) -> DimT:
    out = DimT()
    out.sym, out.mul, out.add, out.div = d.sym, d.mul, d.add, d.div
    return out


def _tensor(spec) -> TensorT:
    t = TensorT()
    t.name = spec.name
    t.dtype = dtype_code(spec.dtype)
    t.shape = [_dim(d) for d in spec.shape]
    t.storage = spec.storage
    t.offset = spec.offset
    t.nbytes = spec.nbytes
    t.key = spec.key
    t.data = list(spec.data) if spec.data is not None else None
    t.aliasOf = spec.alias_of
    t.encoding = spec.encoding
    return t


def _instruction(emitted) -> InstructionT:
    module = importlib.import_module(f"etgpu.ir.{emitted.op}")
    table = getattr(module, f"{emitted.op}T")()
    for name, value in emitted.fields.items():
        if isinstance(value, AffineDim):
            value = _dim(value)
        setattr(table, _camel(name), value)
    ins = InstructionT()
    ins.opType = getattr(Op, emitted.op)
    ins.op = table
    return ins


def serialize(ctx: LoweringContext, arena_bytes: int) -> bytes:
    graph = GraphT()
    graph.symDims = []
    for name, lo, hi in ctx.symbols.sym_dims():
        s = SymDimT()
        s.name, s.min, s.max = name, lo, hi
        graph.symDims.append(s)
    graph.tensors = [_tensor(spec) for spec in ctx.tensors]
    graph.instructions = [_instruction(e) for e in ctx.instructions]
    graph.inputs = list(ctx.inputs)
    graph.outputs = list(ctx.outputs)
    graph.arenaBytes = arena_bytes
    program = ProgramT()
    program.version = FormatVersion.MAJOR
    program.graph = graph
    builder = flatbuffers.Builder(1024)
    builder.Finish(program.Pack(builder), file_identifier=b"ETGP")
    return bytes(builder.Output())
