"""TorchAO quantization recipes by name (`--quant`, `--quant-embeddings`), applied with
`quantize_` before torch.export; docs/quantization.md lists what each becomes in etgpu's IR."""

from typing import Callable, Optional

import torch

QUANT_SCHEMES = ("int4-g32", "int4-g64", "int4-g128", "int8", "int2-g32", "8da4w", "nvfp4")
EMBEDDING_SCHEMES = ("int8", "int4")


def linear_config(scheme: str):
    """The TorchAO config of a `--quant` scheme."""
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

