"""The PyTorch peers: the same transformers model with a StaticCache, run eagerly and through
torch.compile(mode="reduce-overhead") (Inductor plus CUDA graphs). The LM head computes the last
token's logits only (`logits_to_keep=1`), as the exported model does."""

import inspect

import torch
from transformers import StaticCache

from etgpu.bench.schedule import clock_for
from etgpu.llm.attention import ATTENTION_NAME
from etgpu.llm.reference import cache_argument


class HfStaticRunner:
    def __init__(self, hf_model, max_cache_len: int, compiled: bool):
        # The peer is transformers with its own attention; etgpu's export sets its attention on
        # the config it wraps, so that config must never be this one.
        if hf_model.config.get_text_config()._attn_implementation == ATTENTION_NAME:
            raise RuntimeError("the model's config was switched to etgpu's attention by an export")
        self.device = next(hf_model.parameters()).device
        self.clock = clock_for(self.device)
        self.cache = StaticCache(config=hf_model.config.get_text_config(), max_cache_len=max_cache_len)
        self.cache_arg = cache_argument(hf_model)
        # Older transformers took the write positions as `cache_position`; 5.17 and 5.24 (checked)
        # keep them in the cache itself.
        self.takes_cache_position = "cache_position" in inspect.signature(hf_model.forward).parameters
        self.call, self.compiled = hf_model, False
        with torch.no_grad():  # an eager call allocates the cache, outside any compiled region
            self.forward(torch.ones(1, 1, dtype=torch.long, device=self.device),
                         torch.zeros(1, dtype=torch.long, device=self.device))
        self.reset()
        if compiled:
            # dynamic=False: one specialised graph per prefill length and one for decode, as a
            # serving stack with fixed buckets would have.
            self.call = torch.compile(hf_model.forward, mode="reduce-overhead", dynamic=False)
            self.compiled = True

    def reset(self) -> None:
        self.cache.reset()

    def forward(self, tokens, positions):
        kwargs = {self.cache_arg: self.cache, "position_ids": positions.unsqueeze(0)}
        if self.takes_cache_position:
            kwargs["cache_position"] = positions
        if self.compiled:
            # Marks a new iteration for the CUDA-graph trees: the previous step's outputs may be
            # overwritten from here on (we have already taken its argmax).
            torch.compiler.cudagraph_mark_step_begin()
        return self.call(input_ids=tokens, use_cache=True, logits_to_keep=1, **kwargs).logits

    def close(self) -> dict:
        self.cache = self.call = None
        if not self.compiled:
            return {}
        from torch._dynamo.utils import counters

        # A graph Inductor could not put in a CUDA graph still runs, without reduce-overhead's
        # benefit: the row says how many were skipped (the log's warnings say why).
        stats = {"cudagraph_skips": counters["inductor"]["cudagraph_skips"]}
        torch._dynamo.reset()
        return stats


def compile_unavailable(device: torch.device) -> str:
    """Why the compiled peer cannot run here, or ""."""
    if device.type != "cuda":
        return "torch.compile(mode='reduce-overhead') is measured on CUDA only (CUDA graphs)"
    return ""
