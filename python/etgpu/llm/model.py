"""CausalLMForExport: forward(tokens [1, T], input_pos [T]) -> logits of the last token [1, 1, V].

It runs the Hugging Face model's own modules (embedding, decoder layers, norm, head) so every
architecture detail (q/k norms, partial rotary, Gemma scaling, sliding windows) stays theirs; only
the cache and the attention function are etgpu's."""

import inspect

import torch

import etgpu.llm.attention  # noqa: F401  (registers the "etgpu" attention function)
from etgpu.llm.attention import ATTENTION_NAME
from etgpu.llm.cache import StaticKVCache


class CausalLMForExport(torch.nn.Module):
    def __init__(self, hf_model, max_seq_len: int):
        super().__init__()
        self.hf = hf_model.eval()
        config = hf_model.config.get_text_config()
        config._attn_implementation = ATTENTION_NAME
        self.config = config
        self.max_seq_len = max_seq_len
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        dtype = next(hf_model.parameters()).dtype
        self.cache = StaticKVCache(config.num_hidden_layers, config.num_key_value_heads, head_dim, max_seq_len, dtype)
        rotary = self.hf.model.rotary_emb
        self._rotary_per_layer_type = "layer_type" in inspect.signature(rotary.forward).parameters
        # transformers renamed the decoder layers' cache argument (past_key_values -> cache).
        layer_params = inspect.signature(self.hf.model.layers[0].forward).parameters
        self._cache_arg = "cache" if "cache" in layer_params else "past_key_values"

    def _position_embeddings(self, hidden, position_ids):
        rotary = self.hf.model.rotary_emb
        if self._rotary_per_layer_type:
            return {t: rotary(hidden, position_ids, t) for t in sorted(set(self.config.layer_types))}
        return rotary(hidden, position_ids)

    def forward(self, tokens: torch.Tensor, input_pos: torch.Tensor) -> torch.Tensor:
        text = self.hf.model
        hidden = text.embed_tokens(tokens)
        position_ids = input_pos.unsqueeze(0)
        embeddings = self._position_embeddings(hidden, position_ids)
        self.cache.set_positions(input_pos)
        for i, layer in enumerate(text.layers[: self.config.num_hidden_layers]):
            layer_embeddings = embeddings[self.config.layer_types[i]] if isinstance(embeddings, dict) else embeddings
            out = layer(hidden, attention_mask=None, position_ids=position_ids,
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
