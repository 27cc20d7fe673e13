"""Architectures by name, built from transformers config classes with published dimensions
(no hub access is needed); `scale="tiny"` keeps the architecture and shrinks the dimensions."""

from dataclasses import dataclass, field
from typing import Callable, Dict, List

import torch
import transformers


@dataclass(frozen=True)
class Recipe:
    config_class: str
    model_class: str
    full: Dict = field(default_factory=dict)


_LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
                "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}


def _llama3(**sizes) -> Recipe:
    """Llama 3.2: what the sizes share (vocabulary, 8 KV heads, tied head, Llama-3 rope scaling)."""
    return Recipe("LlamaConfig", "LlamaForCausalLM", dict(
        vocab_size=128256, num_key_value_heads=8, rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_parameters=_LLAMA3_ROPE, max_position_embeddings=131072, **sizes))


def _qwen3(**sizes) -> Recipe:
    """Qwen3 dense: what the sizes share (vocabulary, 8 KV heads of 128, tied head, rope theta 1e6)."""
    return Recipe("Qwen3Config", "Qwen3ForCausalLM", dict(
        vocab_size=151936, num_key_value_heads=8, head_dim=128, rms_norm_eps=1e-6, tie_word_embeddings=True,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, max_position_embeddings=40960,
        **sizes))


# Phi-4-mini-instruct's published LongRoPE divisors, one per rotary frequency pair (48 = 96 / 2);
# its short factors are all 1.
_PHI4_MINI_LONG_FACTOR = [
    1.0, 1.118320672, 1.250641126, 1.398617824, 1.564103225, 1.74916897, 1.956131817, 2.187582649,
    2.446418898, 2.735880826, 3.059592084, 3.421605075, 3.826451687, 4.279200023, 4.785517845,
    5.351743533, 5.984965424, 6.693110555, 7.485043894, 8.370679318, 9.36110372, 10.4687158,
    11.70738129, 13.09260651, 14.64173252, 16.37415215, 18.31155283, 20.47818807, 22.90118105,
    25.61086418, 28.64115884, 32.03, 32.1, 32.13, 32.23, 32.6, 32.61, 32.64, 32.66, 32.7, 32.71,
    32.93, 32.97, 33.28, 33.49, 33.5, 44.16, 47.77]


def _longrope(original: int, long_factor: List[float], factor: float = 32.0) -> Dict:
    """Phi-3/4 LongRoPE: per-frequency divisors, all 1 (`short_factor`) up to `original` positions
    and `long_factor` past them (transformers picks by the step's largest position), and cos/sin
    scaled by sqrt(1 + ln(factor) / ln(original)) at every length."""
    return {"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.75,
            "original_max_position_embeddings": original, "factor": factor,
            "short_factor": [1.0] * len(long_factor), "long_factor": list(long_factor)}


RECIPES: Dict[str, Recipe] = {
    "llama3.2-1b": _llama3(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                           num_attention_heads=32, head_dim=64),
    "llama3.2-3b": _llama3(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28,
                           num_attention_heads=24, head_dim=128),
    "qwen3-0.6b": _qwen3(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16),
    "qwen3-1.7b": _qwen3(hidden_size=2048, intermediate_size=6144, num_hidden_layers=28, num_attention_heads=16),
    "qwen3-4b": _qwen3(hidden_size=2560, intermediate_size=9728, num_hidden_layers=36, num_attention_heads=32),
    # Phi-4-mini: partial rotary (3/4 of each head), LongRoPE (see _longrope).
    "phi-4-mini": Recipe("Phi3Config", "Phi3ForCausalLM", dict(
        vocab_size=200064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
        num_attention_heads=24, num_key_value_heads=8, rms_norm_eps=1e-5, tie_word_embeddings=True,
        rope_parameters=_longrope(4096, _PHI4_MINI_LONG_FACTOR), max_position_embeddings=131072,
        original_max_position_embeddings=4096, pad_token_id=199999)),
    "gemma3-1b": Recipe("Gemma3TextConfig", "Gemma3ForCausalLM", dict(
        vocab_size=262144, hidden_size=1152, intermediate_size=6912, num_hidden_layers=26,
        num_attention_heads=4, num_key_value_heads=1, head_dim=256, rms_norm_eps=1e-6,
        sliding_window=512, query_pre_attn_scalar=256, tie_word_embeddings=True,
        max_position_embeddings=32768,
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}})),
    "gemma3-4b": Recipe("Gemma3TextConfig", "Gemma3ForCausalLM", dict(
        vocab_size=262208, hidden_size=2560, intermediate_size=10240, num_hidden_layers=34,
        num_attention_heads=8, num_key_value_heads=4, head_dim=256, rms_norm_eps=1e-6,
        sliding_window=1024, query_pre_attn_scalar=256, tie_word_embeddings=True,
        max_position_embeddings=131072,
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "linear", "rope_theta": 1000000.0, "factor": 8.0}})),
}

# Small dimensions with every architectural feature kept (GQA, tied head, sliding layers).
_TINY = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, head_dim=16)
_TINY_OVERRIDES = {
    "gemma3-1b": dict(num_hidden_layers=3, sliding_window=8, query_pre_attn_scalar=16, num_key_value_heads=1,
                      layer_types=["sliding_attention", "sliding_attention", "full_attention"]),
    "gemma3-4b": dict(num_hidden_layers=3, sliding_window=8, query_pre_attn_scalar=16,
                      layer_types=["sliding_attention", "sliding_attention", "full_attention"]),
    # 6 rotary pairs per 16-wide head (a geometric ramp to 4 as the long factors); they take over
    # at position 32, inside the test.
    "phi-4-mini": dict(pad_token_id=0, rope_parameters=_longrope(32, [4.0 ** (i / 5) for i in range(6)], 4.0),
                       max_position_embeddings=128, original_max_position_embeddings=32),
}


def build_config(arch: str, scale: str = "full"):
    if arch not in RECIPES:
        raise KeyError(f"unknown architecture {arch!r}; choose one of {sorted(RECIPES)}")
    recipe = RECIPES[arch]
    kwargs = dict(recipe.full)
    if scale == "tiny":
        kwargs.update(_TINY)
        kwargs.update(_TINY_OVERRIDES.get(arch, {}))
        if "head_dim" not in recipe.full:
            kwargs.pop("head_dim")
            kwargs["hidden_size"] = kwargs["num_attention_heads"] * _TINY["head_dim"]
    elif scale != "full":
        raise ValueError(f"scale must be 'full' or 'tiny', not {scale!r}")
    return getattr(transformers, recipe.config_class)(**kwargs)


def build_hf_model(arch: str, scale: str = "full", dtype: torch.dtype = torch.float32, seed: int = 0):
    """The architecture with seeded random weights (transformers' own initialisation)."""
    config = build_config(arch, scale)
    torch.manual_seed(seed)
    return cast_model(getattr(transformers, RECIPES[arch].model_class)(config), dtype).eval()


def cast_model(model, dtype: torch.dtype):
    """`model` in `dtype` but for the rotary inverse frequencies, which stay fp32 as from_pretrained
    leaves them: rounded to bf16 they would turn far positions by wrong angles (and LongRoPE's fp32
    factor switch would write fp32 into a bf16 buffer)."""
    frequencies = {name: buffer for name, buffer in model.named_buffers() if name.endswith("inv_freq")}
    model = model.to(dtype)
    for name, buffer in frequencies.items():  # .to() replaced the buffers; put the fp32 ones back
        module, _, attr = name.rpartition(".")
        setattr(model.get_submodule(module), attr, buffer.float())
    return model
