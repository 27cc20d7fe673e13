import pytest
import torch

from parity import Fn, check_module, randn

FLOATS = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("bias", [True, False])
def test_linear(dtype, bias):
    module = torch.nn.Linear(24, 10, bias=bias).to(dtype)
    check_module(module, (randn(2, 3, 24, dtype=dtype),))


@pytest.mark.parametrize("dtype", FLOATS)
def test_mm_bmm(dtype):
    check_module(Fn(lambda a, b, c, d: (torch.mm(a, b), torch.bmm(c, d))),
                 (randn(5, 7, dtype=dtype), randn(7, 3, dtype=dtype),
                  randn(4, 5, 6, dtype=dtype), randn(4, 6, 2, dtype=dtype)))


@pytest.mark.parametrize("dtype", FLOATS)
def test_addmm(dtype):
    check_module(Fn(lambda bias, a, b, row: (torch.addmm(bias, a, b), torch.addmm(row, a, b))),
                 (randn(5, 3, dtype=dtype), randn(5, 7, dtype=dtype), randn(7, 3, dtype=dtype),
                  randn(3, dtype=dtype)))


@pytest.mark.parametrize("dtype", FLOATS)
def test_matmul_broadcast_batch(dtype):
    def fn(a, b, c, w):
        return torch.matmul(a, b), torch.matmul(c, a), a @ w, torch.matmul(a.transpose(-1, -2), c.transpose(-1, -2))

    check_module(Fn(fn), (randn(2, 1, 4, 6, dtype=dtype), randn(3, 6, 5, dtype=dtype),
                          randn(1, 3, 7, 4, dtype=dtype), randn(6, 2, dtype=dtype)))


@pytest.mark.parametrize("dtype", FLOATS)
def test_linear_dynamic_tokens(dtype):
    module = torch.nn.Sequential(torch.nn.Linear(32, 48), torch.nn.SiLU(), torch.nn.Linear(48, 16, bias=False))
    module = module.to(dtype)
    tokens = torch.export.Dim("tokens", max=64)
    check_module(module, (randn(1, 9, 32, dtype=dtype),), dynamic_shapes=({1: tokens},),
                 run_inputs_list=[(randn(1, 1, 32, dtype=dtype),), (randn(1, 64, 32, dtype=dtype),)])


def test_attention_scores_dynamic():
    """q @ k^T and weights @ v with a dynamic sequence dim on both sides."""

    def fn(q, k, v):
        return torch.matmul(torch.matmul(q, k.transpose(-1, -2)) * 0.25, v)

    seq = torch.export.Dim("seq", max=16)
    shapes = ({2: seq}, {2: seq}, {2: seq})

    def case(n):
        return randn(1, 2, n, 8), randn(1, 2, n, 8), randn(1, 2, n, 8)

    check_module(Fn(fn), case(5), dynamic_shapes=shapes, run_inputs_list=[case(1), case(16)])


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("tokens,in_features,out_features,bias", [
    (1, 1024, 3000, False), (2, 512, 33, True), (3, 2048, 17, False), (4, 64, 1, True),
    (5, 256, 40, False), (8, 4096, 24, True), (1, 1028, 40, False)])
def test_decode_sized_linear(dtype, tokens, in_features, out_features, bias):
    """A few tokens through a linear layer: on cuda the GEMV kernel (M in {1, 2, 3, 4, 8}, K a
    multiple of one 16-byte vector, odd N), else cuBLASLt; a bias accumulates before rounding."""
    module = torch.nn.Linear(in_features, out_features, bias=bias)
    with torch.no_grad():
        module.weight.copy_(randn(out_features, in_features) / in_features ** 0.5)
    check_module(module.to(dtype), (randn(1, tokens, in_features, dtype=dtype),))


def test_empty_contraction_gives_bias_or_zeros():
    """K == 0: torch returns zeros (plus the bias); found by fuzz_payload as an empty-buffer read."""
    check_module(Fn(lambda a, b, bias: (a @ b, torch.addmm(bias, a, b))),
                 (randn(3, 0), randn(0, 4), randn(4)))
