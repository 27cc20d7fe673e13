"""TorchAO-quantized linear and embedding vs TorchAO's own eager execution of the same model."""

import pytest
import torch

import etgpu
from etgpu.compile import lower
from etgpu.runtime import EtGpuError
from etgpu.nvfp4 import NvFp4Linear, to_exportable
from etgpu.llm.quantize import QUANT_SCHEMES, embedding_config, linear_config
from parity import TEST_DEVICE, assert_close, check_module, export, randn

pytest.importorskip("torchao")
from torchao.quantization import IntxWeightOnlyConfig, quantize_  # noqa: E402
from torchao.quantization.granularity import PerGroup  # noqa: E402
from torchao.quantization.quant_primitives import MappingType  # noqa: E402

DTYPES = [torch.float32, torch.bfloat16]
# TorchAO's eager 8da and ours agree up to a rounding flip of one activation code.
ACT_TOLERANCE = {torch.float32: 2e-2, torch.bfloat16: 2e-2}


class LinearEmbed(torch.nn.Module):
    def __init__(self, vocab=48, k=128, n=32, bias=True, tied=False):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, k)
        self.proj = torch.nn.Linear(k, n, bias=bias)
        self.head = torch.nn.Linear(k, vocab, bias=False)
        if tied:
            self.head.weight = self.embed.weight

    def forward(self, x, index):
        return self.proj(x), self.embed(index), self.head(x)


def _inputs(dtype, k=128, vocab=48):
    return randn(2, 3, k, dtype=dtype), torch.randint(0, vocab, (2, 5))


def _tolerance(scheme, dtype):
    return ACT_TOLERANCE[dtype] if scheme == "8da4w" else None


def _linear(module):
    return lambda m, fqn: isinstance(m, torch.nn.Linear) and m is not module.head


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme", [s for s in QUANT_SCHEMES if s != "nvfp4"])
def test_quantized_linear(scheme, dtype):
    module = LinearEmbed().to(dtype)
    quantize_(module, linear_config(scheme), filter_fn=_linear(module))
    check_module(module, _inputs(dtype), tol=_tolerance(scheme, dtype), compare_torch_cuda=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bits", [torch.int2, torch.int4, torch.int8])
def test_asymmetric_linear(bits, dtype):
    module = LinearEmbed().to(dtype)
    config = IntxWeightOnlyConfig(weight_dtype=bits, granularity=PerGroup(32), mapping_type=MappingType.ASYMMETRIC)
    quantize_(module, config, filter_fn=_linear(module))
    check_module(module, _inputs(dtype), compare_torch_cuda=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme", ["int8", "int4"])
def test_quantized_embedding(scheme, dtype):
    module = LinearEmbed().to(dtype)
    quantize_(module, embedding_config(scheme), filter_fn=lambda m, fqn: isinstance(m, torch.nn.Embedding))
    check_module(module, _inputs(dtype), compare_torch_cuda=False)


@pytest.mark.parametrize("dtype", DTYPES)
def test_tied_embedding_stored_once(dtype):
    module = LinearEmbed(tied=True).to(dtype)
    quantize_(module, embedding_config("int8"), filter_fn=lambda m, fqn: isinstance(m, torch.nn.Embedding))
    module.head.weight = module.embed.weight
    quantize_(module, linear_config("int4-g32"), filter_fn=_linear(module))
    check_module(module, _inputs(dtype), compare_torch_cuda=False)
    constants = lower(export(module, _inputs(dtype))).constants
    # The int8 table's codes, by key (etgpu.<dtype>.<shape>.<hash>): their stored size depends on
    # whether they are entropy-coded.
    codes = [key for key in constants if key.startswith("etgpu.uint8.48x128.")]
    assert len(codes) == 1, "the tied embedding / LM head codes must be stored exactly once"


@pytest.mark.parametrize("dtype", DTYPES)
def test_nvfp4_linear(dtype):
    pytest.importorskip("torchao.prototype.mx_formats")
    module = LinearEmbed().to(dtype)
    quantize_(module, linear_config("nvfp4"), filter_fn=_linear(module))
    inputs = _inputs(dtype)
    with torch.no_grad():
        expected = module(*inputs)  # TorchAO's NVFP4Tensor eager
    exportable = to_exportable(module)
    assert isinstance(exportable.proj, NvFp4Linear)
    model = etgpu.Model(etgpu.compile(export(exportable, inputs)), device=TEST_DEVICE)
    for i, (actual, want) in enumerate(zip(model.run(list(inputs)), expected)):
        assert_close(actual, want, what=f"nvfp4 output {i}")


def test_unsupported_pattern_names_the_node():
    """A dequantized weight used other than as a linear/embedding weight is refused by name."""
    class Misuse(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(64, 8)

        def forward(self, x):
            return self.proj(x) + self.proj.weight.dequantize().sum()

    module = Misuse()
    quantize_(module, linear_config("int4-g32"))
    with pytest.raises(Exception, match=r"dequantize_affine.*feeds"):
        etgpu.compile(export(module, (randn(2, 64),)))


def _corrupt(data: bytes, change) -> bytes:
    """The same .etgpu with `change(quant_weight_table, tensors)` applied to its first quantized linear."""
    import flatbuffers

    from etgpu import container
    from etgpu.ir.Op import Op
    from etgpu.ir.Program import Program, ProgramT

    payload, constants = container.unpack(data)
    program = ProgramT.InitFromObj(Program.GetRootAs(payload, 0))
    ins = next(i for i in program.graph.instructions if i.opType == Op.QuantizedLinear)
    change(ins.op.w, program.graph.tensors)
    builder = flatbuffers.Builder(1024)
    builder.Finish(program.Pack(builder), file_identifier=b"ETGP")
    return container.pack(bytes(builder.Output()), constants)


def _set_group(w, tensors):
    w.group = 24


def _set_bits(w, tensors):
    w.bits = 3


def _signed_codes(w, tensors):
    from etgpu.ir.DType import DType

    tensors[w.codes].dtype = DType.I8


@pytest.mark.parametrize("change, message", [(_set_group, "group 24 does not divide"),
                                             (_set_bits, "bits must be 2, 4 or 8"),
                                             (_signed_codes, "codes must be u8")])
def test_corrupt_quant_payload_is_rejected(change, message):
    module = LinearEmbed()
    quantize_(module, linear_config("int4-g32"), filter_fn=_linear(module))
    inputs = _inputs(torch.float32)
    data = _corrupt(etgpu.compile(export(module, inputs)), change)
    with pytest.raises(EtGpuError, match=message):
        etgpu.Model(data, device=TEST_DEVICE).run(list(inputs))
