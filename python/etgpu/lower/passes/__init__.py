"""Graph passes run on the whole program before lowering: multi-node patterns rewritten into the
single ops etgpu has one instruction for. The partitioner's per-node dry run sees the graph before
these passes, which is safe: every node a pass removes is supported on its own."""

from typing import Dict

import torch
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind

from etgpu.lower.passes.cse import eliminate_common_subexpressions
from etgpu.lower.passes.fuse_llm import fuse_llm_patterns, fuse_rope_cache_writes
from etgpu.lower.passes.rms_norm import fuse_add_rms_norm, fuse_rms_norm
from etgpu.lower.passes.split_linear import fuse_split_linear_glu, merge_sibling_linears

_CONSTANT_KINDS = (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR)


def run_passes(ep: ExportedProgram) -> ExportedProgram:
    """Rewrites `ep`'s graph in place (and returns it)."""
    eliminate_common_subexpressions(ep.graph_module)
    fuse_rms_norm(ep.graph_module, _scalar_constants(ep))
    fuse_llm_patterns(ep.graph_module)
    fuse_rope_cache_writes(ep.graph_module)  # after fuse_llm_patterns: it folds writes into those ropes
    fuse_add_rms_norm(ep.graph_module)  # after fuse_rms_norm: it folds adds into those norms
    merge_sibling_linears(ep)  # after the patterns above: they match the linears' outputs, not their kind
    fuse_split_linear_glu(ep.graph_module)  # after merge_sibling_linears and fuse_llm_patterns' Glu
    return ep


def _scalar_constants(ep: ExportedProgram) -> Dict[str, float]:
    """Placeholder name -> value of every unmutated 0-d real constant tensor: ExecuTorch's edge
    dialect lifts a Python number operand (an RMSNorm's eps) into one (a buffer once partitioned)."""
    mutated = set(ep.graph_signature.buffers_to_mutate.values())
    found = {}
    for spec in ep.graph_signature.input_specs:
        if spec.kind not in _CONSTANT_KINDS or spec.target in mutated:
            continue
        value = ep.state_dict.get(spec.target, ep.constants.get(spec.target))
        if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype.is_floating_point:
            found[spec.arg.name] = value.item()
    return found
