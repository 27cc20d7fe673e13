"""Graph passes run on the whole program before lowering: multi-node patterns rewritten into the
single ops etgpu has one instruction for. The partitioner's per-node dry run sees the graph before
these passes, which is safe: every node a pass removes is supported on its own."""

from typing import Dict

from torch.export import ExportedProgram

from etgpu.lower.passes._fx import constant_inputs
from etgpu.lower.passes.cse import eliminate_common_subexpressions
from etgpu.lower.passes.fuse_llm import fuse_llm_patterns, fuse_rope_cache_writes, fuse_rope_norms
from etgpu.lower.passes.rms_norm import fuse_add_rms_norm, fuse_rms_norm
from etgpu.lower.passes.seq_major import fuse_seq_major_attention
from etgpu.lower.passes.split_linear import fuse_split_linear_glu, merge_sibling_linears


def run_passes(ep: ExportedProgram) -> ExportedProgram:
    """Rewrites `ep`'s graph in place (and returns it)."""
    eliminate_common_subexpressions(ep.graph_module)
    fuse_rms_norm(ep.graph_module, _scalar_constants(ep))
    fuse_llm_patterns(ep.graph_module)
    fuse_rope_norms(ep.graph_module)  # after fuse_rms_norm and fuse_llm_patterns: it folds the former into the latter
    fuse_rope_cache_writes(ep.graph_module)  # after fuse_llm_patterns: it folds writes into those ropes
    fuse_seq_major_attention(ep.graph_module)
    fuse_add_rms_norm(ep.graph_module)  # after fuse_rms_norm: it folds adds into those norms
    merge_sibling_linears(ep)  # after the patterns above: they match the linears' outputs, not their kind
    fuse_split_linear_glu(ep.graph_module)  # after merge_sibling_linears and fuse_llm_patterns' Glu
    return ep


def _scalar_constants(ep: ExportedProgram) -> Dict[str, float]:
    """Placeholder name -> value of every unmutated 0-d float constant: ExecuTorch's edge dialect
    lifts a Python number operand (an RMSNorm's eps) into one (a buffer once partitioned)."""
    return {name: t.item() for name, t in constant_inputs(ep).items() if t.dim() == 0 and t.dtype.is_floating_point}
