import pytest
import torch

from parity import Fn, assert_close, check_module, randn, run_etgpu

FLOATS = [torch.float32, torch.float16, torch.bfloat16]

# Each entry: a reduction written the way models write it; dims cover negative, multiple,
# keepdim and all-dims forms.
FLOAT_REDUCTIONS = {
    "sum_all": lambda x: x.sum(),
    "sum_last": lambda x: x.sum(-1),
    "sum_multi_keepdim": lambda x: x.sum((0, 2), keepdim=True),
    "sum_to_fp32": lambda x: x.sum(1, dtype=torch.float32),
    "mean_all": lambda x: x.mean(),
    "mean_neg_keepdim": lambda x: x.mean(-2, keepdim=True),
    "mean_multi": lambda x: x.mean((1, -1)),
    "amax_last": lambda x: x.amax(-1),
    "amin_multi_keepdim": lambda x: x.amin((0, 2), keepdim=True),
    "max_all": lambda x: x.max(),
    "min_all": lambda x: x.min(),
    "prod_dim": lambda x: x.prod(1),
    # torch's own half-precision all-reduce product drifts ~1% over a hundred factors (the kernel
    # accumulates in double; torch rounds every partial product), so this one multiplies 7 factors.
    "prod_all": lambda x: (x[0, 0] * 0.3 + 1).prod(),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(FLOAT_REDUCTIONS))
def test_float_reductions(name, dtype):
    check_module(Fn(FLOAT_REDUCTIONS[name]), (randn(3, 5, 7, dtype=dtype),))


ARG_REDUCTIONS = {
    "argmax_all": lambda x: x.argmax(),
    "argmax_dim": lambda x: x.argmax(1),
    "argmin_neg_keepdim": lambda x: x.argmin(-1, keepdim=True),
    "argmin_all_keepdim": lambda x: x.argmin(keepdim=True),
    "max_dim": lambda x: tuple(x.max(1)),
    "min_dim_neg_keepdim": lambda x: tuple(x.min(-1, keepdim=True)),
    "max_dim_values_only": lambda x: x.max(0).values * 2,
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name", sorted(ARG_REDUCTIONS))
def test_arg_reductions(name, dtype):
    check_module(Fn(ARG_REDUCTIONS[name]), (randn(4, 6, 5, dtype=dtype),))


def test_arg_reductions_pick_first_of_ties():
    """Small integers make ties common: torch returns the first extreme's index."""
    x = torch.randint(-2, 3, (5, 8, 6)).float()
    check_module(Fn(lambda t: (t.argmax(1), t.argmin(-1), t.argmax(), *t.max(2), *t.min(0))), (x,))


def test_nan_propagation():
    x = randn(4, 9)
    x[1, 3] = float("nan")
    x[2, 0] = float("nan")
    x[2, 5] = float("nan")
    check_module(Fn(lambda t: (t.amax(-1), t.amin(1), t.argmax(1), t.argmin(-1), *t.max(1), t.sum(1))), (x,))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64, torch.bool, torch.int8])
def test_integer_reductions(dtype):
    """Sums and products of integers and bools are int64, as in torch."""
    x = torch.randint(-4, 5, (3, 4, 5)).to(dtype) if dtype != torch.bool else torch.rand(3, 4, 5) > 0.5
    def fn(t):
        results = (t.sum(), t.sum(-1), t.sum((0, 1), keepdim=True), t.prod(1), t.amax(-1), t.amin((0, 2)))
        if dtype != torch.bool:  # torch has no argmax (nor max.dim) for bool
            results += (t.argmax(1), *t.max(-1))
        return results

    check_module(Fn(fn), (x,))


@pytest.mark.parametrize("dtype", FLOATS + [torch.int64])
def test_any_all(dtype):
    x = torch.randint(-1, 2, (4, 3, 6)).to(dtype)
    check_module(Fn(lambda t: ((t > 0).any(), (t > 0).any(1), (t > 0).any((0, 2), keepdim=True),
                               (t > 0).all(), (t >= 0).all(-1), (t >= 0).all((0, 1)), t.any(-1), t.all(0))), (x,))


@pytest.mark.parametrize("dtype", FLOATS)
def test_dynamic_length(dtype):
    """Reductions over and across a dynamic sequence dim, at several lengths."""
    def fn(x):
        return x.sum(1), x.mean(-1, keepdim=True), x.amax(1), x.argmax(1), x.max(-1).indices, x.prod(-1)

    seq = torch.export.Dim("seq", max=32)
    check_module(Fn(fn), (randn(2, 9, 6, dtype=dtype),), dynamic_shapes=({1: seq},),
                 run_inputs_list=[(randn(2, 17, 6, dtype=dtype),), (randn(2, 2, 6, dtype=dtype),)])


@pytest.mark.parametrize("dtype", FLOATS)
def test_var_std(dtype):
    def fn(x):
        return x.var(-1), x.std(1, keepdim=True), x.var((0, 2), unbiased=False), x.var()

    check_module(Fn(fn), (randn(3, 6, 8, dtype=dtype) + 2,))


@pytest.mark.parametrize("dtype", FLOATS)
def test_var_mean(dtype):
    # .etgpu path only: ExecuTorch's edge verifier rejects aten.var_mean.correction (not core
    # ATen) before any partitioner sees it.
    x = randn(3, 6, 8, dtype=dtype) + 2
    module = Fn(lambda t: torch.var_mean(t, -1, keepdim=True))
    for actual, expected in zip(run_etgpu(module, (x,)), module(x)):
        assert_close(actual, expected)
