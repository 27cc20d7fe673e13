import pytest
import torch

from parity import Fn, check_module, randn

FLOATS = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", FLOATS)
def test_view_reshape_flatten(dtype):
    def fn(x):
        return (x.view(6, 10) * 2, x.reshape(-1, 5) + 1, torch.flatten(x, 1) - 1, torch.flatten(x) * 3)

    check_module(Fn(fn), (randn(2, 3, 10, dtype=dtype),))


@pytest.mark.parametrize("dtype", FLOATS)
def test_permute_transpose_t(dtype):
    def fn(x, m):
        return x.permute(2, 0, 1), x.permute(-1, -3, -2), x.transpose(0, 2), x.transpose(-1, 1), m.t()

    check_module(Fn(fn), (randn(2, 3, 4, dtype=dtype), randn(3, 5, dtype=dtype)))


@pytest.mark.parametrize("dtype", FLOATS)
def test_expand(dtype):
    check_module(Fn(lambda x: (x.expand(4, 3, 5), x.expand(2, -1, 5) * 1)), (randn(3, 1, dtype=dtype),))


def test_squeeze_unsqueeze():
    def fn(x):
        return (x.squeeze(1), x.squeeze(), x.squeeze(-1), x.unsqueeze(0), x.unsqueeze(-1), x.unsqueeze(2),
                torch.squeeze(x, (1, 3)))

    check_module(Fn(fn), (randn(3, 1, 4, 1),))


@pytest.mark.parametrize("dtype", FLOATS)
def test_slice(dtype):
    def fn(x):
        return (x[1:3], x[:, 2:], x[:, -3:], x[:, -5:-1], x[..., ::2], x[:, 1::3], x[-2:, :, 1:4:2],
                x[:, 10:], x[:, :100], x[:, -100:2])

    check_module(Fn(fn), (randn(4, 7, 5, dtype=dtype),))


@pytest.mark.parametrize("dtype", FLOATS)
def test_select(dtype):
    check_module(Fn(lambda x: (x[1], x[:, -1], x[..., 0], x[-4], x.select(1, -2))), (randn(4, 5, 3, dtype=dtype),))


@pytest.mark.parametrize("dtype", FLOATS + [torch.int64])
def test_cat(dtype):
    def make(*shape):
        return randn(*shape, dtype=dtype) if dtype.is_floating_point else torch.randint(-5, 5, shape)

    def fn(a, b, c):
        return torch.cat([a, b], dim=1), torch.cat([a, a], dim=-1), torch.cat([a, c]), torch.cat([a])

    check_module(Fn(fn), (make(2, 3, 4), make(2, 2, 4), make(1, 3, 4)))


def test_cat_skips_empty_legacy_operand():
    check_module(Fn(lambda a, b: torch.cat([a, torch.zeros(0), b])), (randn(2, 3), randn(1, 3)))


@pytest.mark.parametrize("dtype", FLOATS)
def test_split_chunk(dtype):
    def fn(x):
        a, b, c = torch.split(x, [1, 3, 2], dim=1)
        d, e = torch.chunk(x, 2, dim=-1)
        f = torch.split(x, 4, dim=1)
        return a, b * 2, c, d, e, f[0], f[1]

    check_module(Fn(fn), (randn(3, 6, 8, dtype=dtype),))


@pytest.mark.parametrize("dtype", FLOATS)
def test_clone_contiguous(dtype):
    check_module(Fn(lambda x: (x.clone(), x.transpose(0, 1).contiguous(), x.clone() + 1)), (randn(3, 4, dtype=dtype),))


def test_dynamic_views():
    """A [1, T, 64] hidden state through the moves an attention block makes."""

    def fn(x):
        t = x.shape[1]
        heads = x.view(1, t, 4, 16).transpose(1, 2)
        first, second = heads[..., :8], heads[..., 8:]
        rotated = torch.cat((-second, first), dim=-1)
        last = x[:, -1:, :]
        return rotated.transpose(1, 2).reshape(1, t, 64), last, x[:, 1:, :], x[0, -1]

    seq = torch.export.Dim("seq", min=3, max=32)
    check_module(Fn(fn), (randn(1, 5, 64),), dynamic_shapes=({1: seq},),
                 run_inputs_list=[(randn(1, 3, 64),), (randn(1, 32, 64),)])
