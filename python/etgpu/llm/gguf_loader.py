"""A transformers LlamaForCausalLM from a llama.cpp GGUF file: the config from the file's metadata,
every tensor dequantized to float32 with the `gguf` package, names mapped to Hugging Face's.

llama.cpp's converter reorders the rows of attn_q / attn_k so that its rotary kernel can rotate
adjacent pairs (x0, x1), (x2, x3), ...; transformers rotates halves (x_i, x_{i + d/2}) instead
(rotate_half). `unpermute_rotary_rows` undoes that reorder, without which the model still runs but
every position after the first gets the wrong rotation and the text is garbage."""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Union

import numpy as np
import torch

SUPPORTED_ARCHITECTURES = ("llama",)

# GGUF per-layer suffix -> Hugging Face per-layer name (Llama layout).
_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}


@dataclass
class GGUFModelInfo:
    architecture: str
    config_kwargs: Dict
    name: str


def _read(path):
    import gguf

    return gguf.GGUFReader(str(path))


def field_value(reader, key: str, default=None):
    """The Python value of a metadata key (str, number, bool or list), or default when absent."""
    field = reader.fields.get(key)
    if field is None:
        return default
    return field.contents()


def hf_name(gguf_name: str) -> str:
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    parts = gguf_name.split(".", 2)
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in _LAYER_NAMES:
        return f"model.layers.{int(parts[1])}.{_LAYER_NAMES[parts[2]]}"
    raise KeyError(f"GGUF tensor {gguf_name!r} has no Hugging Face Llama counterpart")


def unpermute_rotary_rows(weight: np.ndarray, num_heads: int) -> np.ndarray:
    """Inverse of llama.cpp's `permute`: within each head, its rows were written as
    (half, pair) -> (pair, half); this writes them back to (half, pair)."""
    rows = weight.shape[0]
    head_dim = rows // num_heads
    return (weight.reshape(num_heads, head_dim // 2, 2, *weight.shape[1:])
            .swapaxes(1, 2)
            .reshape(weight.shape))


def read_config(reader) -> GGUFModelInfo:
    arch = field_value(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise NotImplementedError(f"GGUF architecture {arch!r} is not supported (supported: {SUPPORTED_ARCHITECTURES})")
    if any(t.name == "rope_freqs.weight" for t in reader.tensors):
        # Llama 3.1+ frequency scaling is stored as a tensor of per-frequency factors; mapping it
        # back to transformers' rope_parameters is not implemented.
        raise NotImplementedError("GGUF files with rope_freqs (Llama 3 rope scaling) are not supported")

    def get(key, default=None):
        return field_value(reader, f"{arch}.{key}", default)

    heads = int(get("attention.head_count"))
    hidden = int(get("embedding_length"))
    head_dim = int(get("attention.key_length", 0) or get("rope.dimension_count", 0) or hidden // heads)
    vocab = get("vocab_size") or len(field_value(reader, "tokenizer.ggml.tokens"))
    rope = {"rope_type": "default", "rope_theta": float(get("rope.freq_base", 10000.0))}
    scaling = get("rope.scaling.type")
    if scaling == "linear":
        rope = {"rope_type": "linear", "rope_theta": rope["rope_theta"], "factor": float(get("rope.scaling.factor"))}
    elif scaling not in (None, "none"):
        raise NotImplementedError(f"rope scaling {scaling!r} is not supported")
    names = {t.name for t in reader.tensors}
    kwargs = dict(
        vocab_size=int(vocab), hidden_size=hidden, intermediate_size=int(get("feed_forward_length")),
        num_hidden_layers=int(get("block_count")), num_attention_heads=heads,
        num_key_value_heads=int(get("attention.head_count_kv", heads)), head_dim=head_dim,
        rms_norm_eps=float(get("attention.layer_norm_rms_epsilon", 1e-5)),
        max_position_embeddings=int(get("context_length", 2048)), rope_parameters=rope,
        tie_word_embeddings="output.weight" not in names,
        bos_token_id=field_value(reader, "tokenizer.ggml.bos_token_id"),
        eos_token_id=field_value(reader, "tokenizer.ggml.eos_token_id"),
    )
    return GGUFModelInfo(arch, kwargs, field_value(reader, "general.name", ""))


def dequantized_state_dict(reader, info: GGUFModelInfo) -> Dict[str, torch.Tensor]:
    """Every tensor as float32 under its Hugging Face name, rotary rows in HF order."""
    from gguf.quants import dequantize

    heads = info.config_kwargs["num_attention_heads"]
    kv_heads = info.config_kwargs["num_key_value_heads"]
    state = {}
    for tensor in reader.tensors:
        values = dequantize(tensor.data, tensor.tensor_type).astype(np.float32, copy=False)
        # numpy shape is GGUF's dims reversed: [out, in] for matrices, as HF's Linear stores them.
        values = values.reshape([int(d) for d in reversed(tensor.shape)])
        if tensor.name.endswith("attn_q.weight"):
            values = unpermute_rotary_rows(values, heads)
        elif tensor.name.endswith("attn_k.weight"):
            values = unpermute_rotary_rows(values, kv_heads)
        if not values.flags.writeable or not values.flags.c_contiguous:
            values = np.array(values, copy=True)  # F32 tensors come back as views of the read-only file map
        state[hf_name(tensor.name)] = torch.from_numpy(values)
    return state


def file_digest(path: Union[str, Path]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()[:24]


def _cache_dir() -> Path:
    return Path(os.environ.get("ETGPU_CACHE_DIR", Path.home() / ".cache" / "etgpu")) / "gguf"


def load_state_dict(path: Union[str, Path], use_cache: bool = True):
    """(config kwargs, float32 state dict). Dequantizing takes seconds; the result is cached under
    ~/.cache/etgpu/gguf keyed by the file's content hash (ETGPU_CACHE_DIR overrides the root)."""
    reader = _read(path)
    info = read_config(reader)
    if not use_cache:
        return info, dequantized_state_dict(reader, info)
    cached = _cache_dir() / f"{file_digest(path)}.pt"
    if cached.exists():
        return info, torch.load(cached, map_location="cpu", weights_only=True, mmap=True)
    state = dequantized_state_dict(reader, info)
    cached.parent.mkdir(parents=True, exist_ok=True)
    partial = cached.with_suffix(f".tmp{os.getpid()}")
    torch.save(state, partial)
    os.replace(partial, cached)  # atomic: a concurrent reader never sees half a file
    return info, state


def load_gguf_model(path: Union[str, Path], dtype: torch.dtype = torch.float32, use_cache: bool = True,
                    max_position_embeddings: Optional[int] = None):
    """A transformers LlamaForCausalLM (eval mode) with the GGUF file's weights in `dtype`."""
    import transformers

    info, state = load_state_dict(path, use_cache)
    kwargs = dict(info.config_kwargs)
    if max_position_embeddings:
        kwargs["max_position_embeddings"] = max_position_embeddings
    config = transformers.LlamaConfig(**kwargs)
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(config)
    if config.tie_word_embeddings:
        state = {k: v for k, v in state.items() if k != "lm_head.weight"}
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError(f"GGUF weights do not fit the config: missing {missing[:5]}, unexpected {unexpected[:5]}")
    if config.tie_word_embeddings:
        model.tie_weights()
    # Buffers (rotary inv_freq) were created on meta; rebuild them on the CPU.
    model.model.rotary_emb = type(model.model.rotary_emb)(config=config)
    return model.to(dtype).eval()
