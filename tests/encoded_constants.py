"""Helpers of the constant-encoding tests (test_packed_float.py, test_huffman_bytes.py): a program
that hands an encoded constant straight to its output, so that what it returns is exactly what the
C++ decoder produced, a small quantized model to compile with an encoding on and off, and the
checks both encodings make of it (which operands are encoded; outputs bit-identical either way,
through the .etgpu and the .pte paths)."""

import flatbuffers
import pytest
import torch

import etgpu
from etgpu import container
from etgpu.dtypes import dtype_code
from etgpu.ir.Dim import DimT
from etgpu.ir.Expand import ExpandT
from etgpu.ir.FormatVersion import FormatVersion
from etgpu.ir.Graph import GraphT
from etgpu.ir.Instruction import InstructionT
from etgpu.describe import parse
from etgpu.ir.Op import Op
from etgpu.ir.Program import ProgramT
from etgpu.ir.Storage import Storage
from etgpu.ir.Tensor import TensorT
from parity import PteProgram, export, randn


def copy_program(stored: bytes, dtype, n: int, encoding: int) -> bytes:
    """An .etgpu file whose one instruction copies a constant of `n` `dtype` elements, stored as
    `stored` in `encoding`, into the output."""
    nbytes = n * torch.tensor([], dtype=dtype).element_size()

    def tensor(name, storage, **fields):
        t = TensorT()
        t.name, t.dtype, t.storage, t.nbytes = name, dtype_code(dtype), storage, nbytes
        dim = DimT()
        dim.sym, dim.mul, dim.add, dim.div = -1, 0, n, 1
        t.shape = [dim]
        for key, value in fields.items():
            setattr(t, key, value)
        return t

    expand = ExpandT()
    expand.x, expand.out = 0, 1
    instruction = InstructionT()
    instruction.opType, instruction.op = Op.Expand, expand
    graph = GraphT()
    graph.tensors = [tensor("encoded", Storage.Constant, key="encoded", encoding=encoding),
                     tensor("out", Storage.Arena)]
    graph.instructions, graph.inputs, graph.outputs, graph.arenaBytes = [instruction], [], [1], nbytes
    program = ProgramT()
    program.version, program.graph = FormatVersion.MAJOR, graph
    builder = flatbuffers.Builder(1024)
    builder.Finish(program.Pack(builder), file_identifier=b"ETGP")
    return container.pack(bytes(builder.Output()), {"encoded": stored})


def decoded_by_runtime(stored: bytes, dtype, n: int, encoding: int) -> torch.Tensor:
    return etgpu.Model(copy_program(stored, dtype, n, encoding), device="cpu").run([])[0]


class LinearEmbed(torch.nn.Module):
    def __init__(self, features: int, outputs: int, rows: int):
        super().__init__()
        self.embed = torch.nn.Embedding(rows, features)
        self.proj = torch.nn.Linear(features, outputs)

    def forward(self, x, index):
        return self.proj(x), self.embed(index)


def quantized_linear_embed(dtype, asymmetric: bool, features: int = 128, outputs: int = 64, rows: int = 48,
                           normal_linear: bool = False):
    """(exported program, inputs) of a linear quantized int4 group 32 and an embedding quantized
    int8 per row, as TorchAO does it. `normal_linear`: the linear's weights are normal (std 0.02,
    as Hugging Face models initialise them) rather than nn.Linear's uniform ones, so that its codes
    cluster around the zero point as a real model's do."""
    pytest.importorskip("torchao")
    from torchao.quantization import IntxWeightOnlyConfig, quantize_
    from torchao.quantization.granularity import PerAxis, PerGroup
    from torchao.quantization.quant_primitives import MappingType

    torch.manual_seed(0)
    module = LinearEmbed(features, outputs, rows)
    if normal_linear:
        torch.nn.init.normal_(module.proj.weight, std=0.02)
    module = module.to(dtype)
    mapping = MappingType.ASYMMETRIC if asymmetric else MappingType.SYMMETRIC
    quantize_(module, IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32), mapping_type=mapping),
              filter_fn=lambda m, fqn: isinstance(m, torch.nn.Linear))
    quantize_(module, IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0)),
              filter_fn=lambda m, fqn: isinstance(m, torch.nn.Embedding))
    inputs = (randn(3, features, dtype=dtype), torch.randint(0, rows, (2, 5)))
    return export(module, inputs), inputs


def encoded_roles(data: bytes, encoding: int):
    """{(op type, 'codes' | 'scales' | 'zeros')}: the quantized weights' operands stored in
    `encoding` in an .etgpu file."""
    graph = parse(container.unpack(data)[0]).graph
    quantized = [ins for ins in graph.instructions if ins.opType in (Op.QuantizedLinear, Op.QuantizedEmbedding)]
    return {(ins.opType, role) for ins in quantized for role in ("codes", "scales", "zeros")
            if getattr(ins.op.w, role) >= 0 and graph.tensors[getattr(ins.op.w, role)].encoding == encoding}


def compiled_with(monkeypatch, exported, switch: str, on: bool) -> bytes:
    """The .etgpu bytes of `exported` with the encoding's environment switch on or off."""
    monkeypatch.setenv(switch, "1" if on else "0")
    return etgpu.compile(exported)


def assert_same_outputs(program_a: bytes, program_b: bytes, inputs) -> None:
    for a, b in zip(etgpu.Model(program_a, device="cpu").run(list(inputs)),
                    etgpu.Model(program_b, device="cpu").run(list(inputs))):
        assert torch.equal(a, b)


def assert_pte_smaller_and_same_outputs(monkeypatch, exported, inputs, switch: str) -> None:
    """Through ExecuTorch: with the encoding on, the encoded constants travel as named data in a
    smaller .pte, the backend decodes them, and the outputs equal those with it off bit for bit."""
    outputs = {}
    for on in (True, False):
        monkeypatch.setenv(switch, "1" if on else "0")
        program = PteProgram(exported, device="cpu")
        outputs[on] = (len(program.pte), program.method.execute(list(inputs)))
    assert outputs[True][0] < outputs[False][0]
    for a, b in zip(outputs[True][1], outputs[False][1]):
        assert torch.equal(a, b)
