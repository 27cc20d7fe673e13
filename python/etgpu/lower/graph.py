"""Lowering a whole ExportedProgram (ATen or Edge dialect) to an IR payload plus its constants."""

import operator
from dataclasses import dataclass
from typing import Dict

import torch
import torch.fx
from torch.export import ExportedProgram
from torch.export.graph_signature import InputKind, OutputKind

from etgpu.lower.context import LoweringContext, TensorSpec
from etgpu.lower.memory_plan import plan_memory
from etgpu.lower.ops.matmul import SPLIT_LINEAR_OPS
from etgpu.lower.ops.quant import REPACKING_OPS
from etgpu.lower.passes import run_passes
from etgpu.lower.registry import Unsupported, lookup, target_name
from etgpu.lower.serialize import serialize
from etgpu.lower.symbolic import SymbolTable


@dataclass
class LoweredProgram:
    payload: bytes
    constants: Dict[str, bytes]
    num_instructions: int
    arena_bytes: int


def _state_tensor(ep: ExportedProgram, target: str) -> torch.Tensor:
    if target in ep.state_dict:
        return ep.state_dict[target]
    if target in ep.constants:
        return ep.constants[target]
    raise Unsupported(f"no value for lifted input {target}")


def _lower_placeholders(ep: ExportedProgram, ctx: LoweringContext) -> None:
    specs = {spec.arg.name: spec for spec in ep.graph_signature.input_specs}
    mutated = set(ep.graph_signature.buffers_to_mutate.values())
    for node in ep.graph.nodes:
        if node.op != "placeholder":
            continue
        spec = specs[node.name]
        if spec.kind == InputKind.USER_INPUT:
            value = node.meta.get("val")
            if not isinstance(value, torch.Tensor):
                raise Unsupported(f"input {node.name} is not a tensor ({type(value).__name__})")
            tid = ctx.add_tensor(TensorSpec(node.name, value.dtype, ctx.shape_of(value)))
            ctx.values[node] = tid
            ctx.inputs.append(tid)
        elif spec.kind in (InputKind.PARAMETER, InputKind.BUFFER, InputKind.CONSTANT_TENSOR):
            tensor = _state_tensor(ep, spec.target)
            ctx.lazy_constant(node, tensor, mutable=spec.target in mutated)
            if not _repacked_only(node, tensor):
                ctx.input(node)  # materialized now: constants keep their placeholder order
        else:
            raise Unsupported(f"input {node.name} of kind {spec.kind} is not supported")


def _repacked_only(node: torch.fx.Node, tensor: torch.Tensor) -> bool:
    """A weight whose readers repack it (TorchAO quantized weights, sibling linears' weights
    concatenated into one) is stored only in the form the rule emits, so it stays lazy (see
    LoweringContext.lazy_constant); so does an unread one (a tied weight's second copy after
    ExecuTorch/export unwrap it)."""
    return type(tensor) not in (torch.Tensor, torch.nn.Parameter) or all(
        target_name(u.target) in REPACKING_OPS + SPLIT_LINEAR_OPS for u in node.users)


def lower_node(ctx: LoweringContext, node: torch.fx.Node) -> None:
    if node.target is operator.getitem and node.args[0] in ctx.deferred:
        ctx.defer(node, f"element of {node.args[0].name}")  # part of the same pattern
        return
    if node.target is operator.getitem:
        source, index = node.args
        items = ctx.tuple_values.get(source)
        if items is None or index >= len(items) or items[index] is None:
            raise Unsupported(f"{node.name}: element {index} of {source.name} is not produced by etgpu")
        ctx.bind(node, items[index])
        return
    if _is_symbolic_scalar(node):
        return  # size arithmetic: rules read sizes from node metadata, so nothing to compute
    rule = lookup(node.target)
    if rule is None:
        raise Unsupported(f"no etgpu lowering for {target_name(node.target)}")
    rule(ctx, node)


def _is_symbolic_scalar(node: torch.fx.Node) -> bool:
    value = node.meta.get("val")
    return isinstance(value, (torch.SymInt, torch.SymFloat, torch.SymBool)) and not isinstance(
        node.target, torch._ops.OpOverload)


def _lower_outputs(ep: ExportedProgram, ctx: LoweringContext, output_node: torch.fx.Node) -> None:
    values = output_node.args[0]
    mutations = {spec.arg.name: spec.target for spec in ep.graph_signature.output_specs
                 if spec.kind == OutputKind.BUFFER_MUTATION}
    placeholders = {n.name: n for n in ep.graph.nodes if n.op == "placeholder"}
    buffer_nodes = {spec.target: placeholders[spec.arg.name] for spec in ep.graph_signature.input_specs
                    if spec.kind == InputKind.BUFFER}
    for value in values:
        if not isinstance(value, torch.fx.Node):
            raise Unsupported(f"output {value!r} is not a tensor")
        if value.name in mutations:
            # The new state is copied into the delegate-held buffer (the whole buffer).
            state = ctx.input(buffer_nodes[mutations[value.name]])
            new = ctx.input(value)
            if new != state:
                ctx.emit("CopyInto", x=new, dst=state, dim=0, start=ctx.dim(0))
            continue
        ctx.outputs.append(ctx.input(value))


def lower_program(ep: ExportedProgram) -> LoweredProgram:
    ep = run_passes(ep)
    ctx = LoweringContext(SymbolTable(ep.range_constraints))
    _lower_placeholders(ep, ctx)
    for node in ep.graph.nodes:
        if node.op == "call_function":
            lower_node(ctx, node)
        elif node.op == "output":
            _lower_outputs(ep, ctx, node)
        elif node.op not in ("placeholder",):
            raise Unsupported(f"graph node {node.name} of kind {node.op} is not supported")
    arena = plan_memory(ctx)
    return LoweredProgram(serialize(ctx, arena), ctx.constants, len(ctx.instructions), arena)


def node_is_supported(node: torch.fx.Node, range_constraints) -> bool:
    """Dry run of the node's lowering with stand-in tensors for its operands."""
    ok, _ = explain_node(node, range_constraints)
    return ok


def explain_node(node: torch.fx.Node, range_constraints):
    """(supported, reason) for one node, by lowering it alone."""
    if node.op != "call_function":
        return False, "not a call"
    ctx = LoweringContext(SymbolTable(range_constraints))
    try:
        for arg in node.all_input_nodes:
            value = arg.meta.get("val")
            if isinstance(value, torch.Tensor):
                ctx.values[arg] = ctx.add_tensor(TensorSpec(arg.name, value.dtype, ctx.shape_of(value)))
            elif isinstance(value, (tuple, list)):
                ctx.tuple_values[arg] = [
                    ctx.add_tensor(TensorSpec(arg.name, v.dtype, ctx.shape_of(v)))
                    if isinstance(v, torch.Tensor) else None for v in value]
        lower_node(ctx, node)
    except (Unsupported, TypeError) as reason:
        return False, str(reason)
    return True, ""
