import pytest
import torch

from parity import Fn, check_module, randn

FLOATS = [torch.float32, torch.float16, torch.bfloat16]

UNARY = {
    "neg": torch.neg, "abs": torch.abs, "exp": torch.exp, "relu": torch.relu, "silu": torch.nn.functional.silu,
    "sigmoid": torch.sigmoid, "tanh": torch.tanh, "gelu": torch.nn.functional.gelu,
    "gelu_tanh": lambda x: torch.nn.functional.gelu(x, approximate="tanh"),
    "sqrt": lambda x: torch.sqrt(x.abs()), "rsqrt": lambda x: torch.rsqrt(x.abs()),
    "log": lambda x: torch.log(x.abs()), "clamp": lambda x: torch.clamp(x, -0.5, 0.7),
    "clamp_min": lambda x: torch.clamp(x, min=-0.2), "pow": lambda x: torch.pow(x, 3),
    "sin": torch.sin, "cos": torch.cos, "reciprocal": torch.reciprocal,
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name, dtype):
    check_module(Fn(UNARY[name]), (randn(3, 17, dtype=dtype),))


BINARY = {
    "add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
    "maximum": torch.maximum, "minimum": torch.minimum,
    "add_alpha": lambda a, b: torch.add(a, b, alpha=2), "pow": lambda a, b: torch.pow(a.abs(), b),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcast(name, dtype):
    check_module(Fn(BINARY[name]), (randn(4, 1, 5, dtype=dtype), randn(3, 1, dtype=dtype)))


@pytest.mark.parametrize("dtype", FLOATS)
def test_binary_scalars(dtype):
    check_module(Fn(lambda x: (x + 2.5, 3.0 - x, x * -1.5, 2.0 / x, x - 1)), (randn(2, 9, dtype=dtype),))


@pytest.mark.parametrize("op", [torch.eq, torch.ne, torch.lt, torch.le, torch.gt, torch.ge])
def test_comparisons(op):
    a = torch.randint(-3, 3, (4, 6)).float()
    b = torch.randint(-3, 3, (6,)).float()
    check_module(Fn(op), (a, b))


def test_logical_not_and_where():
    def fn(x, y):
        mask = torch.logical_not(x > 0)
        return torch.where(mask, x, y), torch.where(mask, x, 0.0)

    check_module(Fn(fn), (randn(5, 7), randn(7)))


@pytest.mark.parametrize("src,dst", [(torch.float32, torch.bfloat16), (torch.float32, torch.float16),
                                     (torch.bfloat16, torch.float32), (torch.float32, torch.int64),
                                     (torch.int64, torch.float32), (torch.int32, torch.int64),
                                     (torch.float32, torch.bool), (torch.bool, torch.float32),
                                     (torch.int64, torch.int32)])
def test_casts(src, dst):
    x = (randn(4, 8) * 10).to(src) if src.is_floating_point else torch.randint(-5, 5, (4, 8)).to(src)
    check_module(Fn(lambda t: t.to(dst)), (x,))


def test_integer_arithmetic():
    a = torch.randint(-20, 20, (3, 5))
    b = torch.randint(1, 6, (5,))
    check_module(Fn(lambda x, y: (x + y, x * y, x - 3, torch.div(x, y, rounding_mode="floor"),
                                  torch.remainder(x, y))), (a, b))


def test_full_and_arange():
    def fn(x):
        n = x.shape[0]
        return (x + torch.ones(n, 4), torch.zeros(n, 4) + x, torch.full((n, 4), 2.5) * x,
                torch.arange(n).float().unsqueeze(1) + x, torch.arange(2, 2 + 3 * n, 3))

    seq = torch.export.Dim("seq", max=16)
    check_module(Fn(fn), (randn(5, 4),), dynamic_shapes=({0: seq},), run_inputs_list=[(randn(9, 4),), (randn(1, 4),)])
