"""Graph passes run on the whole program before lowering: multi-node patterns rewritten into the
single ops etgpu has one instruction for. The partitioner's per-node dry run sees the graph before
these passes, which is safe: every node a pass removes is supported on its own."""

from torch.export import ExportedProgram

from etgpu.lower.passes.cse import eliminate_common_subexpressions
from etgpu.lower.passes.fuse_llm import fuse_llm_patterns, fuse_rope_cache_writes
from etgpu.lower.passes.rms_norm import fuse_add_rms_norm, fuse_rms_norm
from etgpu.lower.passes.seq_major import fuse_seq_major_attention
from etgpu.lower.passes.split_linear import fuse_split_linear_glu, merge_sibling_linears


def run_passes(ep: ExportedProgram) -> ExportedProgram:
    """Rewrites `ep`'s graph in place (and returns it)."""
    eliminate_common_subexpressions(ep.graph_module)
    fuse_rms_norm(ep.graph_module)
    fuse_llm_patterns(ep.graph_module)
    fuse_rope_cache_writes(ep.graph_module)  # after fuse_llm_patterns: it folds writes into those ropes
    fuse_seq_major_attention(ep.graph_module)
    fuse_add_rms_norm(ep.graph_module)  # after fuse_rms_norm: it folds adds into those norms
    merge_sibling_linears(ep)  # after the patterns above: they match the linears' outputs, not their kind
    fuse_split_linear_glu(ep.graph_module)  # after merge_sibling_linears and fuse_llm_patterns' Glu
    return ep
