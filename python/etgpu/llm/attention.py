"""The attention function etgpu plugs into transformers (AttentionInterface "etgpu"), and the masks
CausalLMForExport builds once per step for it: which cache slots each query sees, from the step's
positions (slots past the query hold zeros or stale values; the mask is what keeps them out)."""

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

ATTENTION_NAME = "etgpu"


def visible(key_positions: torch.Tensor, positions: torch.Tensor, window: int = 0) -> torch.Tensor:
    """[T, S] bool: query at position q sees a key at position k when 0 <= k <= q (and, with a
    window W, k > q - W). Negative key positions mark slots that hold nothing."""
    k, q = key_positions.unsqueeze(0), positions.unsqueeze(1)
    mask = (k >= 0) & (k <= q)
    if window:
        mask = mask & (k > q - window)
    return mask


def full_mask(positions: torch.Tensor, cache_len: int) -> torch.Tensor:
    """Over a full cache, slot j holds position j."""
    return visible(torch.arange(cache_len, device=positions.device), positions)


def ring_mask(positions: torch.Tensor, window: int) -> torch.Tensor:
    """Over what a ring layer's update() returns: the ring before this step (W slots, then the
    discard slot), then the step's own keys. Before a step starting at s, slot j holds the latest
    position p < s with p % W == j (negative: never written since position 0)."""
    start = positions[:1]
    slots = torch.arange(window, device=positions.device)
    held = start - 1 - torch.remainder(start - 1 - slots, window)
    discard = torch.full_like(start, -1)
    return visible(torch.cat([held, discard, positions]), positions, window)


def etgpu_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0,
                    softcap=None, **kwargs):
    if softcap:
        raise NotImplementedError("attention logit soft-capping is not supported by the etgpu recipe")
    if attention_mask is None or attention_mask.dtype != torch.bool:
        raise ValueError("etgpu attention needs the boolean mask CausalLMForExport passes")
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, scale=scaling,
                                         enable_gqa=query.shape[1] != key.shape[1])
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION_NAME, etgpu_attention)
