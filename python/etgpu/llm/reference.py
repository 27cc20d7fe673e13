"""Reference logits from transformers eager (its own cache and attention), step by step: a
prefill of the first `prefill` tokens, then one token per step (teacher forcing)."""

import inspect

import torch
from transformers import DynamicCache


def hf_runner(hf_model):
    """`run(tokens, positions) -> logits [1, 1, V]` over transformers with its own cache, for
    calls at consecutive positions from 0 (the positions are implied by the cache)."""
    config = hf_model.config.get_text_config()
    # transformers renamed the cache argument (past_key_values -> cache) within 5.x.
    name = "cache" if "cache" in inspect.signature(hf_model.forward).parameters else "past_key_values"
    cache = {name: DynamicCache(config=config)}
    device = next(hf_model.parameters()).device

    @torch.no_grad()
    def run(tokens, positions):
        return hf_model(input_ids=tokens.to(device), use_cache=True, **cache).logits[:, -1:]

    return run


def reference_logits(hf_model, tokens: torch.Tensor, prefill: int):
    """List of last-token logits [1, V] (fp32, on the model's device): after the prefill, then
    after each further token."""
    return stepwise_logits(hf_runner(hf_model), tokens, prefill)


def stepwise_logits(run, tokens: torch.Tensor, prefill: int):
    """The same schedule through `run(tokens, positions) -> logits [1, 1, V]`."""
    logits = [run(tokens[:, :prefill], torch.arange(prefill)).reshape(1, -1).float()]
    for t in range(prefill, tokens.shape[1]):
        logits.append(run(tokens[:, t:t + 1], torch.tensor([t])).reshape(1, -1).float())
    return logits


def cache_argument(hf_model) -> str:
    """The forward's cache argument: transformers renamed it (past_key_values -> cache) within 5.x."""
    return "cache" if "cache" in inspect.signature(hf_model.forward).parameters else "past_key_values"
