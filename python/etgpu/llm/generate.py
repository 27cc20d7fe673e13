"""Prefill + decode loop over an exported LLM: any callable `run(tokens [1, T] int64, positions [T]
int64) -> logits [1, 1, V]` (an etgpu Model through `model_runner`, or CausalLMForExport in eager).

The cache lives inside the model, so a generation is one prefill of the whole prompt at positions
0..P-1 and then one call per new token at position P, P+1, ...; the cache capacity is checked before
the first call because running out half-way would waste the prefill and leave partial output."""

import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import torch

RunFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class CacheCapacityError(ValueError):
    """The prompt plus the requested new tokens do not fit in the model's KV cache."""


@dataclass
class SamplingConfig:
    temperature: float = 0.0  # 0 = greedy (argmax)
    top_k: int = 0            # 0 = no limit
    top_p: float = 1.0        # 1 = no nucleus cut
    seed: Optional[int] = None

    def __post_init__(self):
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, not {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, not {self.top_k}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p}")


class Sampler:
    def __init__(self, config: SamplingConfig):
        self.config = config
        self.generator = torch.Generator()
        if config.seed is not None:
            self.generator.manual_seed(config.seed)
        else:
            self.generator.seed()

    def __call__(self, logits: torch.Tensor) -> int:
        logits = logits.reshape(-1).float()
        if self.config.temperature == 0.0:
            return int(torch.argmax(logits))
        logits = logits / self.config.temperature
        if self.config.top_k and self.config.top_k < logits.numel():
            kth = torch.topk(logits, self.config.top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if self.config.top_p < 1.0:
            probs = _nucleus(probs, self.config.top_p)
        return int(torch.multinomial(probs, 1, generator=self.generator))


def _nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keeps the smallest set of most likely tokens whose mass reaches top_p (at least one)."""
    sorted_probs, order = torch.sort(probs, descending=True)
    mass_before = torch.cumsum(sorted_probs, 0) - sorted_probs
    sorted_probs[mass_before >= top_p] = 0.0
    kept = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return kept / kept.sum()


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    generated_tokens: int = 0
    time_to_first_token_s: float = 0.0  # prefill call + first sample
    prefill_s: float = 0.0
    decode_s: float = 0.0               # every call after the prefill
    peak_device_bytes: Optional[int] = None

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.prompt_tokens / self.prefill_s if self.prefill_s > 0 else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        steps = self.generated_tokens - 1  # the first new token comes from the prefill
        return steps / self.decode_s if steps > 0 and self.decode_s > 0 else 0.0

    def summary(self) -> str:
        text = (f"prompt {self.prompt_tokens} tok, generated {self.generated_tokens} tok | "
                f"TTFT {self.time_to_first_token_s * 1e3:.1f} ms | prefill {self.prefill_tokens_per_s:.1f} tok/s | "
                f"decode {self.decode_tokens_per_s:.1f} tok/s")
        if self.peak_device_bytes is not None:
            text += f" | peak device memory {self.peak_device_bytes / 2**20:.1f} MiB"
        return text


@dataclass
class GenerationResult:
    tokens: List[int]        # new tokens only (a stop token, if hit, is included)
    stop_reason: str         # "stop_token" | "max_new_tokens"
    stats: GenerationStats = field(default_factory=GenerationStats)


def model_runner(model) -> RunFn:
    """Adapts an etgpu.Model (run([tokens, positions]) -> [logits]) to the RunFn signature."""
    return lambda tokens, positions: model.run([tokens, positions])[0]


def check_capacity(prompt_len: int, max_new_tokens: int, max_seq_len: int) -> None:
    if prompt_len == 0:
        raise ValueError("the prompt has no tokens")
    # The last new token is sampled, never fed back, so it needs no cache slot.
    needed = prompt_len + max_new_tokens - 1
    if needed > max_seq_len:
        raise CacheCapacityError(
            f"prompt ({prompt_len} tokens) + max_new_tokens ({max_new_tokens}) needs {needed} cache positions "
            f"but the model was exported with max_seq_len={max_seq_len}; shorten the prompt, lower "
            f"--max-new-tokens or export with a larger --max-seq-len")


@torch.no_grad()
def generate(run: RunFn, prompt_ids: Sequence[int], max_new_tokens: int, max_seq_len: int,
             sampling: Optional[SamplingConfig] = None, stop_ids: Sequence[int] = (),
             on_token: Optional[Callable[[int], None]] = None, stats_source=None) -> GenerationResult:
    """Generates up to max_new_tokens after prompt_ids. `on_token(id)` is called as each token is
    chosen (for streaming). `stats_source` (an etgpu.Model) supplies peak device memory."""
    if max_new_tokens < 1:
        raise ValueError("max_new_tokens must be >= 1")
    check_capacity(len(prompt_ids), max_new_tokens, max_seq_len)
    sample = Sampler(sampling or SamplingConfig())
    stops = set(stop_ids)
    stats = GenerationStats(prompt_tokens=len(prompt_ids))
    tokens = torch.tensor([list(prompt_ids)], dtype=torch.long)

    start = time.perf_counter()
    logits = run(tokens, torch.arange(len(prompt_ids), dtype=torch.long))
    stats.prefill_s = time.perf_counter() - start
    token = sample(logits)
    stats.time_to_first_token_s = time.perf_counter() - start

    out = [token]
    if on_token:
        on_token(token)
    stop_reason = "stop_token" if token in stops else "max_new_tokens"
    decode_start = time.perf_counter()
    position = len(prompt_ids)
    while stop_reason == "max_new_tokens" and len(out) < max_new_tokens:
        logits = run(torch.tensor([[token]], dtype=torch.long), torch.tensor([position], dtype=torch.long))
        token = sample(logits)
        out.append(token)
        position += 1
        if on_token:
            on_token(token)
        if token in stops:
            stop_reason = "stop_token"
    stats.decode_s = time.perf_counter() - decode_start
    stats.generated_tokens = len(out)
    stats.peak_device_bytes = _peak_device_bytes(stats_source)
    return GenerationResult(out, stop_reason, stats)


def _peak_device_bytes(model) -> Optional[int]:
    """Peak engine memory from etgpu's stats, reported only for a GPU engine (on the CPU engine it
    is host memory and says nothing about the device)."""
    if model is None or not hasattr(model, "stats"):
        return None
    stats = model.stats()
    if stats.get("engine") != "cuda":
        return None
    return int(stats.get("device_peak_bytes", 0))
