"""CausalLMForExport: forward(tokens [1, T], input_pos [T]) -> logits of the last token [1, 1, V].

It runs the Hugging Face model's own modules (embedding, decoder layers, norm, head) so every
architecture detail (q/k norms, partial rotary, Gemma scaling, sliding windows) stays theirs; only
the cache and the attention function are etgpu's."""

import inspect

import torch

import etgpu.llm.attention  # noqa: F401  (registers the "etgpu" attention function)
from etgpu.llm.attention import ATTENTION_NAME, full_mask, ring_mask
from etgpu.llm.cache import StaticKVCache


def _take_over_longrope(rotary, config):
    """LongRoPE switches to its long factors once a step's largest position passes the original
    context. Some transformers versions decide that with a Python `if` on a tensor, which export
    cannot trace; this returns (original length, short, long frequencies) so that our forward
    picks the set with torch.where and runs the rotary module as a plain one. None for other ropes."""
    if getattr(rotary, "rope_type", None) != "longrope":
        return None
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    original = config.rope_parameters["original_max_position_embeddings"]
    device = rotary.inv_freq.device
    long, _ = ROPE_INIT_FUNCTIONS["longrope"](config, device, seq_len=original + 1)
    return original, rotary.original_inv_freq.to(device), long.to(device)


class CausalLMForExport(torch.nn.Module):
    def __init__(self, hf_model, max_seq_len: int):
        super().__init__()
        self.hf = hf_model.eval()
        config = hf_model.config.get_text_config()
        self.config = config
        self.max_seq_len = max_seq_len
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        dtype = next(hf_model.parameters()).dtype
        layer_types = getattr(config, "layer_types", None) or ["full_attention"] * config.num_hidden_layers
        sliding = [i for i, t in enumerate(layer_types) if t == "sliding_attention"]
        self.cache = StaticKVCache(config.num_hidden_layers, config.num_key_value_heads, head_dim, max_seq_len, dtype,
                                   window=getattr(config, "sliding_window", None) or 0, ring_layers=sliding)
        rotary = self.hf.model.rotary_emb
        self._rotary_per_layer_type = "layer_type" in inspect.signature(rotary.forward).parameters
        self._longrope = _take_over_longrope(rotary, config)
        # transformers renamed the decoder layers' cache argument (past_key_values -> cache).
        layer_params = inspect.signature(self.hf.model.layers[0].forward).parameters
        self._cache_arg = "cache" if "cache" in layer_params else "past_key_values"

    def _position_embeddings(self, hidden, position_ids):
        rotary = self.hf.model.rotary_emb
        if self._longrope is not None:
            original, short, long = self._longrope
            rotary.inv_freq.copy_(torch.where(position_ids.max() + 1 > original, long, short))
            rotary.rope_type = "default"  # skip transformers' own update (attention_scaling is kept)
            try:
                return rotary(hidden, position_ids)
            finally:
                rotary.rope_type = "longrope"
        if self._rotary_per_layer_type:
            return {t: rotary(hidden, position_ids, t) for t in sorted(set(self.config.layer_types))}
        return rotary(hidden, position_ids)

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        # etgpu's attention for this wrapper's calls only: the same model called directly (a
        # reference, a benchmark peer) keeps the attention it was built with.
        previous = self.config._attn_implementation
        self.config._attn_implementation = ATTENTION_NAME
        try:
            return self._logits(tokens, input_pos)
        finally:
            self.config._attn_implementation = previous

    def _logits(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        text = self.hf.model
        hidden = text.embed_tokens(tokens)
        position_ids = input_pos.unsqueeze(0)
        embeddings = self._position_embeddings(hidden, position_ids)
        self.cache.set_positions(input_pos)
        # One mask per kind of cache, built once per step rather than once per layer.
        full = full_mask(input_pos, self.max_seq_len)
        ring = ring_mask(input_pos, self.cache.window) if self.cache.ring_layers else None
        for i, layer in enumerate(text.layers[: self.config.num_hidden_layers]):
            layer_embeddings = embeddings[self.config.layer_types[i]] if isinstance(embeddings, dict) else embeddings
            mask = ring if i in self.cache.ring_layers else full
            out = layer(hidden, attention_mask=mask, position_ids=position_ids,
                        position_embeddings=layer_embeddings, **{self._cache_arg: self.cache})
            hidden = out[0] if isinstance(out, tuple) else out
        hidden = text.norm(hidden[:, -1:, :])
        logits = self.hf.lm_head(hidden)
        softcap = getattr(self.config, "final_logit_softcapping", None)
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        return logits


def export_llm(hf_model, max_seq_len: int, example_len: int = 2) -> torch.export.ExportedProgram:
    """torch.export with one dynamic token dim T in [1, max_seq_len]. NVFP4 weights are swapped
    for their exportable form first (in place; see etgpu.nvfp4)."""
    from etgpu.nvfp4 import to_exportable

    to_exportable(hf_model)
    wrapper = CausalLMForExport(hf_model, max_seq_len)
    tokens = torch.zeros(1, example_len, dtype=torch.long)
    positions = torch.arange(example_len)
    tokens_dim = torch.export.Dim("tokens", min=1, max=max_seq_len)
    with torch.no_grad():
        return torch.export.export(wrapper, (tokens, positions),
                                   dynamic_shapes=({1: tokens_dim}, {0: tokens_dim}), strict=False)
