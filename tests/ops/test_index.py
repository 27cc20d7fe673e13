import pytest
import torch

import etgpu
from parity import TEST_DEVICE, Fn, check_module, export, randn
from test_norm import instruction_ops

FLOATS = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
def test_index_select(dtype, index_dtype):
    index = torch.tensor([2, 0, 4, 3, 2], dtype=index_dtype)  # repeats; torch rejects negatives here
    check_module(Fn(lambda x, i: (torch.index_select(x, 1, i), torch.index_select(x, -1, i),
                                  torch.index_select(x, 0, i[:2]))),
                 (randn(4, 5, 6, dtype=dtype), index))


def test_index_select_scalar_index():
    check_module(Fn(lambda x, i: torch.index_select(x, 1, i)), (randn(3, 4), torch.tensor(2)))


@pytest.mark.parametrize("dtype", FLOATS)
def test_embedding(dtype):
    weight = randn(10, 8, dtype=dtype)
    tokens = torch.tensor([[1, 9, 0], [4, 4, 8]])
    check_module(Fn(lambda t, w: torch.nn.functional.embedding(t, w), weight), (tokens,))


def test_embedding_module_dynamic_tokens():
    module = torch.nn.Embedding(32, 16)
    seq = torch.export.Dim("seq", max=20)
    check_module(module, (torch.randint(0, 32, (1, 7)),), dynamic_shapes=({1: seq},),
                 run_inputs_list=[(torch.randint(0, 32, (1, 1)),), (torch.randint(0, 32, (1, 20)),)])


@pytest.mark.parametrize("dtype", FLOATS + [torch.int64])
def test_index_tensor(dtype):
    x = randn(5, 6, 3, dtype=dtype) if dtype.is_floating_point else torch.randint(-9, 9, (5, 6, 3))
    idx = torch.tensor([[2, 0], [-1, 1]])  # advanced indexing wraps negative indices
    check_module(Fn(lambda t, i: (t[i], t[:, i], t[:, :, i[0, :1]])), (x, idx))


def test_index_tensor_two_indices_unsupported():
    exported = export(Fn(lambda t, i: t[i, i]), (randn(5, 5), torch.tensor([0, 1])))
    with pytest.raises(Exception, match="index tensors"):
        etgpu.compile(exported)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_gather(dtype, dim):
    x = randn(4, 5, 6, dtype=dtype)
    shape = [3, 4, 5]
    shape[dim] = 7  # index may be longer than x along dim and shorter elsewhere
    size = x.shape[dim]
    index = torch.randint(0, size, shape)
    check_module(Fn(lambda t, i: torch.gather(t, dim, i)), (x, index))


def test_gather_topk_style_dynamic():
    def fn(logits, picks):
        return torch.gather(logits, -1, picks.unsqueeze(-1)).squeeze(-1)

    seq = torch.export.Dim("seq", max=12)
    check_module(Fn(fn), (randn(6, 50), torch.randint(0, 50, (6,), dtype=torch.int32)),
                 dynamic_shapes=({0: seq}, {0: seq}),
                 run_inputs_list=[(randn(1, 50), torch.randint(0, 50, (1,), dtype=torch.int32)),
                                  (randn(12, 50), torch.randint(0, 50, (12,), dtype=torch.int32))])


# Rows of 32, 8, 12, 6, 5 and 4 bytes: the CUDA kernel moves them in 16-, 8-, 4-, 2-, 1- and
# 4-byte units (the widest the row and both pointers allow).
@pytest.mark.parametrize("dtype,shape,dim", [
    (torch.bfloat16, (1, 2, 12, 16), 2), (torch.bfloat16, (2, 6, 4), 1), (torch.float32, (2, 6, 3), 1),
    (torch.float16, (2, 6, 3), -2), (torch.uint8, (3, 6, 5), 1), (torch.int32, (3, 6), -1),
])
def test_index_copy(dtype, shape, dim):
    def values(*size):
        return randn(*size, dtype=dtype) if dtype.is_floating_point else torch.randint(0, 100, size).to(dtype)

    rows = list(shape)
    rows[dim] = 2
    cases = [(values(*shape), values(*rows), torch.tensor(pos)) for pos in ([0, 1], [5, 2], [3, 4])]
    check_module(Fn(lambda cache, x, pos: cache.index_copy(dim, pos, x)), cases[0], run_inputs_list=cases[1:])


@pytest.mark.parametrize("fn,bad", [
    (lambda x, i: torch.index_select(x, 0, i), torch.tensor([0, 4])),
    (lambda x, i: torch.index_select(x, 0, i), torch.tensor([-5, 0])),
    (lambda x, i: torch.nn.functional.embedding(i, x), torch.tensor([1, 7])),
    (lambda x, i: torch.gather(x, 1, i.view(1, -1).expand(4, -1)), torch.tensor([0, 3])),
])
def test_out_of_range_index_is_an_error(fn, bad):
    x = randn(4, 3)
    model = etgpu.Model(etgpu.compile(export(Fn(fn), (x, torch.tensor([0, 1])))), device="cpu")
    with pytest.raises(Exception, match=r"index -?\d+ at position \d+ is out of range"):
        model.run([x, bad])


# ---- the value write of a KV cache, its head transpose absorbed (IndexCopy x_seq_major) -----------

class _ValueCache(torch.nn.Module):
    """A decode layer's value path: v [B, L, H, D] (the projection's view) transposed to
    [B, H, L, D] and written into a static cache at `pos`; the cache is read afterwards. `keep`
    also returns the transposed v, another reader, which keeps the transpose a copy of its own."""

    def __init__(self, dtype, batch=1, heads=2, slots=12, dim=16, keep=False):
        super().__init__()
        self.keep = keep
        self.register_buffer("cache", randn(batch, heads, slots, dim, dtype=dtype))

    def forward(self, v, pos):
        rows = v.transpose(1, 2)
        self.cache.index_copy_(2, pos, rows)
        read = self.cache * 2
        return (read, rows * 3) if self.keep else read


def _value_steps(dtype, batch, heads, dim):
    """A prefill of 3 positions, then steps of 1 and 2 (not always adjacent)."""
    return [(randn(batch, len(pos), heads, dim, dtype=dtype), torch.tensor(pos)) for pos in ([0, 1, 2], [3], [9, 5])]


# Rows of 32, 12 and 10 bytes: the CUDA kernel moves them in 16-, 4- and 2-byte units.
@pytest.mark.parametrize("dtype,batch,heads,dim", [
    (torch.bfloat16, 1, 2, 16), (torch.float32, 2, 3, 3), (torch.float16, 2, 4, 5),
])
def test_seq_major_value_write(dtype, batch, heads, dim):
    """One IndexCopy reading v in its [B, L, H, D] layout, no Permute; a dynamic step length."""
    steps = _value_steps(dtype, batch, heads, dim)
    module = _ValueCache(dtype, batch, heads, dim=dim)
    ops = instruction_ops(module, steps[0])
    assert "IndexCopy" in ops and "Permute" not in ops, ops
    seq = torch.export.Dim("seq", max=12)
    check_module(module, steps[0], dynamic_shapes=({1: seq}, {0: seq}), run_inputs_list=steps[1:])


def test_seq_major_value_write_needs_the_transpose_as_only_reader():
    steps = _value_steps(torch.float32, 1, 2, 16)
    assert instruction_ops(_ValueCache(torch.float32, keep=True), steps[0]).count("Permute") == 1
    check_module(_ValueCache(torch.float32, keep=True), steps[0],
                 run_inputs_list=[(randn(1, 3, 2, 16), torch.tensor([7, 4, 11]))])


def test_seq_major_value_write_past_the_cache_is_an_error():
    steps = _value_steps(torch.float32, 1, 2, 16)
    model = etgpu.Model(etgpu.compile(export(_ValueCache(torch.float32).eval(), steps[0])), device=TEST_DEVICE)
    with pytest.raises(etgpu.runtime.EtGpuError, match="outside|out of range"):
        model.run([steps[0][0], torch.tensor([3, 12, 4])])
    assert model.run(list(steps[0]))[0].shape == (1, 2, 12, 16)
