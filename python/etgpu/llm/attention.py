"""The attention function etgpu plugs into transformers (AttentionInterface "etgpu"): causal
masking from the step's positions over the whole static cache, optional sliding window, GQA."""

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

ATTENTION_NAME = "etgpu"


def position_mask(positions: torch.Tensor, cache_len: int, sliding_window=None) -> torch.Tensor:
    """[T, S] bool: query at position p sees cache slots j <= p (and j > p - W with a window).
    Slots past p hold zeros or stale values; the mask is what keeps them out."""
    slots = torch.arange(cache_len, device=positions.device)
    mask = slots.unsqueeze(0) <= positions.unsqueeze(1)
    if sliding_window:
        mask = mask & (slots.unsqueeze(0) > positions.unsqueeze(1) - sliding_window)
    return mask


def etgpu_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                    sliding_window=None, softcap=None, position_ids=None, **kwargs):
    if softcap:
        raise NotImplementedError("attention logit soft-capping is not supported by the etgpu recipe")
    if position_ids is None:
        raise ValueError("etgpu attention needs position_ids")
    mask = position_mask(position_ids[0], key.shape[2], sliding_window)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scaling,
                                         enable_gqa=query.shape[1] != key.shape[1])
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION_NAME, etgpu_attention)
