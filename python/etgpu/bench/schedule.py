"""The schedule every peer runs, and the clocks that time it.

A runner is anything with `device` (where its inputs are made), `clock` (how its steps are
timed), `reset()` (before a new sequence) and `forward(tokens [1, T], positions [T]) -> logits of
the last token`. Prefill of P tokens: one warm-up call, then `runs` timed calls; the time to first
token is the wall clock from the call to the first token id on the host. Decode of S tokens at
context C: prefill C tokens, then S single-token steps, each fed the previous step's argmax
(greedy generation: every step does the work it does in real use); one warm-up sequence (it
captures CUDA graphs and compiles), then `runs` timed sequences; the median over all timed steps."""

import statistics
import time
from typing import List

import torch


def cuda_seconds(event_pairs) -> List[float]:
    torch.cuda.synchronize()
    return [start.elapsed_time(end) / 1e3 for start, end in event_pairs]


class WallClock:
    """For runners whose calls return only when the work is done (the etgpu runtime: it runs on
    its own stream and every call ends with the copy of the outputs to the host), and on the CPU."""

    def __init__(self, name: str = "wall clock per call"):
        self.name = name

    def measure(self, fn):
        start = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - start

    def seconds(self, handles) -> List[float]:
        return list(handles)

    def details(self, handles) -> dict:
        """Further timings a runner's clock may report (see etgpu_runner.EtGpuStepClock)."""
        return {}


class CudaEventClock:
    """GPU time on the current stream: the span between two events, launch gaps included, so a
    launch-bound step is charged for its gaps. No host synchronization inside the timed loop."""

    name = "CUDA events on the current stream"

    def measure(self, fn):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        out = fn()
        end.record()
        return out, (start, end)

    def seconds(self, handles) -> List[float]:
        return cuda_seconds(handles)

    def details(self, handles) -> dict:
        return {}


def clock_for(device: torch.device):
    return CudaEventClock() if device.type == "cuda" else WallClock()


def _next_token(logits: torch.Tensor) -> torch.Tensor:
    return logits.reshape(-1).argmax().reshape(1, 1)


def random_tokens(vocab: int, length: int, seed: int) -> torch.Tensor:
    # Never zeros: a constant prompt can take faster paths than real text.
    return torch.randint(0, vocab, (1, length), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def prefill(runner, tokens: torch.Tensor, runs: int) -> dict:
    length = tokens.shape[1]
    tokens = tokens.to(runner.device)
    positions = torch.arange(length, device=runner.device)
    runner.reset()
    int(_next_token(runner.forward(tokens, positions)))  # warm-up
    handles, ttft = [], []
    for _ in range(runs):
        runner.reset()
        start = time.perf_counter()
        logits, handle = runner.clock.measure(lambda: runner.forward(tokens, positions))
        int(_next_token(logits))
        ttft.append(time.perf_counter() - start)
        handles.append(handle)
    seconds = runner.clock.seconds(handles)
    median = statistics.median(seconds)
    return {"tokens": length, "runs": runs, "median_s": median, "tok_s": length / median,
            "ttft_s": statistics.median(ttft), "times_s": seconds,
            **_details(runner.clock.details(handles), length)}


@torch.no_grad()
def decode(runner, prompt: torch.Tensor, steps: int, runs: int) -> dict:
    context = prompt.shape[1]
    prompt = prompt.to(runner.device)
    prompt_positions = torch.arange(context, device=runner.device)
    # Made before the loop so no step pays for a host-to-device copy of its position.
    positions = torch.arange(context, context + steps, device=runner.device)
    step_times, loop_times, timed_handles = [], [], []
    for sequence in range(runs + 1):  # sequence 0 is the warm-up
        runner.reset()
        token = _next_token(runner.forward(prompt, prompt_positions))
        handles = []
        start = time.perf_counter()
        for i in range(steps):
            logits, handle = runner.clock.measure(lambda: runner.forward(token, positions[i:i + 1]))
            token = _next_token(logits)
            handles.append(handle)
        int(token)  # the loop is done when its last token is on the host
        loop = time.perf_counter() - start
        seconds = runner.clock.seconds(handles)
        if sequence:
            step_times.extend(seconds)
            loop_times.append(loop)
            timed_handles.extend(handles)
    median = statistics.median(step_times)
    loop = statistics.median(loop_times)
    return {"context": context, "steps": steps, "runs": runs, "median_step_s": median, "tok_s": 1.0 / median,
            "loop_tok_s": steps / loop, "step_p90_s": _quantile(step_times, 0.9),
            **_details(runner.clock.details(timed_handles), 1)}


def _details(details: dict, tokens: int) -> dict:
    if "gpu_median_s" in details:
        details["gpu_tok_s"] = tokens / details["gpu_median_s"]
    return details


def _quantile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
