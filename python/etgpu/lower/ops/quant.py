"""TorchAO quantized weights -> QuantizedLinear / QuantizedEmbedding (docs/quantization.md).

The exported patterns (after `quantize_`):

  weight-only int2/4/8 (IntxWeightOnlyConfig), and the weights of 8da:
      qdata, scale, zero_point   = access_subclass_inner_tensor(w, ...)   (plain weights on the .pte path)
      wq = torchao.dequantize_affine(qdata, [1, group], scale, zero_point, int8, qmin, qmax[, dtype])
      aten.linear(x, wq[, bias])  |  aten.embedding(wq, index)
  8da (Int8DynamicActivationIntxWeightConfig) adds, on the activation:
      scale, zero = torchao.choose_qparams_affine(x, ASYMMETRIC, [1, .., K], int8, -128, 127, ...)
      xq = torchao.dequantize_affine(torchao.quantize_affine(x, ...), ...)  -> aten.linear(xq, wq)
  NVFP4: aten.linear(x, etgpu::dequantize_nvfp4(codes, scales, tensor_scale, dtype)), from
      TorchAO's NVFP4WeightOnlyConfig weights made exportable by etgpu.nvfp4.to_exportable.

The pieces before the linear/embedding emit nothing (`ctx.defer`); the consumer repacks the
weight into etgpu's layout and emits one instruction. Repacked constants are keyed by content,
so a tied embedding / LM head is stored once."""

import operator
from dataclasses import dataclass
import torch

from etgpu.ir.ActQuant import ActQuant
from etgpu.ir.QuantScheme import QuantScheme
from etgpu.ir.QuantWeight import QuantWeightT
from etgpu.lower.registry import Unsupported, lowering, target_name

_DEQUANT = "torchao.dequantize_affine.default"
_QUANT = "torchao.quantize_affine.default"
_CHOOSE = "torchao.choose_qparams_affine.default"
_SUBCLASS_ACCESS = "export.access_subclass_inner_tensor.default"
_BITS = {(-2, 1): 2, (-8, 7): 4, (-128, 127): 8}  # TorchAO's signed ranges per bit width
NVFP4_GROUP = 16
_DEQUANT_NVFP4 = "etgpu.dequantize_nvfp4.default"
# Ops that read a weight only to have it repacked: such weights are never stored as they are.
REPACKING_OPS = (_DEQUANT, _DEQUANT_NVFP4, _SUBCLASS_ACCESS)


@dataclass
class QuantizedWeight:
    """A deferred dequantize_affine of a weight: the operands its consumer repacks."""
    node: torch.fx.Node
    bits: int
    group: int
    qmin: int

    def __str__(self):
        return f"TorchAO int{self.bits} weight, group {self.group}"


@dataclass
class NvFp4Weight:
    """A deferred etgpu::dequantize_nvfp4 (etgpu/nvfp4.py) of a weight."""
    node: torch.fx.Node

    def __str__(self):
        return "NVFP4 weight"


@dataclass
class ActivationQuant:
    """A deferred 8da fake-quant of activation `x` (per-token asymmetric int8)."""
    x: torch.fx.Node

    def __str__(self):
        return "TorchAO int8 per-token activation quantization"


def _name(node) -> str:
    return target_name(node.target) if isinstance(node, torch.fx.Node) and node.op == "call_function" else ""


_AS_WEIGHT = ([("aten.linear.default", 1), ("aten.embedding.default", 0)], "the weight of a linear or embedding")


def _consumed_as(node: torch.fx.Node, uses, what: str) -> None:
    """Every user must be one of `uses` (target name, argument position)."""
    for user in node.users:
        if not any(_name(user) == target and len(user.args) > pos and user.args[pos] is node
                   for target, pos in uses):
            raise Unsupported(f"{node.name} ({_name(node)}) feeds {user.name} ({_name(user) or user.op}); "
                              f"etgpu lowers it only as {what}")


# ---- pattern pieces: recognised, deferred to the consumer ---------------------------------------

@lowering(_SUBCLASS_ACCESS)
def access_subclass_inner_tensor(ctx, node):
    owner, attr = node.args[:2]
    tensor = ctx.host_tensor(owner)
    if tensor is not None:
        ctx.lazy_constant(node, getattr(tensor, attr))
    elif ctx.has_value(owner):
        raise Unsupported(f"{node.name}: {owner.name} is not a weight; only weights may be tensor subclasses")
    # The partitioner's dry run has no weights: the node is claimed, the real lowering decides.


@lowering(_CHOOSE, _QUANT)
def activation_quant_piece(ctx, node):
    ctx.defer(node, _name(node))


@lowering(_DEQUANT)
def dequantize_affine(ctx, node):
    qdata, block_size, _scale, _zero, _input_dtype, qmin, qmax = node.args[:7]
    if _name(qdata) == _QUANT:
        ctx.defer(node, _activation_quant(node))
        return
    shape = ctx.meta(qdata).shape
    if len(shape) != 2 or list(block_size)[0] != 1 or shape[1] % block_size[1]:
        raise Unsupported(f"{node.name}: dequantize_affine of a {list(shape)} weight with block {list(block_size)}; "
                          f"etgpu needs a 2-d weight quantized per row group ([1, group])")
    bits = _BITS.get((qmin, qmax))
    if bits is None:
        raise Unsupported(f"{node.name}: quant range [{qmin}, {qmax}] is not signed int2/int4/int8")
    _consumed_as(node, *_AS_WEIGHT)
    ctx.defer(node, QuantizedWeight(node, bits, int(block_size[1]), qmin))


@lowering(_DEQUANT_NVFP4)
def dequantize_nvfp4(ctx, node):
    _consumed_as(node, [("aten.linear.default", 1)], "the weight of a linear")
    ctx.defer(node, NvFp4Weight(node))


def _activation_quant(node) -> ActivationQuant:
    """Checks dequantize(quantize(x, choose_qparams(x))) is TorchAO's per-token asymmetric int8."""
    quant = node.args[0]
    x, block = quant.args[0], list(quant.args[1])
    scale, zero = quant.args[2], quant.args[3]
    choose = scale.args[0] if scale.target is operator.getitem else None
    ok = (choose is not None and _name(choose) == _CHOOSE and zero.target is operator.getitem
          and zero.args[0] is choose and choose.args[0] is x and str(choose.args[1]) == "ASYMMETRIC"
          and list(choose.args[2]) == block and tuple(choose.args[3:6]) == (torch.int8, -128, 127)
          and all(a is None for a in choose.args[6:8])  # default eps and scale dtype: the kernel's
          and tuple(quant.args[4:7]) == (torch.int8, -128, 127) and node.args[2] is scale
          and node.args[3] is zero and block == list(node.args[1])
          and block == [1] * (len(block) - 1) + [x.meta["val"].shape[-1]])
    if not ok:
        raise Unsupported(f"{node.name}: activation quantization other than TorchAO's per-token asymmetric int8")
    _consumed_as(node, [("aten.linear.default", 0)], "the input of a quantized linear")
    return ActivationQuant(x)


# ---- repacking (one helper for every scheme) ------------------------------------------------------

def pack_codes(codes: torch.Tensor, bits: int) -> torch.Tensor:
    """[N, K] unsigned codes < 2^bits -> u8 [N, K*bits/8], element k at bit (k*bits) % 8 of byte
    (k*bits) // 8, low bits first."""
    n, k = codes.shape
    per_byte = 8 // bits
    if k % per_byte:
        raise Unsupported(f"a row of {k} {bits}-bit codes is not a whole number of bytes")
    lanes = codes.to(torch.int32).reshape(n, k // per_byte, per_byte)
    shifts = torch.arange(per_byte, dtype=torch.int32) * bits
    return (lanes << shifts).sum(-1).to(torch.uint8)


def _affine_operands(ctx, q: QuantizedWeight):
    """Codes u = q - qmin; zeros (in the scales' dtype) only when some zero point is not the
    mid-code 2^(bits-1), the implicit zero of a symmetric weight."""
    qdata, _, scale, zero = q.node.args[:4]
    q_t, scale_t = ctx.host_tensor(qdata), ctx.host_tensor(scale)
    zero_t = ctx.host_tensor(zero) if zero is not None else None
    if q_t is None or scale_t is None or (zero is not None and zero_t is None):
        raise Unsupported(f"{q.node.name}: quantized weight operands are not constants")
    if zero_t is not None and zero_t.dtype.is_floating_point:
        raise Unsupported(f"{q.node.name}: float zero points (TorchAO's float zero domain) are not supported")
    n, k = q_t.shape
    groups = k // q.group
    codes = q_t.to(torch.int32) - q.qmin
    if codes.min() < 0 or codes.max() >= 1 << q.bits:
        raise Unsupported(f"{q.node.name}: quantized values outside [{q.qmin}, {q.qmin + (1 << q.bits) - 1}]")
    scales = scale_t.reshape(n, groups).contiguous()
    fields = dict(scheme=QuantScheme.Affine, bits=q.bits, group=q.group)
    tensors = {"codes": pack_codes(codes, q.bits), "scales": scales}
    if zero_t is not None:
        zeros = zero_t.reshape(n, groups).to(torch.int32) - q.qmin
        if not torch.all(zeros == 1 << (q.bits - 1)):
            tensors["zeros"] = zeros.to(scales.dtype)
    return fields, tensors


def _nvfp4_operands(ctx, q: NvFp4Weight):
    codes, scales = (ctx.host_tensor(a) for a in q.node.args[:2])
    if codes is None or scales is None:
        raise Unsupported(f"{q.node.name}: NVFP4 weight operands are not constants")
    fields = dict(scheme=QuantScheme.NvFp4, bits=4, group=NVFP4_GROUP, tensor_scale=float(q.node.args[2]))
    return fields, {"codes": codes, "scales": scales}


def quantized_weight_of(ctx, arg):
    """The deferred quantized weight behind a linear or embedding weight operand, or None."""
    deferred = ctx.deferred.get(arg) if isinstance(arg, torch.fx.Node) else None
    return deferred if isinstance(deferred, (QuantizedWeight, NvFp4Weight)) else None


def _weight_table(ctx, weight) -> QuantWeightT:
    """Repacks (once per weight: tied uses share the constants) and returns the IR table."""
    memo_key = ("quant_weight", weight.node.args[0])  # by codes: each use of a tied weight shares
    if memo_key not in ctx.memo:
        pack = _affine_operands if isinstance(weight, QuantizedWeight) else _nvfp4_operands
        fields, tensors = pack(ctx, weight)
        # Each operand is stored in its role's compact encoding when that pays (codes entropy-coded,
        # scales and float zeros packed); the engines read the decoded bytes either way.
        ids = {role: ctx.constant(f"{weight.node.name}_{role}", t.contiguous(), quant_role=role)
               for role, t in tensors.items()}
        ctx.memo[memo_key] = (fields, ids)
    fields, ids = ctx.memo[memo_key]
    table = QuantWeightT()
    for key, value in fields.items():
        setattr(table, {"tensor_scale": "tensorScale"}.get(key, key), value)
    table.codes, table.scales = ids["codes"], ids["scales"]
    table.zeros = ids.get("zeros", -1)
    table.zeroIsFloat = False
    return table


# ---- consumers: called by the linear and embedding rules ------------------------------------------

def lower_linear(ctx, node, weight) -> None:
    x, bias = node.args[0], (node.args[2] if len(node.args) > 2 else None)
    act = ActQuant.None_
    source = ctx.deferred.get(x) if isinstance(x, torch.fx.Node) else None
    if isinstance(source, ActivationQuant):
        x, act = source.x, ActQuant.Int8PerTokenAsym
    fields = dict(x=ctx.input(x), w=_weight_table(ctx, weight), act=act)
    if bias is not None:
        fields["bias"] = ctx.input(bias)
    ctx.emit("QuantizedLinear", out=ctx.output(node), **fields)


def lower_embedding(ctx, node, weight) -> None:
    index = node.args[1]
    ctx.emit("QuantizedEmbedding", index=ctx.input(index), w=_weight_table(ctx, weight), out=ctx.output(node))
