"""Reference logits from transformers eager (its own cache and attention), step by step: a
prefill of the first `prefill` tokens, then one token per step (teacher forcing)."""

import torch
from transformers import DynamicCache


@torch.no_grad()
def reference_logits(hf_model, tokens: torch.Tensor, prefill: int):
    """List of last-token logits [1, V]: after the prefill, then after each further token."""
    config = hf_model.config.get_text_config()
    cache = DynamicCache(config=config)
    out = hf_model(input_ids=tokens[:, :prefill], cache=cache, use_cache=True)
    logits = [out.logits[:, -1].float()]
    for t in range(prefill, tokens.shape[1]):
        out = hf_model(input_ids=tokens[:, t:t + 1], cache=cache, use_cache=True)
        logits.append(out.logits[:, -1].float())
    return logits


def stepwise_logits(run, tokens: torch.Tensor, prefill: int):
    """The same schedule through `run(tokens, positions) -> logits [1, 1, V]`."""
    logits = [run(tokens[:, :prefill], torch.arange(prefill)).reshape(1, -1).float()]
    for t in range(prefill, tokens.shape[1]):
        logits.append(run(tokens[:, t:t + 1], torch.tensor([t])).reshape(1, -1).float())
    return logits
