"""EtGpuPartitioner: claims every node whose etgpu lowering succeeds (a dry run of the same rule
that preprocess will run), so "supported" and "lowered" cannot disagree."""

from typing import Callable, Dict, List, Optional, Tuple

import torch
from executorch.exir.backend.compile_spec_schema import CompileSpec
from executorch.exir.backend.partitioner import DelegationSpec, Partitioner, PartitionResult
from executorch.exir.backend.utils import tag_constant_data, tag_mutated_buffer
from torch.export import ExportedProgram
from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
from torch.fx.passes.operator_support import OperatorSupportBase

from etgpu.decompositions import preserved_ops
from etgpu.executorch.backend import EtGpuBackend
from etgpu.lower.graph import explain_node

DEVICES = ("auto", "cuda", "cpu")


class EtGpuOperatorSupport(OperatorSupportBase):
    """A node is supported when lowering it alone succeeds; reasons are kept for reporting."""

    def __init__(self, range_constraints):
        self.range_constraints = range_constraints
        self.unsupported: Dict[str, str] = {}  # node name -> reason

    def is_node_supported(self, submodules, node: torch.fx.Node) -> bool:
        ok, reason = explain_node(node, self.range_constraints)
        if not ok and node.op == "call_function":
            self.unsupported[node.name] = reason
        return ok


def compile_specs(device: str = "auto") -> List[CompileSpec]:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return [CompileSpec("device", device.encode())]


class EtGpuPartitioner(Partitioner):
    def __init__(self, device: str = "auto"):
        super().__init__()
        self.delegation_spec = DelegationSpec(EtGpuBackend.__name__, compile_specs(device))
        self.unsupported: Dict[str, str] = {}  # of the last partition() call, for diagnostics

    def ops_to_not_decompose(
            self, ep: ExportedProgram) -> Tuple[List[torch._ops.OpOverload], Optional[Callable]]:
        """preserved_ops() that etgpu lowers directly, kept whole. An op is kept only when every
        node of it lowers: a kept op that is then declined would be neither decomposed nor
        delegated."""
        supported, declined, preserved = [], set(), preserved_ops()
        for node in ep.graph.nodes:
            if node.op != "call_function" or node.target not in preserved:
                continue
            ok, _ = explain_node(node, ep.range_constraints)
            if not ok:
                declined.add(node.target)
            elif node.target not in supported:
                supported.append(node.target)
        return [op for op in supported if op not in declined], None

    def partition(self, exported_program: ExportedProgram) -> PartitionResult:
        support = EtGpuOperatorSupport(exported_program.range_constraints)
        partitioner = CapabilityBasedPartitioner(
            exported_program.graph_module, support, allows_single_node_partition=True)
        tags: Dict[str, DelegationSpec] = {}
        for partition in partitioner.propose_partitions():
            tag = f"etgpu_{partition.id}"
            for node in partition.nodes:
                node.meta["delegation_tag"] = tag
            tags[tag] = self.delegation_spec
        # Weights and mutable state (KV caches) used only inside a partition go with it.
        tag_constant_data(exported_program)
        tag_mutated_buffer(exported_program)
        self.unsupported = support.unsupported
        return PartitionResult(tagged_exported_program=exported_program, partition_tags=tags)
