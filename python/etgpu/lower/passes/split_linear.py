"""Merges sibling linears (linears that read one input: an attention layer's q/k/v projections, an
MLP's gate/up) into one `etgpu::split_linear` node, lowered to one SplitLinear instruction.

Why: in a decode step each linear is a GEMV launch of 2-3 us, and the small ones (GQA's k/v,
512 x 2048) are too short to stream the weight at full rate on their own. One launch over the
siblings' weights concatenated along the output dim reads the same bytes in one longer stream.

Representation (schema/etgpu.fbs SplitLinear): the weights are concatenated at lowering time into
ONE constant (the originals are never stored: the program holds each weight byte once), and the
instruction writes each sibling's slice of the product into its own tensor. The alternative, one
concatenated output with the siblings as views of it, does not fit etgpu's IR: its tensors and
aliases are contiguous, and a column slice of a [T, N] output is strided as soon as T > 1
(prefill), so every consumer would need strided reads or a copy. Separate outputs keep every
consumer as it was, whatever T is; the kernels pay for it only in the GEMV epilogue's store
address (which sibling a column belongs to).

A sibling without a bias gets zeros in the concatenated bias when another one has a bias: adding
0 before the one rounding leaves its values unchanged (a few bytes per output column).

Merged only when it is valid and free: the same input node, rank >= 2, one float dtype for x,
weights and biases; each weight (and bias) a plain constant (a parameter, buffer or lifted
constant that is not mutated and not a tensor subclass) read by this linear alone, so that
concatenating it never stores a byte twice (a tied weight keeps its own linear); at most
kMaxSplitOutputs (8) siblings per instruction, more are merged in groups.

Quantized linears (TorchAO's dequantize_affine feeding the weight) are not merged yet: their
weight is not a placeholder, so they never match. They can join later the same way: etgpu's
packed codes, scales and zeros are row-major per output row (runtime/src/engine/ops.h), so they
concatenate along rows just as dense weights do, and SplitLinear would take a QuantWeight field
beside `w`. Until then the CUDA engine launches consecutive quantized linears that read one x as
one GEMV at run time (quant_linear_group, docs/cuda_engine.md), without the Glu folding.

A gated MLP's act(gate) * up (etgpu::glu, fuse_llm.py) over a merged gate/up pair is folded in too
(fuse_split_linear_glu): the SplitLinear then also writes the Glu's output, so on CUDA decode's one
GEMV launch does the MLP's first half (its epilogue pairs gate row j with up row j: no weight
reordering, prefill keeps its contiguous per-sibling rows) and the Glu launch is gone.

ETGPU_SPLIT_LINEAR=0 turns both off, ETGPU_SPLIT_LINEAR_GLU=0 only the Glu folding (for A/B
measurements); both are read when a program is lowered."""

import operator
import os
from typing import Dict, List, Optional

import torch
import torch.fx
from torch.export import ExportedProgram

from etgpu.lower.passes._fx import constant_inputs, dtype_of, op_name, replace_with_call, users
from etgpu.lower.passes.fuse_llm import glu

MAX_OUTPUTS = 8  # runtime/src/engine/ops.h kMaxSplitOutputs
_FLOATS = (torch.float32, torch.float16, torch.bfloat16)


@torch.library.custom_op("etgpu::split_linear", mutates_args=())
def split_linear(x: torch.Tensor, weights: List[torch.Tensor],
                 biases: List[Optional[torch.Tensor]]) -> List[torch.Tensor]:
    """Reference semantics of the SplitLinear instruction: one linear per (weight, bias)."""
    return [torch.nn.functional.linear(x, w, b) for w, b in zip(weights, biases)]


@split_linear.register_fake
def _(x, weights, biases):
    return [x.new_empty(*x.shape[:-1], w.shape[0]) for w in weights]


@torch.library.custom_op("etgpu::split_linear_glu", mutates_args=())
def split_linear_glu(x: torch.Tensor, weights: List[torch.Tensor], biases: List[Optional[torch.Tensor]],
                     act: str) -> torch.Tensor:
    """Reference semantics of a SplitLinear with a Glu output: act(gate) * up of its two outputs."""
    gate, up = split_linear(x, weights, biases)
    return glu(gate, up, act)


@split_linear_glu.register_fake
def _(x, weights, biases, act):
    return x.new_empty(*x.shape[:-1], weights[0].shape[0])


def _enabled(variable: str) -> bool:
    return os.environ.get(variable, "1") != "0"


def _plain_constants(ep: ExportedProgram) -> Dict[str, torch.Tensor]:
    """Placeholder name -> tensor of every weight that can be concatenated: a plain, unmutated
    parameter, buffer or constant."""
    return {name: t for name, t in constant_inputs(ep).items() if type(t) in (torch.Tensor, torch.nn.Parameter)}


def _own_constant(node, linear, constants, rank: int, dtype) -> bool:
    """`node` is a plain constant of `rank` and `dtype` that only `linear` reads."""
    return (isinstance(node, torch.fx.Node) and node.op == "placeholder" and node.name in constants
            and users(node) == [linear] and node.meta["val"].dim() == rank and dtype_of(node) == dtype)


def _input_of(linear, constants) -> Optional[torch.fx.Node]:
    """x of a linear that may join siblings (see the module docstring), else None."""
    if op_name(linear) != "aten.linear.default" or not 2 <= len(linear.args) <= 3 or linear.kwargs:
        return None
    x, weight = linear.args[:2]
    bias = linear.args[2] if len(linear.args) > 2 else None
    dtype = dtype_of(x)
    if not isinstance(x, torch.fx.Node) or dtype not in _FLOATS or x.meta["val"].dim() < 2:
        return None
    if dtype_of(linear) != dtype or not _own_constant(weight, linear, constants, 2, dtype):
        return None
    if bias is not None and not _own_constant(bias, linear, constants, 1, dtype):
        return None
    return x


def _merge(graph: torch.fx.Graph, x: torch.fx.Node, linears: List[torch.fx.Node]) -> None:
    """One split_linear before the first sibling; each sibling's users read its element."""
    weights = [linear.args[1] for linear in linears]
    biases = [linear.args[2] if len(linear.args) > 2 else None for linear in linears]
    with graph.inserting_before(linears[0]):
        call = graph.call_function(torch.ops.etgpu.split_linear.default, (x, weights, biases))
        items = [graph.call_function(operator.getitem, (call, i)) for i in range(len(linears))]
    call.meta["val"] = [linear.meta["val"] for linear in linears]
    for item, linear in zip(items, linears):
        item.meta["val"] = linear.meta["val"]
        linear.replace_all_uses_with(item)  # export's dtype assertions move to the element too
        graph.erase_node(linear)


def merge_sibling_linears(ep: ExportedProgram) -> int:
    """Rewrites each group of sibling linears in place; returns how many split_linear nodes."""
    if not _enabled("ETGPU_SPLIT_LINEAR"):
        return 0
    graph = ep.graph_module.graph
    constants = _plain_constants(ep)
    siblings: Dict[torch.fx.Node, List[torch.fx.Node]] = {}
    for node in graph.nodes:  # graph order: a group's first sibling is its earliest
        x = _input_of(node, constants)
        if x is not None:
            siblings.setdefault(x, []).append(node)
    merged = 0
    for x, linears in siblings.items():
        for start in range(0, len(linears), MAX_OUTPUTS):
            group = linears[start:start + MAX_OUTPUTS]
            if len(group) >= 2:
                _merge(graph, x, group)
                merged += 1
    if merged:
        graph.lint()
        ep.graph_module.recompile()
    return merged


def _gate_up_pair(gate, up, glu_node):
    """The split_linear whose two outputs are exactly `gate` and `up`, each read by `glu_node`
    alone; else None."""
    if not all(isinstance(n, torch.fx.Node) and n.target is operator.getitem for n in (gate, up)):
        return None
    call = gate.args[0]
    if (up.args[0] is not call or op_name(call) != "etgpu.split_linear.default" or len(call.args[1]) != 2
            or {gate.args[1], up.args[1]} != {0, 1}):
        return None
    return call if users(gate) == [glu_node] and users(up) == [glu_node] else None


def fuse_split_linear_glu(gm: torch.fx.GraphModule) -> int:
    """Rewrites glu(gate, up) over a two-output split_linear (see _gate_up_pair) into one
    etgpu::split_linear_glu; returns how many."""
    if not (_enabled("ETGPU_SPLIT_LINEAR") and _enabled("ETGPU_SPLIT_LINEAR_GLU")):
        return 0
    graph = gm.graph
    fused = 0
    for node in list(graph.nodes):
        if op_name(node) != "etgpu.glu.default":
            continue
        gate, up, act = node.args
        call = _gate_up_pair(gate, up, node)
        if call is None:
            continue
        x, weights, biases = call.args
        order = [gate.args[1], up.args[1]]  # the instruction's first output is the gate
        replace_with_call(graph, node, torch.ops.etgpu.split_linear_glu.default,
                          (x, [weights[i] for i in order], [biases[i] for i in order], act))
        fused += 1
    if fused:
        graph.lint()
        gm.recompile()
    return fused
