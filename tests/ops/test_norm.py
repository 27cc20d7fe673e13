import pytest
import torch

import etgpu
from etgpu.compile import lower
from etgpu.ir.Op import Op
from etgpu.ir.Program import Program
from parity import TEST_DEVICE, Fn, check_module, export, randn

FLOATS = [torch.float32, torch.float16, torch.bfloat16]
F = torch.nn.functional


def instruction_ops(module, inputs):
    """Names of the IR instructions etgpu lowers `module` to, decoded from the payload."""
    payload = lower(export(module.eval(), inputs)).payload
    graph = Program.GetRootAs(payload, 0).Graph()
    names = {v: k for k, v in vars(Op).items() if not k.startswith("_")}
    return [names[graph.Instructions(i).OpType()] for i in range(graph.InstructionsLength())]


# ---- softmax -------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [-1, 0, 1, 2])
def test_softmax(dim, dtype):
    check_module(Fn(lambda x: (torch.softmax(x, dim), F.log_softmax(x, dim))), (randn(3, 6, 10, dtype=dtype) * 4,))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_softmax_to_fp32(dtype):
    check_module(Fn(lambda x: (F.softmax(x, -1, dtype=torch.float32), F.log_softmax(x, 1, dtype=torch.float32))),
                 (randn(4, 7, dtype=dtype),))


def test_softmax_extremes():
    """Large logits must not overflow; -inf (masked) entries get probability 0. (log_softmax gets
    finite logits: the parity check cannot compare -inf outputs.)"""
    x = randn(3, 8) * 50
    x[0, :4] = -float("inf")
    x[1, 2] = 1e4
    y = randn(3, 8) * 50
    y[1, 2] = 1e4
    check_module(Fn(lambda t, u: (torch.softmax(t, -1), F.log_softmax(u, -1))), (x, y))


# ---- layer norm ----------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
def test_layer_norm_affine(dtype):
    w, b = randn(16, dtype=dtype), randn(16, dtype=dtype)
    check_module(Fn(lambda x, w, b: F.layer_norm(x, (16,), w, b, 1e-5), w, b), (randn(2, 5, 16, dtype=dtype) + 3,))


@pytest.mark.parametrize("dtype", FLOATS)
def test_layer_norm_plain_and_two_dims(dtype):
    w = randn(5, 16, dtype=dtype)
    check_module(Fn(lambda x, w: (F.layer_norm(x, (16,)), F.layer_norm(x, (5, 16), w, None, 1e-3)), w),
                 (randn(2, 5, 16, dtype=dtype),))


@pytest.mark.parametrize("dtype", FLOATS)
def test_layer_norm_module(dtype):
    module = torch.nn.Sequential(torch.nn.Linear(8, 12), torch.nn.LayerNorm(12)).to(dtype)
    with torch.no_grad():
        module[1].weight.copy_(randn(12))
        module[1].bias.copy_(randn(12))
    check_module(module, (randn(3, 8, dtype=dtype),))


def test_layer_norm_mixed_precision_affine():
    """bf16 activations with fp32 weight and bias (torch's CPU kernel accepts it; its CUDA kernel
    raises "expected scalar type BFloat16 but found Float", so only CPU eager is the reference)."""
    check_module(Fn(lambda x, w, b: F.layer_norm(x, (16,), w, b), randn(16), randn(16)),
                 (randn(4, 16, dtype=torch.bfloat16),), compare_torch_cuda=False)


# ---- RMS norm ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
def test_rms_norm(dtype):
    w = randn(32, dtype=dtype)
    check_module(Fn(lambda x, w: (F.rms_norm(x, (32,), w, 1e-6), F.rms_norm(x, (32,))), w),
                 (randn(3, 4, 32, dtype=dtype),))


def test_rms_norm_default_eps_is_fp32_epsilon():
    """eps=None means fp32's epsilon for every dtype; tiny inputs make eps visible."""
    check_module(Fn(lambda x: F.rms_norm(x, (64,))), (randn(4, 64, dtype=torch.bfloat16) * 3e-4,))


@pytest.mark.parametrize("dtype", FLOATS)
def test_norms_dynamic_length(dtype):
    norm = torch.nn.ModuleList([torch.nn.LayerNorm(24), torch.nn.RMSNorm(24, eps=1e-5)]).to(dtype)

    def fn(x):
        return norm[0](x), norm[1](x), torch.softmax(x, 1), F.log_softmax(x, -1)

    seq = torch.export.Dim("seq", max=40)
    module = Fn(fn)
    module.norm = norm
    check_module(module, (randn(2, 11, 24, dtype=dtype),), dynamic_shapes=({1: seq},),
                 run_inputs_list=[(randn(2, 33, 24, dtype=dtype),), (randn(2, 3, 24, dtype=dtype),)])


# ---- the RMSNorm pattern -------------------------------------------------------------------------

def _llama_rms_norm(size, dtype):
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    module = LlamaRMSNorm(size, eps=1e-6)
    with torch.no_grad():
        module.weight.copy_(randn(size))
    return module.to(dtype)


@pytest.mark.parametrize("dtype", FLOATS)
def test_llama_rms_norm_is_one_instruction(dtype):
    module = _llama_rms_norm(64, dtype)
    inputs = (randn(2, 5, 64, dtype=dtype),)
    assert instruction_ops(module, inputs) == ["RmsNorm"]
    seq = torch.export.Dim("seq", max=64)
    check_module(module, inputs, dynamic_shapes=({1: seq},), run_inputs_list=[(randn(2, 31, 64, dtype=dtype),)])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("norm", ["llama", "gemma"])
def test_rms_norm_is_exact(norm, dtype):
    """The fused kernel rounds where eager does, so half-precision results agree to the bit on
    nearly every element: Llama's normalized value to x's dtype, then the weight product; Gemma's
    one rounding, after the weight product (1 + w) in fp32."""
    module = (_llama_rms_norm if norm == "llama" else _gemma_rms_norm)(256, dtype)
    x = randn(16, 256, dtype=dtype)
    model = etgpu.Model(etgpu.compile(export(module.eval(), (x,))), device=TEST_DEVICE)
    [actual] = model.run([x])
    with torch.no_grad():
        expected = module(x)
    assert actual.dtype == expected.dtype
    # fp32 statistics are summed in another order, which may flip a rounding now and then.
    assert (actual != expected).float().mean().item() < 0.002


def test_llama_rms_norm_mixed_precision_weight():
    """bf16 activations with an fp32 weight: eager promotes the product to fp32."""
    module = _llama_rms_norm(32, torch.float32)
    x = randn(3, 32, dtype=torch.bfloat16)
    assert instruction_ops(module, (x,)) == ["RmsNorm"]
    check_module(module, (x,))


def _gemma_rms_norm(size, dtype, weight_dtype=None):
    """Gemma 3's RMSNorm (fp32 math times 1 + w, one rounding at the end), random weights."""
    from transformers.models.gemma3.modeling_gemma3 import Gemma3RMSNorm

    module = Gemma3RMSNorm(size, eps=1e-6)
    with torch.no_grad():
        module.weight.copy_(randn(size) * 0.5)
    return module.to(weight_dtype or dtype)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("weight_dtype", [None, torch.float32])
def test_gemma_rms_norm_is_one_instruction(dtype, weight_dtype):
    """x.float(), its norm times 1.0 + w.float(), then back to x's dtype: one RmsNorm with
    unit_offset (no separate casts, nor 1 + w computed at every call), also with an fp32 weight
    on half-precision x."""
    module = _gemma_rms_norm(64, dtype, weight_dtype)
    inputs = (randn(2, 5, 64, dtype=dtype),)
    assert instruction_ops(module, inputs) == ["RmsNorm"]
    check_module(module, inputs)


def test_rms_norm_pattern_variants():
    """x * x instead of pow, eps on the left, no weight, a weight used on the left."""
    def no_weight(x):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5)

    def weight_left(x, w):
        return w * (x * torch.rsqrt(1e-6 + x.pow(2).mean(dim=2, keepdim=True)))

    x = randn(2, 3, 16)
    assert instruction_ops(Fn(no_weight), (x,)) == ["RmsNorm"]
    assert instruction_ops(Fn(weight_left, randn(16)), (x,)) == ["RmsNorm"]
    check_module(Fn(no_weight), (x,))
    check_module(Fn(weight_left, randn(16)), (x,))


def test_rms_norm_pattern_not_fused_when_inexact():
    """Statistics in bf16 (no upcast) round at every step: fusing would change the result."""
    def bf16_math(x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    x = randn(4, 16, dtype=torch.bfloat16)
    assert "RmsNorm" not in instruction_ops(Fn(bf16_math), (x,))
    check_module(Fn(bf16_math), (x,))


def test_rms_norm_pattern_keeps_shared_intermediates():
    """An intermediate used elsewhere is still computed; the norm itself is still fused."""
    def fn(x, w):
        variance = x.pow(2).mean(-1, keepdim=True)
        return w * (x * torch.rsqrt(variance + 1e-6)), variance

    ops = instruction_ops(Fn(fn, randn(16)), (randn(3, 16),))
    assert ops.count("RmsNorm") == 1 and "Unary" in ops
    check_module(Fn(fn, randn(16)), (randn(3, 16),))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("rows,size", [(1, 1024), (16, 128), (3, 2560), (2, 12288), (2, 100)])
def test_llama_rms_norm_row_sizes(dtype, rows, size):
    """On cuda: rows up to 1024 16-byte vectors take the one-vector-per-thread kernel, longer or
    unaligned rows the generic one; both round as eager does."""
    check_module(_llama_rms_norm(size, dtype), (randn(rows, size, dtype=dtype),))
