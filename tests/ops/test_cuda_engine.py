"""The CUDA engine against the CPU engine, PyTorch eager and PyTorch CUDA eager.

Families whose lowering rules exist in this checkout (elementwise, matmul, movement) go through
ordinary ATen ops and are compared with the CPU engine as well. Families whose rules (or CPU
kernels) are written elsewhere (reduce, softmax, norms, index, sdpa) are reached through test-only
custom ops lowered straight to their IR instruction, and compared with PyTorch (CPU eager in
float64 and CUDA eager). Every test here needs a GPU and skips without one."""

import math
import os
from typing import List, Optional

import pytest
import torch

import etgpu
from etgpu.ir.ReduceOp import ReduceOp
from etgpu.lower.registry import lowering, supported_names
from parity import TOLERANCE, Fn, assert_close, export, randn

HAVE_GPU = torch.cuda.is_available()
pytestmark = pytest.mark.skipif(not HAVE_GPU, reason="needs a CUDA GPU (none on this machine)")

FLOATS = [torch.float32, torch.float16, torch.bfloat16]


def _cuda_model(module, inputs, dynamic_shapes=None):
    data = etgpu.compile(export(module.eval(), inputs, dynamic_shapes))
    return data, etgpu.Model(data, device="cuda")


def _compare_all(module, inputs, tol=None, with_cpu_engine=True, reference=None):
    """CUDA engine vs eager (or `reference`), vs torch CUDA eager, and vs the CPU engine."""
    data, model = _cuda_model(module, inputs)
    assert model.stats()["engine"] == "cuda"
    actual = model.run(list(inputs))
    with torch.no_grad():
        expected = reference(*inputs) if reference else module(*inputs)
        expected = expected if isinstance(expected, (tuple, list)) else (expected,)
        # PyTorch's own CUDA kernels (for the custom-op families: the op's eager body on CUDA).
        on_gpu = module.to("cuda")(*[x.cuda() for x in inputs])
        module.to("cpu")
        on_gpu = on_gpu if isinstance(on_gpu, (tuple, list)) else (on_gpu,)
    for i, (a, e, g) in enumerate(zip(actual, expected, on_gpu)):
        assert_close(a, e.to(a.dtype) if reference else e, tol, what=f"output {i} vs eager")
        assert_close(a, g.cpu(), tol, what=f"output {i} vs torch cuda")
    if with_cpu_engine:
        for i, (a, c) in enumerate(zip(actual, etgpu.Model(data, device="cpu").run(list(inputs)))):
            assert_close(a, c, tol, what=f"output {i} vs cpu engine")
    return model


# ---- families lowered from ATen in this checkout ------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
def test_elementwise_chain(dtype):
    fn = lambda x, y: (torch.nn.functional.silu(x) * y + 1.5, torch.where(x > y, x, -y), torch.exp(x - y).sqrt(),
                       torch.nn.functional.gelu(x), (x * 3).to(torch.float32), torch.maximum(x, y))
    _compare_all(Fn(fn), (randn(4, 33, 65, dtype=dtype), randn(33, 1, dtype=dtype)))


def test_integer_and_mixed():
    a, b = torch.randint(-50, 50, (6, 7)), torch.randint(1, 9, (7,))
    f = randn(6, 7)
    fn = lambda x, y, z: (x // y, x % y, x * y - 3, (x > 0) & (y < 5), x + z, (z * 100).to(torch.int32))
    _compare_all(Fn(fn), (a, b, f))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("bias", [False, True])
def test_linear(dtype, bias):
    torch.manual_seed(1)
    layer = torch.nn.Linear(96, 80, bias=bias).to(dtype)
    _compare_all(layer, (randn(3, 5, 96, dtype=dtype),))


@pytest.mark.parametrize("dtype", FLOATS)
def test_batched_matmuls(dtype):
    fn = lambda a, b, c, d: (a @ b, torch.matmul(c, d), a @ b[0])
    _compare_all(Fn(fn), (randn(3, 17, 40, dtype=dtype), randn(3, 40, 24, dtype=dtype),
                          randn(2, 1, 9, 16, dtype=dtype), randn(3, 16, 12, dtype=dtype)))


def test_movement():
    fn = lambda x, y: (x.permute(2, 0, 1), x.transpose(0, 1)[:, 1:5:2], x[:, 2], torch.cat([x, y], dim=1),
                       y[:, :1].expand(3, 4, 8), x.flatten(1).t().contiguous())
    _compare_all(Fn(fn), (randn(3, 6, 8), randn(3, 4, 8)))


def test_movement_bf16_and_ints():
    fn = lambda x, i: (x.permute(1, 0, 2), torch.cat([x, x], dim=-1)[..., 3:], i.t().contiguous(), i[1:, ::2])
    _compare_all(Fn(fn), (randn(5, 7, 9, dtype=torch.bfloat16), torch.randint(-9, 9, (6, 5))))


# ---- families reached through test-only custom ops ----------------------------------------------

def _ref_reduce(x, op: int, dims: List[int], keepdim: bool):
    d = dims if dims else list(range(x.dim()))
    if op == ReduceOp.Sum: return x.sum(d, keepdim=keepdim)
    if op == ReduceOp.Mean: return x.mean(d, keepdim=keepdim)
    if op == ReduceOp.Amax: return x.amax(d, keepdim=keepdim)
    if op == ReduceOp.Amin: return x.amin(d, keepdim=keepdim)
    if op == ReduceOp.Prod: return x.prod(d[0], keepdim=keepdim)
    if op == ReduceOp.Argmax: return x.argmax(d[0], keepdim=keepdim)
    if op == ReduceOp.Argmin: return x.argmin(d[0], keepdim=keepdim)
    if op == ReduceOp.Any: return x.any(d[0], keepdim=keepdim)
    return x.all(d[0], keepdim=keepdim)


def _ref_sdpa(q, k, v, mask: Optional[torch.Tensor], scale: float, causal: bool):
    """Reference in float64: bottom-right causal alignment, zeros for rows that see no key."""
    dtype = q.dtype
    q, k, v = q.double(), k.double(), v.double()
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    scale = scale or 1.0 / math.sqrt(q.shape[-1])
    s = q @ k.transpose(-1, -2) * scale
    L, S = q.shape[2], k.shape[2]
    keep = torch.ones(L, S, dtype=torch.bool, device=q.device)
    if causal:
        keep = torch.arange(S, device=q.device)[None, :] <= torch.arange(L, device=q.device)[:, None] + S - L
    if mask is not None and mask.dtype == torch.bool:
        keep = keep & mask
    elif mask is not None:
        s = s + mask.double()
    s = s.masked_fill(~keep, float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)
    return (p @ v).to(dtype)


def _define_test_ops():
    """Custom ops + lowering rules, registered once (also when another family's rules exist)."""
    if "etgpu_cuda_test.reduce.default" in supported_names():
        return

    def op(name, fn, schema_fake=None):
        custom = torch.library.custom_op(f"etgpu_cuda_test::{name}", mutates_args=())(fn)
        custom.register_fake(schema_fake or fn)
        return custom

    def reduce(x: torch.Tensor, op: int, dims: List[int], keepdim: bool) -> torch.Tensor:
        return _ref_reduce(x, op, dims, keepdim).clone()

    def softmax(x: torch.Tensor, dim: int, log: bool) -> torch.Tensor:
        return torch.log_softmax(x.float(), dim).to(x.dtype) if log else torch.softmax(x.float(), dim).to(x.dtype)

    def layer_norm(x: torch.Tensor, w: Optional[torch.Tensor], b: Optional[torch.Tensor], nd: int,
                   eps: float) -> torch.Tensor:
        return torch.nn.functional.layer_norm(x.float(), x.shape[-nd:], None if w is None else w.float(),
                                              None if b is None else b.float(), eps).to(x.dtype)

    def rms_norm(x: torch.Tensor, w: Optional[torch.Tensor], eps: float, unit_offset: bool) -> torch.Tensor:
        y = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)
        if w is not None:
            y = y * (1 + w.float() if unit_offset else w.float())
        return y.to(x.dtype)

    def index_select(x: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
        d = dim % x.dim()
        idx = torch.where(index < 0, index + x.shape[d], index)
        out = torch.index_select(x, d, idx.reshape(-1))
        return out.reshape(x.shape[:d] + index.shape + x.shape[d + 1:]).clone()

    def gather(x: torch.Tensor, index: torch.Tensor, dim: int) -> torch.Tensor:
        return torch.gather(x, dim, torch.where(index < 0, index + x.shape[dim], index))

    def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: Optional[torch.Tensor], scale: float,
             causal: bool) -> torch.Tensor:
        return _ref_sdpa(q, k, v, mask, scale, causal)

    for fn in (reduce, softmax, layer_norm, rms_norm, index_select, gather, sdpa):
        op(fn.__name__, fn)

    @lowering("etgpu_cuda_test.reduce.default")
    def _reduce(ctx, node):
        x, op_code, dims, keepdim = node.args
        ctx.emit("Reduce", op=op_code, x=ctx.input(x), out=ctx.output(node), dims=list(dims), keepdim=keepdim)

    @lowering("etgpu_cuda_test.softmax.default")
    def _softmax(ctx, node):
        x, dim, log = node.args
        ctx.emit("Softmax", x=ctx.input(x), out=ctx.output(node), dim=dim, log=log)

    @lowering("etgpu_cuda_test.layer_norm.default")
    def _layer_norm(ctx, node):
        x, w, b, nd, eps = node.args
        fields = {} if w is None else {"weight": ctx.input(w)}
        fields.update({} if b is None else {"bias": ctx.input(b)})
        ctx.emit("LayerNorm", x=ctx.input(x), out=ctx.output(node), eps=eps, normalized_ndim=nd, **fields)

    @lowering("etgpu_cuda_test.rms_norm.default")
    def _rms_norm(ctx, node):
        x, w, eps, unit_offset = node.args
        fields = {} if w is None else {"weight": ctx.input(w)}
        ctx.emit("RmsNorm", x=ctx.input(x), out=ctx.output(node), eps=eps, unit_offset=unit_offset, **fields)

    @lowering("etgpu_cuda_test.index_select.default")
    def _index_select(ctx, node):
        x, index, dim = node.args
        ctx.emit("IndexSelect", x=ctx.input(x), index=ctx.input(index), out=ctx.output(node), dim=dim)

    @lowering("etgpu_cuda_test.gather.default")
    def _gather(ctx, node):
        x, index, dim = node.args
        ctx.emit("Gather", x=ctx.input(x), index=ctx.input(index), out=ctx.output(node), dim=dim)

    @lowering("etgpu_cuda_test.sdpa.default")
    def _sdpa(ctx, node):
        q, k, v, mask, scale, causal = node.args
        fields = {} if mask is None else {"mask": ctx.input(mask)}
        ctx.emit("Sdpa", q=ctx.input(q), k=ctx.input(k), v=ctx.input(v), out=ctx.output(node), scale=scale,
                 causal=causal, **fields)


_define_test_ops()
T = torch.ops.etgpu_cuda_test


def _check_custom(fn, inputs, reference, tol=None):
    """CUDA engine vs the float64 reference on CPU, and vs the same reference run by torch on CUDA."""
    _compare_all(Fn(fn), inputs, tol=tol, with_cpu_engine=False, reference=reference)


REDUCTIONS = [("sum", ReduceOp.Sum, [1], False), ("sum_all", ReduceOp.Sum, [], False),
              ("mean_keep", ReduceOp.Mean, [-1], True), ("mean_outer", ReduceOp.Mean, [0, 2], False),
              ("amax", ReduceOp.Amax, [2], False), ("amin_outer", ReduceOp.Amin, [0], True),
              ("prod", ReduceOp.Prod, [2], False), ("argmax", ReduceOp.Argmax, [2], False),
              ("argmin_mid", ReduceOp.Argmin, [1], True), ("any", ReduceOp.Any, [2], False),
              ("all_outer", ReduceOp.All, [0], False)]


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name,op,dims,keepdim", REDUCTIONS, ids=[r[0] for r in REDUCTIONS])
def test_reduce(name, op, dims, keepdim, dtype):
    x = randn(5, 37, 300, dtype=dtype) if op != ReduceOp.Prod else (1 + 0.01 * randn(5, 37, 30)).to(dtype)
    if op in (ReduceOp.Any, ReduceOp.All):
        x = (torch.rand(5, 37, 300) > 0.02).to(dtype)
    ref = lambda t: _ref_reduce(t.double(), op, dims, keepdim).to(
        torch.int64 if op in (ReduceOp.Argmax, ReduceOp.Argmin) else torch.bool if op in (ReduceOp.Any, ReduceOp.All)
        else dtype)
    _check_custom(lambda t: T.reduce(t, op, dims, keepdim), (x,), ref)


def test_reduce_integers():
    x = torch.randint(-1000, 1000, (4, 64, 33))
    for op in (ReduceOp.Sum, ReduceOp.Amax, ReduceOp.Argmin):
        _check_custom(lambda t: T.reduce(t, op, [1], False), (x,), lambda t: _ref_reduce(t, op, [1], False))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim,log", [(-1, False), (-1, True), (1, False), (0, True)])
def test_softmax(dim, log, dtype):
    x = randn(6, 50, 2000, dtype=dtype) * 4
    ref = lambda t: (torch.log_softmax if log else torch.softmax)(t.double(), dim).to(dtype)
    _check_custom(lambda t: T.softmax(t, dim, log), (x,), ref)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("affine,nd", [(True, 1), (False, 1), (True, 2)])
def test_layer_norm(affine, nd, dtype):
    x = randn(4, 9, 768, dtype=dtype) + 3
    shape = x.shape[-nd:]
    if affine:
        inputs = (x, randn(*shape, dtype=dtype), randn(*shape, dtype=dtype))
        fn = lambda t, w, b: T.layer_norm(t, w, b, nd, 1e-5)
        ref = lambda t, w, b: torch.nn.functional.layer_norm(t.double(), shape, w.double(), b.double(), 1e-5).to(dtype)
    else:
        inputs = (x,)
        fn = lambda t: T.layer_norm(t, None, None, nd, 1e-5)
        ref = lambda t: torch.nn.functional.layer_norm(t.double(), shape, None, None, 1e-5).to(dtype)
    _check_custom(fn, inputs, ref)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("weight,unit_offset", [(True, False), (True, True), (False, False)])
def test_rms_norm(weight, unit_offset, dtype):
    x = randn(3, 7, 2048, dtype=dtype)
    inputs = (x, randn(2048, dtype=dtype)) if weight else (x,)

    def ref(t, *w):
        y = t.double() * torch.rsqrt(t.double().pow(2).mean(-1, keepdim=True) + 1e-6)
        return (y * (1 + w[0].double() if unit_offset else w[0].double()) if w else y).to(dtype)

    _check_custom(lambda t, *w: T.rms_norm(t, w[0] if w else None, 1e-6, unit_offset), inputs, ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64])
def test_index_select_and_gather(dtype):
    x = randn(7, 11, 13).to(dtype) if dtype != torch.int64 else torch.randint(-99, 99, (7, 11, 13))
    idx = torch.tensor([[3, -1], [0, 10]])
    gidx = torch.randint(-7, 7, (4, 11, 5))
    fn = lambda t, i, g: (T.index_select(t, i, 1), T.index_select(t, i[0].to(torch.int32), -1), T.gather(t, g, 0))
    ref = lambda t, i, g: (T.index_select(t, i, 1), T.index_select(t, i[0].to(torch.int32), -1), T.gather(t, g, 0))
    _check_custom(fn, (x, idx, gidx), ref)


def test_index_out_of_range_is_an_error():
    _, model = _cuda_model(Fn(lambda t, i: T.index_select(t, i, 0)), (randn(5, 3), torch.tensor([1, 2])))
    with pytest.raises(etgpu.runtime.EtGpuError, match="out of range"):
        model.run([randn(5, 3), torch.tensor([1, 7])])
    assert torch.equal(model.run([torch.ones(5, 3), torch.tensor([4, -5])])[0], torch.ones(2, 3))  # recovers


SDPA_CASES = {
    "prefill_causal": dict(B=2, H=4, Hkv=4, L=77, S=77, E=64, causal=True),
    "gqa_causal_128": dict(B=1, H=8, Hkv=2, L=130, S=130, E=128, causal=True),
    "chunk_causal": dict(B=1, H=4, Hkv=2, L=16, S=300, E=64, causal=True),
    "decode_split": dict(B=1, H=8, Hkv=2, L=1, S=1500, E=128, causal=True),
    "decode_bool_mask": dict(B=2, H=4, Hkv=1, L=1, S=700, E=64, mask="bool"),
    "float_mask_e80": dict(B=2, H=3, Hkv=3, L=33, S=45, E=80, mask="float", scale=0.3),
    "head_dim_256": dict(B=1, H=2, Hkv=1, L=40, S=40, E=256, causal=True),
}


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("case", sorted(SDPA_CASES))
def test_sdpa(case, dtype):
    c = SDPA_CASES[case]
    B, H, Hkv, L, S, E = c["B"], c["H"], c["Hkv"], c["L"], c["S"], c["E"]
    q, k, v = randn(B, H, L, E, dtype=dtype), randn(B, Hkv, S, E, dtype=dtype), randn(B, Hkv, S, E, dtype=dtype)
    scale, causal = c.get("scale", 0.0), c.get("causal", False)
    if c.get("mask") == "bool":
        mask = torch.rand(B, 1, L, S) > 0.3
    elif c.get("mask") == "float":
        mask = (torch.randn(1, H, L, S) * 2).to(dtype)
    else:
        mask = None
    inputs = (q, k, v) + ((mask,) if mask is not None else ())
    fn = lambda q, k, v, *m: T.sdpa(q, k, v, m[0] if m else None, scale, causal)
    ref = lambda q, k, v, *m: _ref_sdpa(q, k, v, m[0] if m else None, scale, causal)
    _check_custom(fn, inputs, ref)


# ---- graphs and memory --------------------------------------------------------------------------

def _mlp():
    torch.manual_seed(3)
    return torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.SiLU(), torch.nn.Linear(128, 64)).eval()


def test_graph_capture_and_replay():
    module = _mlp()
    n = torch.export.Dim("n", min=1, max=64)
    _, model = _cuda_model(module, (randn(8, 64),), dynamic_shapes=({0: n},))
    for step in range(4):
        x = randn(8, 64)
        with torch.no_grad():
            assert_close(model.run([x])[0], module(x), what=f"step {step}")
    stats = model.stats()
    # step 0 eager, step 1 captured (+1 launch), steps 2-3 replayed
    assert stats["graphs_captured"] == 1 and stats["graph_launches"] == 3 and stats["steps_replayed"] == 2, stats
    x = randn(5, 64)  # a new shape runs eagerly
    with torch.no_grad():
        assert_close(model.run([x])[0], module(x), what="new shape")
    assert model.stats()["graph_launches"] == 3
    print(f"\ngraph stats: {model.stats()}")


def test_graphs_off_switch(monkeypatch):
    monkeypatch.setenv("ETGPU_CUDA_GRAPHS", "0")
    module = _mlp()
    _, model = _cuda_model(module, (randn(4, 64),))
    for _ in range(3):
        x = randn(4, 64)
        with torch.no_grad():
            assert_close(model.run([x])[0], module(x))
    assert model.stats()["graph_launches"] == 0 and model.stats()["steps_replayed"] == 0


def test_device_memory_released(gpu_alone):
    import gc

    data = etgpu.compile(export(_mlp(), (randn(16, 64),)))
    # A first engine loads cuBLASLt's and our kernel modules into the context (kept for the
    # process, like any CUDA library); measure a second one against that baseline.
    etgpu.Model(data, device="cuda").close()
    gc.collect()
    torch.cuda.synchronize()
    free_before, total = torch.cuda.mem_get_info()
    model = etgpu.Model(data, device="cuda")
    model.run([randn(16, 64)])
    model.run([randn(16, 64)])
    model.run([randn(16, 64)])
    free_during, _ = torch.cuda.mem_get_info()
    model.close()
    free_after, _ = torch.cuda.mem_get_info()
    mib = 1 << 20
    print(f"\nGPU memory free: before {free_before / mib:.1f} MiB, with model {free_during / mib:.1f} MiB, "
          f"after close {free_after / mib:.1f} MiB (total {total / mib:.0f} MiB)")
    assert free_during < free_before
    assert abs(free_after - free_before) <= 4 * mib, (free_before, free_after)
