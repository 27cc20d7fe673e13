"""Architectures by name, built from transformers config classes with published dimensions
(no hub access is needed); `scale="tiny"` keeps the architecture and shrinks the dimensions."""

from dataclasses import dataclass, field
from typing import Callable, Dict

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


def _longrope(pairs: int, original: int, factor: float = 32.0) -> Dict:
    """Phi-3/4 LongRoPE: per-frequency divisors, `short_factor` up to `original` positions and
    `long_factor` past them (transformers picks by the step's largest position), and cos/sin scaled
    by sqrt(1 + ln(factor) / ln(original)) at every length. A checkpoint ships its fitted lists in
    its config; with random weights any lists exercise the same code, so these are plain ones:
    no change for short contexts, a geometric ramp up to `factor` (lowest frequency) for long."""
    return {"rope_type": "longrope", "rope_theta": 10000.0, "partial_rotary_factor": 0.75,
            "original_max_position_embeddings": original, "factor": factor, "short_factor": [1.0] * pairs,
            "long_factor": [factor ** (i / (pairs - 1)) for i in range(pairs)]}


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
        rope_parameters=_longrope(48, original=4096), max_position_embeddings=131072,
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
    # 6 rotary pairs per 16-wide head; the long factors take over at position 32, inside the test.
    "phi-4-mini": dict(pad_token_id=0, rope_parameters=_longrope(6, original=32, factor=4.0),
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
