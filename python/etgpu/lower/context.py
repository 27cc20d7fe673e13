"""The state of one lowering: IR tensors and instructions built from an FX graph.

Lowering rules see only this API:
  ctx.input(arg)               tensor id of an FX node's value (scalars: use ctx.scalar_tensor)
  ctx.output(node)             a new arena tensor shaped like the node's value
  ctx.new_tensor(dtype, shape) a new arena tensor (scratch between two instructions of one rule)
  ctx.alias(node, of=id)       a tensor sharing `of`'s bytes with the node's shape (views)
  ctx.bind(node, id)           the node's value is an existing tensor
  ctx.emit("Binary", op=..., a=..., out=...)   append an instruction (fields in snake_case)
  ctx.meta(arg)                the FakeTensor (or Python scalar) an argument stands for
  ctx.dim(size)                an IR dim for an int or SymInt
  ctx.host_tensor(arg)         the concrete value of a weight (for rules that repack weights)
  ctx.defer(node, what)        the node emits nothing; a later rule consumes it as a pattern
  ctx.memo                     a dict rules may use to do work once per lowering
"""

import importlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
import torch.fx

from etgpu.dtypes import dtype_code
from etgpu.ir.ConstantEncoding import ConstantEncoding
from etgpu.lower.registry import Unsupported
from etgpu.lower.symbolic import AffineDim, SymbolTable

MAX_RANK = 8


class Storage:
    ARENA, CONSTANT, MUTABLE, ALIAS = 0, 1, 2, 3


@dataclass
class TensorSpec:
    name: str
    dtype: torch.dtype
    shape: List[AffineDim]
    storage: int = Storage.ARENA
    key: Optional[str] = None       # constant / mutable initial value, by key
    data: Optional[bytes] = None    # small inline constants
    alias_of: int = -1
    offset: int = 0
    nbytes: int = 0
    encoding: int = ConstantEncoding.Raw  # how `key`'s stored bytes represent the elements


@dataclass
class Emitted:
    op: str                 # IR table name, e.g. "Binary"
    fields: dict
    reads: List[int] = field(default_factory=list)
    writes: List[int] = field(default_factory=list)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class LoweringContext:
    def __init__(self, symbols: SymbolTable):
        self.symbols = symbols
        self.tensors: List[TensorSpec] = []
        self.instructions: List[Emitted] = []
        self.values: Dict[torch.fx.Node, int] = {}
        self.tuple_values: Dict[torch.fx.Node, List[Optional[int]]] = {}  # multi-output nodes
        self.inputs: List[int] = []
        self.outputs: List[int] = []
        self.constants: Dict[str, bytes] = {}   # key -> bytes, for the container / named data
        # Weights are materialized as IR constants on first use only: a weight a rule repacks
        # (quantized codes) must not also be stored in its original form.
        self.lazy_constants: Dict[torch.fx.Node, tuple] = {}  # node -> (tensor, mutable)
        self.deferred: Dict[torch.fx.Node, object] = {}       # pattern pieces, see defer()
        self.memo: Dict[object, object] = {}  # rules' per-lowering cache (e.g. repacked weights)
        self._inline_scalars: Dict[tuple, int] = {}

    # ---- values -------------------------------------------------------------------------------
    def meta(self, arg):
        if isinstance(arg, torch.fx.Node):
            return arg.meta.get("val")
        return arg

    def input(self, arg) -> int:
        if not isinstance(arg, torch.fx.Node):
            raise Unsupported(f"expected a tensor operand, got {type(arg).__name__}")
        if arg in self.lazy_constants:
            self._materialize(arg)
        if arg in self.deferred:
            raise Unsupported(f"{arg.name} ({self.deferred[arg]}) is only lowered as part of a pattern, "
                              f"but another node uses its value")
        if arg not in self.values:
            raise Unsupported(f"operand {arg.name} has no etgpu value (it was not lowered)")
        return self.values[arg]

    def has_value(self, arg) -> bool:
        return isinstance(arg, torch.fx.Node) and (arg in self.values or arg in self.lazy_constants)

    def lazy_constant(self, node: torch.fx.Node, tensor: torch.Tensor, mutable: bool = False) -> None:
        """`node` stands for a weight; it becomes an IR constant only if a rule reads it."""
        self.lazy_constants[node] = (tensor, mutable)

    def host_tensor(self, arg) -> Optional[torch.Tensor]:
        """The concrete tensor behind a weight operand; None for a run-time value (or in the
        partitioner's dry run, which has no weights)."""
        entry = self.lazy_constants.get(arg) if isinstance(arg, torch.fx.Node) else None
        return entry[0] if entry else None

    def _materialize(self, node: torch.fx.Node) -> None:
        tensor, mutable = self.lazy_constants.pop(node)
        if type(tensor) not in (torch.Tensor, torch.nn.Parameter):
            raise Unsupported(f"{node.name} is a {type(tensor).__name__} tensor subclass used directly; "
                              f"etgpu lowers only the TorchAO patterns in docs/quantization.md")
        tid = self.constant(node.name, tensor)
        if mutable:
            self.tensors[tid].storage = Storage.MUTABLE
        self.values[node] = tid

    def defer(self, node: torch.fx.Node, what: str) -> None:
        """Marks `node` as a piece of a multi-node pattern that a later rule lowers as a whole
        (e.g. TorchAO's dequantize_affine feeding a linear); reading its value is an error."""
        self.deferred[node] = what

    def dim(self, size) -> AffineDim:
        return self.symbols.dim(size)

    def shape_of(self, value) -> List[AffineDim]:
        if value.dim() > MAX_RANK:
            raise Unsupported(f"rank {value.dim()} exceeds etgpu's maximum of {MAX_RANK}")
        return [self.dim(s) for s in value.shape]

    def add_tensor(self, spec: TensorSpec) -> int:
        dtype_code(spec.dtype)  # raises for dtypes the IR lacks
        self.tensors.append(spec)
        return len(self.tensors) - 1

    def new_tensor(self, dtype: torch.dtype, shape: Sequence, name: str = "scratch") -> int:
        dims = [s if isinstance(s, AffineDim) else self.dim(s) for s in shape]
        return self.add_tensor(TensorSpec(name, dtype, dims))

    def output(self, node: torch.fx.Node, dtype: Optional[torch.dtype] = None) -> int:
        value = node.meta.get("val")
        if not isinstance(value, torch.Tensor):
            raise Unsupported(f"{node.name} does not produce a single tensor")
        tid = self.add_tensor(TensorSpec(node.name, dtype or value.dtype, self.shape_of(value)))
        self.values[node] = tid
        return tid

    def alias(self, node: torch.fx.Node, of: int) -> int:
        value = node.meta["val"]
        base = self.tensors[of]
        if base.dtype != value.dtype:
            raise Unsupported("a view cannot change dtype")
        root = base.alias_of if base.storage == Storage.ALIAS else of
        tid = self.add_tensor(TensorSpec(node.name, value.dtype, self.shape_of(value),
                                         storage=Storage.ALIAS, alias_of=root))
        self.values[node] = tid
        return tid

    def bind(self, node: torch.fx.Node, tid: int) -> None:
        self.values[node] = tid

    def constant(self, name: str, tensor: torch.Tensor, key: Optional[str] = None,
                 quant_role: Optional[str] = None) -> int:
        """A weight: bytes stored once by `key` (a content hash by default, so tied weights share).
        `quant_role`: the tensor is a quantized weight's "codes", "scales" or "zeros", stored in
        that role's compact lossless encoding when it pays and is enabled
        (constants.encode_quant_operand)."""
        from etgpu.lower.constants import content_key, encode_quant_operand, tensor_bytes

        stored, encoding = encode_quant_operand(tensor, quant_role) if quant_role else (None, ConstantEncoding.Raw)
        if stored is None:
            stored, encoding = tensor_bytes(tensor), ConstantEncoding.Raw
        key = key or content_key(stored, tensor)
        self.constants.setdefault(key, stored)
        return self.add_tensor(TensorSpec(name, tensor.dtype, [AffineDim(-1, 0, int(s)) for s in tensor.shape],
                                          storage=Storage.CONSTANT, key=key, encoding=encoding))

    def scalar_tensor(self, value, dtype: torch.dtype) -> int:
        """A 0-d inline constant (broadcasts against anything)."""
        cache_key = (value, dtype)
        if cache_key not in self._inline_scalars:
            from etgpu.lower.constants import tensor_bytes

            data = tensor_bytes(torch.tensor(value, dtype=dtype))
            self._inline_scalars[cache_key] = self.add_tensor(
                TensorSpec(f"scalar_{value}", dtype, [], storage=Storage.CONSTANT, data=data))
        return self._inline_scalars[cache_key]

    # ---- instructions -------------------------------------------------------------------------
    def emit(self, table: str, **fields) -> None:
        """Appends IR table `table` (e.g. "Binary"); tensor operands are listed in TENSOR_READS."""
        module = importlib.import_module(f"etgpu.ir.{table}")
        probe = getattr(module, f"{table}T")()
        for name in fields:
            if not hasattr(probe, _camel(name)):
                raise TypeError(f"IR table {table} has no field {name}")
        reads, writes = _operand_fields(table, fields)
        self.instructions.append(Emitted(table, fields, reads, writes))


# Tensor operands of each IR table: fields read, and the fields written (`out` unless listed).
# CopyInto updates its destination in place, so it both reads and writes `dst`; AddRmsNorm writes
# its normed output and the sum (the order the runtime lists them in: out first); a Rope with a
# cache updates the cache in place (IndexCopy's dst) and writes out only when out >= 0; SplitLinear
# writes each of its outs, and its glu_out when it has one.
TENSOR_READS = {
    "Unary": ("x",), "Binary": ("a", "b"), "Where": ("cond", "a", "b"), "Cast": ("x",), "Fill": (),
    "Arange": (), "MatMul": ("a", "b", "bias"), "Reduce": ("x",), "Softmax": ("x",),
    "LayerNorm": ("x", "weight", "bias"), "RmsNorm": ("x", "weight"), "Permute": ("x",),
    "Expand": ("x",), "Slice": ("x",), "Select": ("x",), "Cat": ("inputs",),
    "IndexSelect": ("x", "index"), "Gather": ("x", "index"), "Sdpa": ("q", "k", "v", "mask"),
    "CopyInto": ("x", "dst"), "IndexCopy": ("index", "x", "dst"),
    "Rope": ("x", "cos", "sin", "index", "cache", "norm"),
    "Glu": ("a", "b"), "QuantizedLinear": ("x", "w", "bias"), "QuantizedEmbedding": ("index", "w"),
    "AddRmsNorm": ("x", "residual", "weight"), "SplitLinear": ("x", "w", "bias"),
}
# Nested tables whose fields are tensor operands (by generated class name).
NESTED_READS = {"QuantWeightT": ("codes", "scales", "zeros"), "RopeNormT": ("weight",)}
TENSOR_WRITES = {"CopyInto": ("dst",), "IndexCopy": ("dst",), "AddRmsNorm": ("out", "sum"),
                 "Rope": ("out", "cache"), "SplitLinear": ("outs", "glu_out")}


def _operand_fields(op: str, fields: dict):
    if op not in TENSOR_READS:
        raise TypeError(f"IR table {op} has no operand description in TENSOR_READS")
    reads: List[int] = []
    for name in TENSOR_READS[op]:
        value = fields.get(name, -1)
        nested = NESTED_READS.get(type(value).__name__)
        if nested:
            value = [getattr(value, f) for f in nested]
        values = value if isinstance(value, (list, tuple)) else [value]
        reads.extend(v for v in values if v >= 0)
    # Optional writes (a Rope's cache, or its out when it writes only the cache) are -1 when absent;
    # a list (SplitLinear's outs) writes each of its tensors.
    writes: List[int] = []
    for name in TENSOR_WRITES.get(op, ("out",)):
        value = fields.get(name, -1)
        writes.extend(v for v in (value if isinstance(value, (list, tuple)) else [value]) if v >= 0)
    return reads, writes
