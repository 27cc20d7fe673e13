import pytest
import torch
import torch.nn.functional as F

from parity import Fn, check_module, randn
from test_norm import instruction_ops

FLOATS = [torch.float32, torch.float16, torch.bfloat16]


def qkv(batch=2, heads=4, kv_heads=4, queries=5, keys=5, dim=16, value_dim=None, dtype=torch.float32):
    return (randn(batch, heads, queries, dim, dtype=dtype), randn(batch, kv_heads, keys, dim, dtype=dtype),
            randn(batch, kv_heads, keys, value_dim or dim, dtype=dtype))


@pytest.mark.parametrize("dtype", FLOATS)
def test_plain(dtype):
    check_module(Fn(F.scaled_dot_product_attention), qkv(keys=7, value_dim=12, dtype=dtype))


@pytest.mark.parametrize("dtype", FLOATS)
def test_causal(dtype):
    check_module(Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)), qkv(dtype=dtype))


@pytest.mark.parametrize("queries,keys", [(3, 7), (7, 3)])
def test_causal_with_fewer_or_more_queries_than_keys(queries, keys):
    """torch's is_causal is top-left aligned when L != S; etgpu must match it."""
    check_module(Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
                 qkv(queries=queries, keys=keys))


@pytest.mark.parametrize("dtype", FLOATS)
def test_bool_mask(dtype):
    mask = torch.rand(2, 1, 5, 7) > 0.4
    mask[..., 0] = True
    mask[1, 0, 2] = False  # a fully masked row: torch gives zeros
    # torch's own half-precision CUDA kernels do not give zeros for that row (measured on the
    # H200: rel-err 0.67 against its CPU result), so half precision is compared with CPU eager.
    check_module(Fn(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)),
                 (*qkv(keys=7, dtype=dtype), mask), compare_torch_cuda=dtype == torch.float32)


@pytest.mark.parametrize("dtype", FLOATS)
def test_float_mask(dtype):
    mask = randn(5, 7).to(dtype)
    mask[1, 3:] = -float("inf")
    check_module(Fn(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m)),
                 (*qkv(keys=7, dtype=dtype), mask))


def test_scale_and_3d_operands():
    check_module(Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, scale=0.3)),
                 (randn(3, 5, 8), randn(3, 6, 8), randn(3, 6, 4)))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("causal", [False, True])
def test_gqa(dtype, causal):
    check_module(Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)),
                 qkv(heads=8, kv_heads=2, dtype=dtype))


def test_gqa_by_repeat_interleave():
    def fn(q, k, v):
        k, v = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    check_module(Fn(fn), qkv(heads=4, kv_heads=2))


@pytest.mark.parametrize("causal", [False, True])
def test_dynamic_sequence(causal):
    seq = torch.export.Dim("seq", max=24)
    shapes = ({2: seq}, {2: seq}, {2: seq})

    def fn(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)

    def case(n):
        return qkv(batch=1, heads=4, kv_heads=2, queries=n, keys=n)

    check_module(Fn(fn), case(6), dynamic_shapes=shapes, run_inputs_list=[case(1), case(13), case(24)])


def test_dynamic_queries_with_fixed_keys_and_mask():
    seq = torch.export.Dim("seq", max=16)

    def fn(q, k, v, m):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=m)

    def case(n):
        return (*qkv(batch=1, queries=n, keys=9), torch.rand(1, 1, n, 9) > 0.3)

    check_module(Fn(fn), case(4), dynamic_shapes=({2: seq}, None, None, {2: seq}),
                 run_inputs_list=[case(1), case(16)])


def _position_mask(positions, keys):
    return torch.arange(keys).unsqueeze(0) <= positions.unsqueeze(1)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("heads,kv_heads,queries,dim", [(16, 8, 1, 128), (32, 8, 1, 64), (8, 1, 1, 64),
                                                        (4, 4, 3, 32), (8, 2, 8, 128), (64, 4, 2, 16),
                                                        (8, 4, 1, 256)])
def test_decode_over_static_cache(dtype, heads, kv_heads, queries, dim):
    """A KV-cache step: few queries, GQA, a position mask over a cache longer than the prefix.
    On cuda this is the split-KV decode kernel (its masked-tail skipping and row blocking)."""
    keys = 300  # not a multiple of the kernel's 64-key tiles
    positions = torch.arange(queries) + 150
    q, k, v = qkv(batch=1, heads=heads, kv_heads=kv_heads, queries=queries, keys=keys, dim=dim, dtype=dtype)
    check_module(Fn(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m, enable_gqa=True)),
                 (q, k, v, _position_mask(positions, keys)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("position", [0, 63, 64, 130, 700, 1021])
@pytest.mark.parametrize("heads,kv_heads,queries,dim", [(16, 8, 1, 128), (32, 8, 3, 64)])
def test_decode_position_in_long_cache(dtype, position, heads, kv_heads, queries, dim):
    """A long static cache at positions from its first key to its last: on cuda the decode
    kernel's splits from one holding every seen key to all of them holding some, and its merge."""
    keys = 1024
    q, k, v = qkv(batch=1, heads=heads, kv_heads=kv_heads, queries=queries, keys=keys, dim=dim, dtype=dtype)
    check_module(Fn(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m, enable_gqa=True)),
                 (q, k, v, _position_mask(torch.arange(queries) + position, keys)))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_scattered_per_head_mask(dtype):
    """A per-batch, per-head bool mask of scattered keys, its last true entry different in every
    row: each head's splits see different keys."""
    batch, heads, queries, keys = 2, 8, 2, 512
    q, k, v = qkv(batch=batch, heads=heads, kv_heads=2, queries=queries, keys=keys, dim=64, dtype=dtype)
    generator = torch.Generator().manual_seed(3)
    mask = torch.rand(batch, heads, queries, keys, generator=generator) < 0.05
    last = torch.randint(1, keys, (batch, heads, queries), generator=generator)
    mask &= torch.arange(keys) <= last.unsqueeze(-1)
    mask[..., 0] = True
    check_module(Fn(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m, enable_gqa=True)),
                 (q, k, v, mask))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_decode_long_cache_float_mask(dtype):
    """Many splits (several 256-key chunks per split on a small grid) and an additive mask."""
    q, k, v = qkv(batch=2, heads=4, kv_heads=2, queries=2, keys=4100, dim=64, dtype=dtype)
    mask = randn(2, 4100).to(dtype)
    mask[0, 3000:] = -float("inf")
    check_module(Fn(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m, enable_gqa=True)),
                 (q, k, v, mask))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("dim", [64, 128])
def test_prefill_tensor_core_shapes(dtype, dim):
    """On cuda: the tensor-core prefill kernel (fp16/bf16, E in {64, 128}, L > 8): causal GQA with
    ragged 64-row/64-key tiles, a bool mask over a longer cache, a plain float-mask case, GQA group
    4 with ragged tiles, and a bottom-right bool mask with a fully masked row."""
    causal = Fn(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True))
    check_module(causal, qkv(batch=2, heads=4, kv_heads=2, queries=100, keys=100, dim=dim, dtype=dtype))
    mask = _position_mask(torch.arange(70) + 60, 200)
    masked = Fn(lambda q, k, v, m: F.scaled_dot_product_attention(q, k, v, attn_mask=m, enable_gqa=True))
    check_module(masked, (*qkv(batch=1, heads=2, kv_heads=1, queries=70, keys=200, dim=dim, dtype=dtype), mask))
    additive = randn(1, 1, 9, 130).to(dtype)
    check_module(masked, (*qkv(batch=1, heads=3, kv_heads=3, queries=9, keys=130, dim=dim, dtype=dtype), additive))
    # GQA group 4 with L a multiple of neither 16 nor 64 (ragged last query and key tiles, causal
    # diagonal crossing warps).
    check_module(causal, qkv(batch=1, heads=8, kv_heads=2, queries=137, keys=137, dim=dim, dtype=dtype))
    # A bottom-right causal bool mask over a longer cache (S > L, tiles wholly visible before the
    # diagonal) with one fully masked row, which must give zeros; torch's half CUDA kernels do not
    # (see test_bool_mask), so only eager CPU is compared.
    queries, keys = 75, 203
    bottom_right = _position_mask(torch.arange(queries) + keys - queries, keys)
    bottom_right[40] = False
    check_module(masked, (*qkv(batch=1, heads=8, kv_heads=2, queries=queries, keys=keys, dim=dim, dtype=dtype),
                          bottom_right), compare_torch_cuda=False)


# ---- the output's head transpose stored by the kernels (Sdpa out_seq_major) --------------------

def _attention_tail(extra_reader=False, **kwargs):
    """transformers' attention output: sdpa(...).transpose(1, 2).reshape(B, L, H * Ev), which the
    seq_major pass turns into one Sdpa storing seq-major rows (no Permute). `extra_reader` also
    returns the attention's own result, which then keeps the transpose a copy of its own."""
    def fn(q, k, v, *mask):
        out = F.scaled_dot_product_attention(q, k, v, *mask, enable_gqa=True, **kwargs)
        tail = out.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)
        return (tail, out * 2) if extra_reader else tail

    return Fn(fn)


# Each case reaches one CUDA path: the decode kernel (L <= 8; splits and its last-block merge over
# long caches, several row blocks for GQA x L > 8 rows), the tensor-core prefill (fp16/bf16, E 64
# or 128, L > 8), and the generic kernel (other head dims; split with its merge kernel over a
# long cache).
SEQ_MAJOR_CASES = {
    "decode_one_query": dict(heads=8, kv_heads=2, queries=1, keys=300, dim=64),
    "decode_row_blocks": dict(heads=8, kv_heads=2, queries=3, keys=300, dim=32),
    "prefill": dict(heads=4, kv_heads=2, queries=100, keys=100, dim=64),
    "generic_split": dict(heads=4, kv_heads=2, queries=9, keys=300, dim=16, value_dim=8),
    "small_batched": dict(batch=2, heads=4, kv_heads=4, queries=5, keys=7, dim=16, value_dim=12),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", sorted(SEQ_MAJOR_CASES))
def test_seq_major_output_with_position_mask(dtype, case):
    shape = SEQ_MAJOR_CASES[case]
    q, k, v = qkv(dtype=dtype, **shape)
    queries, keys = shape["queries"], shape["keys"]
    # A cache's unwritten tail of up to 10 slots; every row sees at least one key.
    mask = _position_mask(torch.arange(queries) + max(keys - queries - 10, 0), keys)
    module = _attention_tail()
    assert "Permute" not in instruction_ops(module, (q, k, v, mask))
    check_module(module, (q, k, v, mask))


@pytest.mark.parametrize("dtype", FLOATS)
def test_seq_major_output_causal(dtype):
    module = _attention_tail(is_causal=True)
    for shape in (dict(queries=5, keys=5), dict(queries=100, keys=100, dim=64)):
        inputs = qkv(batch=1, heads=4, kv_heads=2, dtype=dtype, **shape)
        assert "Permute" not in instruction_ops(module, inputs)
        check_module(module, inputs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_seq_major_output_dynamic_queries(dtype):
    """One program from a single decode row to a prefill: the decode, prefill and generic paths."""
    seq = torch.export.Dim("seq", max=80)

    def case(n):
        return (*qkv(batch=1, heads=4, kv_heads=2, queries=n, keys=96, dim=64, dtype=dtype),
                _position_mask(torch.arange(n) + 96 - n, 96))

    check_module(_attention_tail(), case(4), dynamic_shapes=({2: seq}, None, None, {0: seq}),
                 run_inputs_list=[case(1), case(9), case(80)])


def test_seq_major_output_needs_the_transpose_as_only_reader():
    inputs = qkv(heads=4, kv_heads=2, queries=5, keys=7)
    assert instruction_ops(_attention_tail(extra_reader=True), inputs).count("Permute") == 1
    check_module(_attention_tail(extra_reader=True), inputs)
