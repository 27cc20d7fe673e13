"""Bytes a decode step must move through device memory, at the least: every weight the step
reads, once (the embedding table one row, the LM head in full; a tied table once, since the head
reads all of it), the KV cache of the positions attended to, the new token's K and V written, and
the logits row written. Counted from the model's own tensors; a TorchAO quantized weight is charged
its codes at their bit width (TorchAO keeps sub-byte codes one per byte; etgpu's layout packs
them, and a packed read is the least any engine must do) plus its scales and zeros as stored. The
roofline time of a step is these bytes over the measured copy bandwidth."""

from typing import Dict

import torch


# Sub-byte integer dtypes TorchAO quantizes to, by bit width.
_SUB_BYTE_BITS = {getattr(torch, f"{kind}{bits}"): bits for kind in ("int", "uint") for bits in range(1, 8)
                  if hasattr(torch, f"{kind}{bits}")}


def _unique_bytes(leaves) -> int:
    seen, total = set(), 0
    for t, bits in leaves:
        key = (t.untyped_storage().data_ptr(), t.storage_offset(), t.nbytes)
        if key not in seen:
            seen.add(key)
            total += t.nbytes * bits // 8
    return total


def _leaves(tensor, bits: int = 8):
    """(plain tensor, bits each of its bytes stands for) for the tensors that hold a tensor's data:
    a TorchAO quantized weight is a subclass whose codes and scales are inner tensors (its own
    nbytes would be the dense size), and codes of a sub-byte target dtype count at that width."""
    if hasattr(tensor, "__tensor_flatten__"):
        names, _ = tensor.__tensor_flatten__()
        code_bits = _SUB_BYTE_BITS.get(getattr(tensor, "target_dtype", None), 8)
        return [leaf for name in names for leaf in _leaves(getattr(tensor, name), code_bits if name == "qdata" else 8)]
    return [(tensor, bits)]


def _module_tensors(module: torch.nn.Module):
    return [leaf for t in list(module.parameters()) + list(module.buffers()) for leaf in _leaves(t)]


def _storages(module: torch.nn.Module):
    return {t.untyped_storage().data_ptr() for t, _ in _module_tensors(module)}


def weight_bytes(model: torch.nn.Module) -> Dict[str, int]:
    """{"weights_total", "weights_read_per_token", "embedding_table"} in bytes."""
    total = _unique_bytes(_module_tensors(model))
    embedding = model.get_input_embeddings()
    table = _unique_bytes(_module_tensors(embedding))
    head = model.get_output_embeddings()
    tied = head is not None and bool(_storages(head) & _storages(embedding))
    vocab = model.config.get_text_config().vocab_size
    # Untied: the embedding lookup reads one row of its table; tied: the head reads the whole table.
    read = total if tied else total - table + table // vocab
    return {"weights_total": total, "weights_read_per_token": read, "embedding_table": table, "tied": tied}


def _head_dim(config) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def kv_positions_read(config, position: int) -> int:
    """Cache positions the token at `position` attends to, summed over layers (sliding-window
    layers see at most their window)."""
    attended = position + 1
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers
    return sum(min(attended, window) if t == "sliding_attention" and window else attended
               for t in types[: config.num_hidden_layers])


def decode_bytes(model: torch.nn.Module, cache_dtype: torch.dtype, context: int, steps: int) -> Dict[str, float]:
    """Mean bytes per decode step over positions context .. context+steps-1."""
    config = model.config.get_text_config()
    element = torch.empty((), dtype=cache_dtype).element_size()
    kv_per_position = 2 * config.num_key_value_heads * _head_dim(config) * element  # K and V, one layer
    weights = weight_bytes(model)
    positions = range(context, context + steps)
    kv_read = sum(kv_positions_read(config, p) for p in positions) / steps * kv_per_position
    kv_write = config.num_hidden_layers * kv_per_position
    logits_write = config.vocab_size * element
    total = weights["weights_read_per_token"] + kv_read + kv_write + logits_write
    return {"weights_read": weights["weights_read_per_token"], "kv_read": kv_read, "kv_write": kv_write,
            "logits_write": logits_write, "total": total}


def roofline_fraction(bytes_per_token: float, bandwidth_bytes_per_s: float, tok_s: float) -> float:
    """Measured tokens per second over the bandwidth-bound tokens per second."""
    return tok_s * bytes_per_token / bandwidth_bytes_per_s
