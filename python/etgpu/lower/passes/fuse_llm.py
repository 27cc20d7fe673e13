"""Fuses two elementwise chains every decoder layer repeats into single instructions:

  RoPE   x * cos + cat(-x[..., D/2:], x[..., :D/2]) * sin   -> etgpu::rope   (one Rope)
         (transformers' apply_rotary_pos_emb with rotate_half: 2 slices, neg, cat, 2 muls, add,
         i.e. 8 kernels per tensor, 16 per layer, become 1 per tensor; when x is the [B, L, H, D]
         -> [B, H, L, D] transpose of the projection and nothing else reads it, the transpose
         is absorbed too: one copy fewer per tensor)
  GLU    act(gate) * up, act = silu or gelu                  -> etgpu::glu    (one Glu)

then (fuse_rope_norms) the per-head RMSNorm of a rope's x (Qwen3's and Gemma 3's q/k norms):
  rope(rms_norm(x))  -> etgpu::rope with a norm (one Rope instead of a RmsNorm and a Rope), when
         the rope is the norm's only reader and the norm keeps x's dtype; a [B, L, H, D] ->
         [B, H, L, D] transpose before the norm (Gemma 3 normalizes after it) is absorbed as the
         rope's x_seq_major, as a transpose right before the rope is;

and (fuse_rope_cache_writes, run after) the KV-cache write of a roped key:
  index_copy(cache, dim, index, rope(k))  -> etgpu::rope_index_copy (one Rope with a cache: the
         rotated rows go straight into the cache rows, one launch and no rotated-k buffer per
         layer), when the index_copy is the roped value's only reader. A ring (sliding-window)
         layer's keys are also read by the cat of the old window before the write, so it keeps
         the separate Rope and IndexCopy.

Both fused ops round each intermediate to the tensors' dtype as the unfused ops do, so they match
eager bit for bit in fp16/bf16 up to the order of two roundings. Fusion requires x, cos, sin (a,
b) and the result to share one float dtype."""

from typing import Optional

import torch
import torch.fx

from etgpu.lower.passes._fx import dtype_of, erase_chain, is_head_transpose, op_name, replace_with_call, users
from etgpu.lower.passes.rms_norm import rms_norm

_FLOATS = (torch.float32, torch.float16, torch.bfloat16)
_GLU_ACTS = ("silu", "gelu", "gelu_tanh")


# A rope's last five arguments, its norm (see fuse_rope_norms): norm, weight, eps, unit_offset,
# round_normalized. A rope the pattern match writes has none.
NO_NORM = (False, None, 0.0, False, False)


@torch.library.custom_op("etgpu::rope", mutates_args=())
def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, x_seq_major: bool, norm: bool,
         norm_weight: Optional[torch.Tensor], norm_eps: float, norm_unit_offset: bool,
         norm_round_normalized: bool) -> torch.Tensor:
    """Reference semantics of the Rope instruction (see schema/etgpu.fbs): with `norm`, x is first
    etgpu::rms_norm(x, norm_weight, norm_eps, norm_unit_offset, norm_round_normalized)."""
    if norm:
        x = rms_norm(x, norm_weight, norm_eps, norm_unit_offset, norm_round_normalized)
    if x_seq_major:
        x = x.transpose(1, 2)
    half = x.shape[-1] // 2
    return (x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin).contiguous()


@rope.register_fake
def _(x, cos, sin, x_seq_major, *norm):
    return torch.empty_like(x.transpose(1, 2) if x_seq_major else x, memory_format=torch.contiguous_format)


@torch.library.custom_op("etgpu::rope_index_copy", mutates_args=())
def rope_index_copy(cache: torch.Tensor, dim: int, index: torch.Tensor, x: torch.Tensor, cos: torch.Tensor,
                    sin: torch.Tensor, x_seq_major: bool, norm: bool, norm_weight: Optional[torch.Tensor],
                    norm_eps: float, norm_unit_offset: bool, norm_round_normalized: bool) -> torch.Tensor:
    """Reference semantics of a Rope instruction with a cache: cache.index_copy(dim, index, rope(x))."""
    rotated = rope(x, cos, sin, x_seq_major, norm, norm_weight, norm_eps, norm_unit_offset, norm_round_normalized)
    return cache.index_copy(dim, index, rotated)


@rope_index_copy.register_fake
def _(cache, *args):
    return torch.empty_like(cache, memory_format=torch.contiguous_format)


@torch.library.custom_op("etgpu::glu", mutates_args=())
def glu(a: torch.Tensor, b: torch.Tensor, act: str) -> torch.Tensor:
    """Reference semantics of the Glu instruction: act(a) * b."""
    if act == "silu":
        return torch.nn.functional.silu(a) * b
    return torch.nn.functional.gelu(a, approximate="tanh" if act == "gelu_tanh" else "none") * b


@glu.register_fake
def _(a, b, act):
    return torch.empty_like(a)


def _operands(node, target: str):
    """(a, b) of a two-tensor call to `target`, else None."""
    if op_name(node) != target or len(node.args) != 2 or node.kwargs:
        return None
    a, b = node.args
    return (a, b) if isinstance(a, torch.fx.Node) and isinstance(b, torch.fx.Node) else None


def _last_dim_slice(node, x) -> Optional[tuple]:
    """(start, end) of x[..., start:end] with step 1, else None."""
    if op_name(node) != "aten.slice.Tensor" or node.args[0] is not x or node.kwargs:
        return None
    rank = x.meta["val"].dim()
    defaults = [0, None, None, 1]  # aten.slice.Tensor(self, dim, start, end, step)
    dim, start, end, step = list(node.args[1:]) + defaults[len(node.args) - 1:]
    if dim not in (-1, rank - 1) or step != 1:
        return None
    return start, end


def _rotate_half_of(cat) -> Optional[torch.fx.Node]:
    """x for cat([-x[..., D/2:], x[..., :D/2]], -1), else None."""
    if op_name(cat) != "aten.cat.default" or len(cat.args[0]) != 2:
        return None
    neg, low = cat.args[0]
    if op_name(neg) != "aten.neg.default":
        return None
    high = neg.args[0]
    x = high.args[0] if op_name(high) == "aten.slice.Tensor" else None
    if x is None or op_name(low) != "aten.slice.Tensor" or low.args[0] is not x:
        return None
    rank, size = x.meta["val"].dim(), x.meta["val"].shape[-1]
    cat_dim = cat.args[1] if len(cat.args) > 1 else cat.kwargs.get("dim", 0)
    if not isinstance(size, int) or size % 2 or cat_dim not in (-1, rank - 1):
        return None
    half = size // 2
    hi, lo = _last_dim_slice(high, x), _last_dim_slice(low, x)
    if hi is None or lo is None or hi[0] != half or (hi[1] is not None and hi[1] < size):
        return None
    return x if lo in ((0, half), (None, half)) else None


def _seq_major_source(x, pattern):
    """x0 when x = x0.transpose(1, 2) of a rank-4 x0 read by nothing outside `pattern`, else None."""
    if not is_head_transpose(x) or not set(users(x)) <= set(pattern):
        return None
    return x.args[0]


def _match_rope(add):
    """(x, cos, sin, x_seq_major) when `add` is x * cos + rotate_half(x) * sin, else None."""
    terms = _operands(add, "aten.add.Tensor")
    if terms is None:
        return None
    for straight, rotated in (terms, terms[::-1]):
        s, r = _operands(straight, "aten.mul.Tensor"), _operands(rotated, "aten.mul.Tensor")
        if s is None or r is None:
            continue
        for cat, sin in (r, r[::-1]):
            x = _rotate_half_of(cat)
            if x is None or x not in s:
                continue
            cos = s[1] if s[0] is x else s[0]
            shape = tuple(add.meta["val"].shape)
            if (tuple(x.meta["val"].shape) == shape and dtype_of(add) in _FLOATS
                    and dtype_of(x) == dtype_of(cos) == dtype_of(sin) == dtype_of(add)):
                neg, low = cat.args[0]
                source = _seq_major_source(x, (straight, neg.args[0], low))
                return (x, cos, sin, False) if source is None else (source, cos, sin, True)
    return None


def _act_of(node) -> Optional[str]:
    name = op_name(node)
    if name == "aten.silu.default":
        return "silu"
    if name == "aten.gelu.default":
        approximate = node.kwargs.get("approximate", node.args[1] if len(node.args) > 1 else "none")
        return "gelu_tanh" if approximate == "tanh" else "gelu"
    return None


def _match_glu(mul):
    """(gate, up, act) when `mul` is act(gate) * up of one shape and dtype, else None."""
    operands = _operands(mul, "aten.mul.Tensor")
    if operands is None:
        return None
    for act_node, up in (operands, operands[::-1]):
        act = _act_of(act_node)
        if act is None or len(users(act_node)) != 1:
            continue
        gate = act_node.args[0]
        value = mul.meta["val"]
        if all(tuple(n.meta["val"].shape) == tuple(value.shape) and dtype_of(n) == value.dtype
               for n in (gate, up)) and value.dtype in _FLOATS:
            return gate, up, act
    return None


def fuse_llm_patterns(gm: torch.fx.GraphModule) -> int:
    """Rewrites every RoPE and GLU match in place; returns how many were fused."""
    fused = 0
    for node in list(gm.graph.nodes):
        if getattr(node, "_erased", False):
            continue
        rope_match = _match_rope(node)
        glu_match = None if rope_match else _match_glu(node)
        if rope_match is None and glu_match is None:
            continue
        target, args = ((torch.ops.etgpu.rope.default, rope_match + NO_NORM) if rope_match
                        else (torch.ops.etgpu.glu.default, glu_match))
        replace_with_call(gm.graph, node, target, tuple(args))
        fused += 1
    if fused:
        gm.graph.lint()
        gm.recompile()
    return fused


def _foldable_norm(rope_node) -> Optional[torch.fx.Node]:
    """The etgpu::rms_norm that is the x of `rope_node` (a rope without a norm) and has no other
    reader, when it keeps x's dtype and its weight (if any) has that dtype too, else None: the
    Rope instruction reads x and the weight as its own dtype."""
    x, norm = rope_node.args[0], rope_node.args[4]
    if norm or op_name(x) != "etgpu.rms_norm.default" or users(x) != [rope_node]:
        return None
    source, weight = x.args[:2]
    if dtype_of(source) != dtype_of(x) or (weight is not None and dtype_of(weight) != dtype_of(x)):
        return None
    return x


def fuse_rope_norms(gm: torch.fx.GraphModule) -> int:
    """Folds each foldable RMSNorm (_foldable_norm) into the etgpu::rope that reads it; returns
    how many. Runs after fuse_rms_norm and fuse_llm_patterns (it joins their results) and before
    fuse_rope_cache_writes (which carries a rope's arguments, its norm's included, over)."""
    graph = gm.graph
    fused = 0
    for node in list(graph.nodes):
        norm_node = _foldable_norm(node) if op_name(node) == "etgpu.rope.default" else None
        if norm_node is None:
            continue
        source, weight, eps, unit_offset, round_normalized = norm_node.args
        _, cos, sin, seq_major = node.args[:4]
        transposed = None if seq_major else _seq_major_source(source, (norm_node,))
        if transposed is not None:  # the norm is per row of D, so it commutes with the transpose
            source, seq_major = transposed, True
        node.args = (source, cos, sin, seq_major, True, weight, eps, unit_offset, round_normalized)
        erase_chain(graph, norm_node)
        fused += 1
    if fused:
        graph.lint()
        gm.recompile()
    return fused


def fuse_rope_cache_writes(gm: torch.fx.GraphModule) -> int:
    """Rewrites index_copy(cache, dim, index, etgpu::rope(...)) into one etgpu::rope_index_copy
    where the index_copy is the rope's only reader; returns how many were fused."""
    graph = gm.graph
    fused = 0
    for node in list(graph.nodes):
        if op_name(node) != "aten.index_copy.default" or len(node.args) != 4 or node.kwargs:
            continue
        cache, dim, index, source = node.args
        if op_name(source) != "etgpu.rope.default" or users(source) != [node]:
            continue
        if not isinstance(dim, int) or dtype_of(cache) != dtype_of(source):
            continue
        # Retargeted in place, not replaced: the node keeps its name, by which the graph signature
        # knows its value as the buffer's new state (a mutation output).
        node.target = torch.ops.etgpu.rope_index_copy.default
        node.args = (cache, dim, index, *source.args)
        erase_chain(graph, source)
        fused += 1
    if fused:
        graph.lint()
        gm.recompile()
    return fused
