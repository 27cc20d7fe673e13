"""The LLM fusion passes (etgpu.lower.passes.fuse_llm, .cse, .rms_norm's residual add):
transformers' RoPE and gated MLP chains become one Rope / Glu instruction each, a residual add
feeding an RMSNorm one AddRmsNorm, duplicated pure subgraphs are computed once, and the fused
kernels match eager (rounding included) on the engine under test."""

import pytest
import torch
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

import etgpu
import etgpu.lower.passes as passes
from parity import TEST_DEVICE, Fn, check_module, export, randn
from test_norm import _gemma_rms_norm, _llama_rms_norm, instruction_ops

FLOATS = [torch.float32, torch.float16, torch.bfloat16]
F = torch.nn.functional


def _rope_inputs(dtype, heads=4, kv_heads=2, seq=5, dim=16):
    angles = torch.rand(1, seq, dim // 2) * 6
    angles = torch.cat((angles, angles), dim=-1)
    return (randn(1, heads, seq, dim, dtype=dtype), randn(1, kv_heads, seq, dim, dtype=dtype),
            angles.cos().to(dtype), angles.sin().to(dtype))


# dim 16: half a row is whole 16-byte vectors (the CUDA kernel's vector path); 12: it is not.
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [16, 12])
def test_transformers_rope_is_one_instruction_per_tensor(dtype, dim):
    module = Fn(lambda q, k, cos, sin: apply_rotary_pos_emb(q, k, cos, sin))
    inputs = _rope_inputs(dtype, dim=dim)
    assert [op for op in instruction_ops(module, inputs) if op != "Permute"].count("Rope") == 2
    assert set(instruction_ops(module, inputs)) <= {"Rope", "Permute", "Expand"}
    check_module(module, inputs)


@pytest.mark.parametrize("dtype", FLOATS)
def test_rope_absorbs_the_head_transpose(dtype):
    """transformers' q = proj(x).view(B, L, H, D).transpose(1, 2) feeding RoPE: one Rope, no Permute;
    a transposed tensor also read elsewhere keeps its Permute."""
    def fn(q, k, cos, sin):
        return apply_rotary_pos_emb(q.transpose(1, 2), k.transpose(1, 2), cos, sin)

    q, k, cos, sin = _rope_inputs(dtype)
    inputs = (q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous(), cos, sin)
    assert instruction_ops(Fn(fn), inputs) == ["Rope", "Rope"]
    check_module(Fn(fn), inputs)

    def shared(q, k, cos, sin):
        qt = q.transpose(1, 2)
        return apply_rotary_pos_emb(qt, k.transpose(1, 2), cos, sin)[0], qt * 2

    assert instruction_ops(Fn(shared), inputs).count("Permute") == 1
    check_module(Fn(shared), inputs)


def test_rope_with_other_operand_order_and_odd_table_broadcast():
    def fn(x, cos, sin):
        half = x.shape[-1] // 2
        rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
        return sin * rotated + cos * x

    x, _, cos, sin = _rope_inputs(torch.float32, seq=3, dim=8)
    module = Fn(fn)
    inputs = (x, cos[:, None], sin[:, None])
    assert instruction_ops(module, inputs) == ["Rope"]
    check_module(module, inputs)


def test_rope_not_fused_when_halves_are_swapped():
    def fn(x, cos, sin):
        half = x.shape[-1] // 2
        return x * cos + torch.cat((-x[..., :half], x[..., half:]), dim=-1) * sin  # not rotate_half

    x, _, cos, sin = _rope_inputs(torch.float32)
    assert "Rope" not in instruction_ops(Fn(fn), (x, cos[:, None], sin[:, None]))
    check_module(Fn(fn), (x, cos[:, None], sin[:, None]))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("act", ["silu", "gelu", "gelu_tanh"])
@pytest.mark.parametrize("shape", [(2, 3, 40), (3, 5)])  # 16-byte vectors on CUDA; scalars
def test_gated_mlp_is_one_glu(dtype, act, shape):
    acts = {"silu": F.silu, "gelu": F.gelu, "gelu_tanh": lambda a: F.gelu(a, approximate="tanh")}
    module = Fn(lambda gate, up: acts[act](gate) * up)
    inputs = (randn(*shape, dtype=dtype) * 3, randn(*shape, dtype=dtype))
    assert instruction_ops(module, inputs) == ["Glu"]
    check_module(module, inputs)


def test_glu_not_fused_when_activation_is_reused_or_broadcast():
    reused = Fn(lambda gate, up: (F.silu(gate) * up, F.silu(gate)))
    assert "Glu" not in instruction_ops(reused, (randn(3, 8), randn(3, 8)))
    broadcast = Fn(lambda gate, up: F.silu(gate) * up)
    assert "Glu" not in instruction_ops(broadcast, (randn(3, 8), randn(8)))
    check_module(broadcast, (randn(3, 8), randn(8)))


def test_common_subexpressions_are_computed_once():
    def fn(x, positions):
        masks = [torch.arange(6).unsqueeze(0) <= positions.unsqueeze(1) for _ in range(3)]
        return sum(torch.where(m, x, 0.0) for m in masks)

    inputs = (randn(4, 6), torch.tensor([0, 2, 3, 5]))
    ops = instruction_ops(Fn(fn), inputs)
    assert ops.count("Arange") == 1 and ops.count("Where") == 1
    check_module(Fn(fn), inputs)


# ---- residual add + RMSNorm ----------------------------------------------------------------------

def _unit_rms_norm(h):
    """Llama's RMSNorm without a weight (fp32 statistics, rounded back to h's dtype)."""
    hf = h.float()
    return (hf * torch.rsqrt(hf.pow(2).mean(-1, keepdim=True) + 1e-6)).to(h.dtype)


class _ResidualBlock(torch.nn.Module):
    """A decoder layer's residual stream: each add feeds a norm and is read again afterwards
    (by the next add, and as an output)."""

    def __init__(self, size, dtype, weight):
        super().__init__()
        self.norm = _llama_rms_norm(size, dtype) if weight else _unit_rms_norm

    def forward(self, x, attn, mlp):
        h = x + attn
        h2 = h + mlp * self.norm(h)
        return self.norm(h2), h2


def _block_inputs(dtype, tokens, size):
    return tuple(randn(2, tokens, size, dtype=dtype) for _ in range(3))


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("weight", [True, False])
@pytest.mark.parametrize("size", [64, 102])
def test_residual_add_rms_norm_is_one_instruction(dtype, weight, size):
    """Both adds become AddRmsNorm (their sums stay available to the later add and the output);
    a dynamic token count; on cuda, 64 takes the vector kernel and 102 (no whole 16-byte vectors)
    the generic one."""
    module = _ResidualBlock(size, dtype, weight)
    inputs = _block_inputs(dtype, 5, size)
    assert instruction_ops(module, inputs) == ["AddRmsNorm", "Binary", "AddRmsNorm"]
    tokens = torch.export.Dim("tokens", max=64)
    check_module(module, inputs, dynamic_shapes=({1: tokens},) * 3,
                 run_inputs_list=[_block_inputs(dtype, 1, size), _block_inputs(dtype, 33, size)])


def _run_steps(module, steps, fuse: bool, monkeypatch, fusion: str):
    """Each step's outputs of `module` compiled (for steps[0]) with the pass `fusion` on or off."""
    if not fuse:
        monkeypatch.setattr(passes, fusion, lambda gm: 0)
    model = etgpu.Model(etgpu.compile(export(module.eval(), steps[0])), device=TEST_DEVICE)
    monkeypatch.undo()
    return [model.run(list(step)) for step in steps]


@pytest.mark.parametrize("dtype", FLOATS)
def test_add_rms_norm_matches_the_unfused_pair_bit_for_bit(dtype, monkeypatch):
    """The sum is rounded as the separate add rounds it and the norm reads the rounded sum, so
    the fused instruction reproduces Binary + RmsNorm exactly."""
    module = _ResidualBlock(256, dtype, weight=True)
    inputs = _block_inputs(dtype, 7, 256)
    [fused] = _run_steps(module, [inputs], True, monkeypatch, "fuse_add_rms_norm")
    [unfused] = _run_steps(module, [inputs], False, monkeypatch, "fuse_add_rms_norm")
    for a, b in zip(fused, unfused):
        assert torch.equal(a, b)


class _WithNorm(torch.nn.Module):
    """fn(norm, *inputs) with the norm a submodule, so that moving the module for the reference
    run (to the test device) moves the norm's weight too."""

    def __init__(self, fn, norm):
        super().__init__()
        self.fn, self.norm = fn, norm

    def forward(self, *args):
        return self.fn(self.norm, *args)


def test_add_rms_norm_with_a_user_of_the_sum_before_the_norm():
    """The fused call moves up to the add, so a reader of the sum placed before the norm still
    follows it."""

    def fn(norm, x, r):
        h = x + r
        doubled = h * 2
        return norm(h), doubled

    module = _WithNorm(fn, _llama_rms_norm(32, torch.float32))
    inputs = (randn(3, 32), randn(3, 32))
    assert instruction_ops(module, inputs) == ["AddRmsNorm", "Binary"]
    check_module(module, inputs)


def test_add_rms_norm_not_fused_when_broadcast_or_mixed_dtype():
    broadcast = _WithNorm(lambda norm, x, b: norm(x + b), _llama_rms_norm(16, torch.float32))
    assert "AddRmsNorm" not in instruction_ops(broadcast, (randn(3, 16), randn(16)))
    check_module(broadcast, (randn(3, 16), randn(16)))
    # bf16 + fp32 promotes: the kernel does not convert
    mixed = _WithNorm(lambda norm, x, r: norm(x + r), _llama_rms_norm(16, torch.float32))
    inputs = (randn(3, 16, dtype=torch.bfloat16), randn(3, 16))
    assert "AddRmsNorm" not in instruction_ops(mixed, inputs)
    check_module(mixed, inputs)


# ---- RoPE of k fused with its KV-cache write -------------------------------------------------------

class _RopeCache(torch.nn.Module):
    """A decode layer's key path: k [B, L, H, D] (seq_major, transformers' view before the head
    transpose) or [B, H, L, D] is roped and written into a static cache at `pos` (index_copy_ on
    a buffer); the cache is read afterwards. `keep` also returns the roped k (another reader);
    `norm` normalizes k's heads first (Qwen3's k_norm)."""

    def __init__(self, dtype, seq_major=True, keep=False, kv_heads=2, slots=12, dim=16, norm=None):
        super().__init__()
        self.seq_major, self.keep, self.norm = seq_major, keep, norm
        self.register_buffer("k_cache", randn(1, kv_heads, slots, dim, dtype=dtype))

    def forward(self, k, cos, sin, pos):
        if self.norm is not None:
            k = self.norm(k)
        if self.seq_major:
            k = k.transpose(1, 2)
        half = k.shape[-1] // 2
        roped = k * cos[:, None] + torch.cat((-k[..., half:], k[..., :half]), dim=-1) * sin[:, None]
        self.k_cache.index_copy_(2, pos, roped)
        read = self.k_cache * 2
        return (read, roped * 3) if self.keep else read


def _rope_cache_steps(dtype, seq_major, kv_heads=2, dim=16):
    """Three steps of two positions each, not always adjacent (cos and sin of those positions)."""
    steps = []
    for positions in (torch.tensor([0, 1]), torch.tensor([2, 5]), torch.tensor([11, 9])):
        seq = positions.numel()
        angles = positions[:, None].float() * torch.rand(dim // 2) * 2
        angles = torch.cat((angles, angles), dim=-1)[None]
        k = randn(1, seq, kv_heads, dim, dtype=dtype) if seq_major else randn(1, kv_heads, seq, dim, dtype=dtype)
        steps.append((k, angles.cos().to(dtype), angles.sin().to(dtype), positions))
    return steps


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("seq_major", [True, False])
def test_rope_of_k_writes_the_cache_in_one_instruction(dtype, seq_major, monkeypatch):
    """Rope + IndexCopy become one Rope with a cache: no IndexCopy is left, the cache is written
    in place (no Expand copies it), and every step's cache equals the unfused pair's bit for bit
    (eager: test_rope_cache_write_matches_eager)."""
    steps = _rope_cache_steps(dtype, seq_major)
    ops = instruction_ops(_RopeCache(dtype, seq_major), steps[0])
    assert ops.count("Rope") == 1 and "IndexCopy" not in ops and "Expand" not in ops, ops
    assert "Permute" not in ops or not seq_major, ops
    module = _RopeCache(dtype, seq_major)  # one initial cache for both (compiling leaves it as is)
    fused = _run_steps(module, steps, True, monkeypatch, "fuse_rope_cache_writes")
    unfused = _run_steps(module, steps, False, monkeypatch, "fuse_rope_cache_writes")
    for step, (a, b) in enumerate(zip(fused, unfused)):
        assert torch.equal(a[0], b[0]), f"step {step}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("dim", [16, 12])
def test_rope_cache_write_matches_eager(dtype, dim):
    steps = _rope_cache_steps(dtype, True, dim=dim)
    module = _RopeCache(dtype, dim=dim)
    check_module(module, steps[0], run_inputs_list=steps[1:], compare_torch_cuda=False)


def test_rope_with_another_reader_keeps_its_index_copy():
    steps = _rope_cache_steps(torch.float32, True)
    ops = instruction_ops(_RopeCache(torch.float32, keep=True), steps[0])
    assert "IndexCopy" in ops and ops.count("Rope") == 1, ops
    check_module(_RopeCache(torch.float32, keep=True), steps[0], run_inputs_list=steps[1:], compare_torch_cuda=False)


def test_rope_cache_write_past_the_cache_is_index_copys_error():
    """A position outside the cache is refused as IndexCopy refuses it (CPU: before writing,
    CUDA: flagged on the device, the row skipped), and the model stays usable."""
    steps = _rope_cache_steps(torch.float32, True)
    module = _RopeCache(torch.float32)
    model = etgpu.Model(etgpu.compile(export(module.eval(), steps[0])), device=TEST_DEVICE)
    k, cos, sin, _ = steps[1]
    with pytest.raises(etgpu.runtime.EtGpuError, match="outside|out of range"):
        model.run([k, cos, sin, torch.tensor([3, 12])])
    assert model.run(list(steps[1]))[0].shape == (1, 2, 12, 16)


# ---- q/k RMSNorm folded into RoPE ------------------------------------------------------------------

class _UnitRmsNorm(torch.nn.Module):
    def forward(self, h):
        return _unit_rms_norm(h)


_QK_NORMS = {"qwen": _llama_rms_norm, "gemma": _gemma_rms_norm, "unweighted": lambda size, dtype: _UnitRmsNorm()}


class _QkNormRope(torch.nn.Module):
    """An attention layer's q and k before attention: the projections' per-head views, normalized
    per head and roped. `order`: "norm_first" (Qwen3: q_norm(q).transpose(1, 2)),
    "transpose_first" (Gemma 3: q_norm(q.transpose(1, 2))), both from [B, L, H, D]; "head_major":
    q and k come as [B, H, L, D]."""

    def __init__(self, norm, order, dim, dtype):
        super().__init__()
        self.order = order
        self.q_norm, self.k_norm = _QK_NORMS[norm](dim, dtype), _QK_NORMS[norm](dim, dtype)

    def forward(self, q, k, cos, sin):
        if self.order == "norm_first":
            q, k = self.q_norm(q).transpose(1, 2), self.k_norm(k).transpose(1, 2)
        elif self.order == "transpose_first":
            q, k = self.q_norm(q.transpose(1, 2)), self.k_norm(k.transpose(1, 2))
        else:
            q, k = self.q_norm(q), self.k_norm(k)
        return apply_rotary_pos_emb(q, k, cos, sin)


def _qk_inputs(dtype, order, dim):
    q, k, cos, sin = _rope_inputs(dtype, dim=dim)
    if order != "head_major":
        q, k = q.transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous()
    return q, k, cos, sin


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("norm, order", [("qwen", "norm_first"), ("gemma", "transpose_first"),
                                         ("unweighted", "head_major"), ("gemma", "norm_first"),
                                         ("qwen", "transpose_first"), ("qwen", "head_major")])
def test_qk_norm_is_folded_into_rope(dtype, norm, order):
    """Each head's RMSNorm runs inside its Rope (Qwen3's rounding, Gemma 3's 1 + w, or none), and a
    head transpose before or after the norm is absorbed too: one Rope per tensor, nothing else."""
    module = _QkNormRope(norm, order, 16, dtype)
    inputs = _qk_inputs(dtype, order, 16)
    assert instruction_ops(module, inputs) == ["Rope", "Rope"]
    check_module(module, inputs)


# On cuda: 12 takes the scalar kernel (8 lanes per row, 6 with an item), 100 the scalar kernel with
# lanes that take two items (50 per row), 256 (Gemma's head) the vector kernel with 16 (bf16, fp16)
# or 32 (fp32) lanes per row.
@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("dim", [12, 100, 256])
def test_qk_norm_rope_at_other_head_sizes(dtype, dim):
    module = _QkNormRope("qwen", "norm_first", dim, dtype)
    inputs = _qk_inputs(dtype, "norm_first", dim)
    assert instruction_ops(module, inputs) == ["Rope", "Rope"]
    check_module(module, inputs)


def _assert_same_rounding(fused, unfused):
    """The CPU engine computes both alike, so bit for bit; on cuda the row's sum of squares is
    reduced in another order by each kernel, which may flip the last bit of a normalized value
    (in fp32 about every tenth): the two may then differ by a rounding or two of the dtype, relative
    to the largest value (the rotation's difference of products may cancel)."""
    for a, b in zip(fused, unfused):
        if TEST_DEVICE == "cpu":
            assert torch.equal(a, b)
        else:
            rounding = 4 * torch.finfo(a.dtype).eps
            b_max = b.float().abs().max().item()
            torch.testing.assert_close(a.float(), b.float(), rtol=rounding, atol=rounding * b_max)


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("norm", ["qwen", "gemma"])
def test_rope_norm_rounds_as_the_separate_norm(dtype, norm, monkeypatch):
    """The normalized x is rounded to its dtype as the separate RmsNorm stores it, before the
    rotation reads it."""
    module = _QkNormRope(norm, "norm_first", 128, dtype)
    inputs = _qk_inputs(dtype, "norm_first", 128)
    [fused] = _run_steps(module, [inputs], True, monkeypatch, "fuse_rope_norms")
    [unfused] = _run_steps(module, [inputs], False, monkeypatch, "fuse_rope_norms")
    _assert_same_rounding(fused, unfused)


# dim: on cuda 16 takes the vector kernel, 12 the scalar one with lanes that have no item (they
# must not write the cache), 100 the scalar one with lanes that take two items.
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("seq_major", [True, False])
@pytest.mark.parametrize("dim", [16, 12, 100])
def test_normed_rope_of_k_writes_the_cache_in_one_instruction(dtype, seq_major, dim, monkeypatch):
    """Qwen3's key path: k_norm, RoPE and the cache write are one Rope; every step's cache matches
    the separate RmsNorm's (and eager's)."""
    steps = _rope_cache_steps(dtype, seq_major, dim=dim)
    module = _RopeCache(dtype, seq_major, dim=dim, norm=_llama_rms_norm(dim, dtype))
    assert instruction_ops(module, steps[0]) == ["Rope", "Binary"]
    fused = _run_steps(module, steps, True, monkeypatch, "fuse_rope_norms")
    unfused = _run_steps(module, steps, False, monkeypatch, "fuse_rope_norms")
    _assert_same_rounding([step[0] for step in fused], [step[0] for step in unfused])
    check_module(module, steps[0], run_inputs_list=steps[1:], compare_torch_cuda=False)


def test_rope_norm_not_folded_when_read_elsewhere_or_promoting():
    """A norm whose output is also read elsewhere stays a RmsNorm; so does one whose output is
    wider than x (Llama's bf16 x times an fp32 weight is fp32), which a Rope could not read as x."""
    def shared(norm, q, cos, sin):
        normed = norm(q)
        return apply_rotary_pos_emb(normed, normed, cos, sin)[0], normed * 2

    q, _, cos, sin = _rope_inputs(torch.float32)
    module = _WithNorm(shared, _llama_rms_norm(16, torch.float32))
    assert instruction_ops(module, (q, cos, sin)) == ["RmsNorm", "Rope", "Binary"]
    check_module(module, (q, cos, sin))

    promoting = _WithNorm(lambda norm, q, cos, sin: apply_rotary_pos_emb(norm(q), norm(q), cos, sin)[0],
                          _llama_rms_norm(16, torch.float32))
    inputs = (q.to(torch.bfloat16), cos, sin)
    assert instruction_ops(promoting, inputs) == ["RmsNorm", "Rope"]
    check_module(promoting, inputs)
