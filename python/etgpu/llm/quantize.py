"""TorchAO quantization recipes by name (`--quant`, `--quant-embeddings`), applied with
`quantize_` before torch.export; docs/quantization.md lists what each becomes in etgpu's IR."""

from collections import Counter
from typing import Callable, Dict, Optional

import torch

QUANT_SCHEMES = ("int4-g32", "int4-g64", "int4-g128", "int8", "int2-g32", "8da4w", "nvfp4")
EMBEDDING_SCHEMES = ("int8", "int4")


def linear_config(scheme: str):
    """The TorchAO config of a `--quant` scheme (export_llm makes nvfp4 weights exportable)."""
    from torchao.quantization import Int8DynamicActivationIntxWeightConfig, IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerAxis, PerGroup

    if scheme == "nvfp4":
        from torchao.prototype.mx_formats import NVFP4WeightOnlyConfig

        return NVFP4WeightOnlyConfig()
    if scheme == "8da4w":
        return Int8DynamicActivationIntxWeightConfig(weight_dtype=torch.int4, weight_granularity=PerGroup(32))
    if scheme == "int8":
        return IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0))
    bits, _, group = scheme.partition("-g")
    if scheme not in QUANT_SCHEMES or not group:
        raise ValueError(f"unknown quantization scheme {scheme!r}; choose one of {QUANT_SCHEMES}")
    dtype = {"int2": torch.int2, "int4": torch.int4}[bits]
    return IntxWeightOnlyConfig(weight_dtype=dtype, granularity=PerGroup(int(group)))


def embedding_config(scheme: str):
    """int8: per row (one scale per embedding row); int4: groups of 32."""
    from torchao.quantization import IntxWeightOnlyConfig
    from torchao.quantization.granularity import PerAxis, PerGroup

    if scheme not in EMBEDDING_SCHEMES:
        raise ValueError(f"unknown embedding scheme {scheme!r}; choose one of {EMBEDDING_SCHEMES}")
    if scheme == "int8":
        return IntxWeightOnlyConfig(weight_dtype=torch.int8, granularity=PerAxis(0))
    return IntxWeightOnlyConfig(weight_dtype=torch.int4, granularity=PerGroup(32))


def quantize_model(model: torch.nn.Module, quant: Optional[str], quant_embeddings: Optional[str] = None):
    """Quantizes a transformers causal LM in place. With `quant_embeddings` and tied embeddings,
    the LM head reuses the quantized embedding tensor, so it is stored (and repacked) once."""
    if not quant and not quant_embeddings:
        return model
    from torchao.quantization import quantize_

    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embed.weight
    if quant_embeddings:
        quantize_(embed, embedding_config(quant_embeddings), filter_fn=_is(torch.nn.Embedding))
        if tied:
            head.weight = embed.weight
    if quant:
        skip = head if (tied and quant_embeddings) else None
        quantize_(model, linear_config(quant),
                  filter_fn=lambda module, _fqn: isinstance(module, torch.nn.Linear) and module is not skip)
    return model


def _is(kind) -> Callable:
    return lambda module, _fqn: isinstance(module, kind)



def packed_bytes(rows: int, cols: int, bits: int, group: int, scale_bytes: int, zeros: bool = False) -> int:
    """Bytes of one packed [rows, cols] weight (codes + scales [+ zeros]) in etgpu's layout."""
    groups = rows * (cols // group)
    return rows * cols * bits // 8 + groups * scale_bytes * (2 if zeros else 1)


def weight_bytes(model: torch.nn.Module, bits: int, group: int, embedding_bits: int) -> Dict[str, int]:
    """Weight bytes {"quantized", "dense"} as the engines hold them, of a transformers LM (may
    live on the meta device) quantized with a symmetric linear scheme and embeddings (8: int8 per
    row; 4: int4 groups of 32) tied to the LM head. Scales have the model's dtype; the file stores
    them PackedFloat-encoded and the codes HuffmanBytes-encoded, each smaller by a data-dependent
    amount. "dense" is an upper bound:
    lowering stores identical constants (e.g. fresh norm weights) once."""
    embed, head = model.get_input_embeddings(), model.get_output_embeddings()
    scale_bytes = embed.weight.element_size()
    seen, total = set(), Counter()
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if weight is None or id(weight) in seen or module is head:
            continue
        seen.add(id(weight))
        if module is embed:
            rows, cols = weight.shape
            total["quantized"] += packed_bytes(rows, cols, embedding_bits, cols if embedding_bits == 8 else 32,
                                               scale_bytes)
        elif isinstance(module, torch.nn.Linear):
            total["quantized"] += packed_bytes(*weight.shape, bits, group, scale_bytes)
        else:
            total["dense"] += weight.numel() * weight.element_size()
    return dict(total)
