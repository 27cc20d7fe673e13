"""Copy bandwidth of the device: one large device-to-device copy, counted as bytes read plus
bytes written, timed with CUDA events (wall clock on the CPU). It is the ceiling every decode
step is compared with, so it is measured on the same machine in the same process."""

import statistics
import time

import torch

from etgpu.bench.schedule import cuda_seconds


def copy_bandwidth(device: str, megabytes: int, runs: int) -> dict:
    nbytes = megabytes * 2**20
    # Random data: a copy of zeros could be short-cut by compressing memory subsystems.
    src = torch.randint(0, 255, (nbytes,), dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up: allocation and first-touch out of the timing
    times = _cuda_copy_times(src, dst, runs) if src.is_cuda else _wall_copy_times(src, dst, runs)
    seconds = statistics.median(times)
    moved = 2 * nbytes
    return {"bytes_moved": moved, "median_s": seconds, "runs": runs, "gb_per_s": moved / seconds / 1e9,
            "method": ("cuda events" if src.is_cuda else "wall clock") + f", {megabytes} MiB device-to-device copy"}


def _cuda_copy_times(src, dst, runs):
    pairs = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        pairs.append((start, end))
    return cuda_seconds(pairs)


def _wall_copy_times(src, dst, runs):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        dst.copy_(src)
        times.append(time.perf_counter() - start)
    return times
